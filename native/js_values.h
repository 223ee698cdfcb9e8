// Converts between JS values and TorchScript IValues. Everything a JS caller can get wrong is
// rejected here, with a TypeError naming the argument, before libtorch sees it.
#pragma once

#include <c10/core/Event.h>
#include <napi.h>
#include <torch/script.h>

#include <memory>
#include <string>
#include <vector>

namespace crackseg {

// info[index] as a string; a TypeError naming `name` otherwise.
std::string StringArg(const Napi::CallbackInfo& info, size_t index, const char* name);

// A JS tensor {data: TypedArray, shape: number[], dtype} → a CPU tensor owning a copy of the data.
torch::Tensor TensorFromJs(const Napi::Value& value, const std::string& what);

// A JS value → an IValue of the TorchScript type `type` (tensors on the CPU).
c10::IValue IValueFromJs(const Napi::Value& value, const c10::TypePtr& type,
                         const std::string& what);

// `host` on `device` without waiting for it: on CUDA through pinned memory, copied non-blocking.
torch::Tensor Upload(const torch::Tensor& host, const c10::Device& device);

// A device → host copy in flight (into pinned memory, non-blocking); a host tensor is just kept.
class HostCopy {
 public:
  explicit HostCopy(const torch::Tensor& tensor);
  // The detached, contiguous host tensor, once the copy is done. Waits for the copy alone (an
  // event after it), not for work queued on the device later.
  torch::Tensor Wait();

 private:
  torch::Tensor host_;
  std::unique_ptr<c10::Event> done_;  // recorded after the copy; none for a host tensor
};

// Host copies of `tensors` (undefined stays undefined): all started, then waited for.
std::vector<torch::Tensor> Download(const std::vector<torch::Tensor>& tensors);

// `value` with every tensor uploaded to `device` (through tuples, lists and optionals).
c10::IValue ToDevice(const c10::IValue& value, const c10::Device& device);

// `value` with every tensor detached, contiguous and on the CPU: ready for the JS thread.
c10::IValue ToHost(const c10::IValue& value);

// A host IValue → JS: tensors copied into typed arrays, tuples and lists into arrays.
Napi::Value IValueToJs(Napi::Env env, const c10::IValue& value);

// A host tensor → a JS tensor {data, shape, dtype}.
Napi::Object TensorToJs(Napi::Env env, const torch::Tensor& tensor);

// A host tensor's slices along dimension 0 → JS tensors, each with its own ArrayBuffer (so that
// one can be transferred to a worker without the others).
Napi::Array TensorRowsToJs(Napi::Env env, const torch::Tensor& tensor);

// The floating dtype named "float32", "float64", "bfloat16" or "float16"; throws otherwise.
c10::ScalarType FloatingDtype(const std::string& name);

// The JS name of a dtype ("float32", "bfloat16", ...); throws for dtypes JS cannot hold.
std::string DtypeName(c10::ScalarType type);

// A SAM prompt set: N prompts of P points in model-input pixels, each for one batch image.
struct PromptTensors {
  torch::Tensor coords;      // float32 [N, P, 2]
  torch::Tensor labels;      // int32 [N, P]
  torch::Tensor imageIndex;  // int64 [N], each in [0, batchSize)
};

// A JS {coords, labels, imageIndex} → checked prompt tensors for a batch of `batchSize` images.
PromptTensors PromptsFromJs(const Napi::Value& value, int64_t batchSize, const std::string& what);

// A JS tensor that must have `dtype` and `rank` dimensions.
torch::Tensor TensorFromJs(const Napi::Value& value, c10::ScalarType dtype, int64_t rank,
                           const std::string& what);

// A JS tensor's data in place, no copy, checked as TensorFromJs checks it: valid only while the JS
// array is referenced and unchanged (an AsyncJob's keepAlive).
torch::Tensor TensorViewOfJs(const Napi::Value& value, c10::ScalarType dtype, int64_t rank,
                             const std::string& what);

// Parses "cpu", "cuda" or "cuda:N" and checks that this libtorch has that device.
c10::Device ParseDevice(const std::string& name);

}  // namespace crackseg
