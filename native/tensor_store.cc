// One store for the process: every thread's instance of the addon shares it.
#include "tensor_store.h"

#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "errors.h"
#include "js_values.h"

namespace crackseg {
namespace {

class TensorStore {
 public:
  int64_t Hold(torch::Tensor tensor) {
    std::lock_guard<std::mutex> lock(mutex_);
    int64_t handle = ++last_;
    held_.emplace(handle, std::move(tensor));
    return handle;
  }

  // The held tensor, now no longer held; undefined when the handle is spent or unknown.
  torch::Tensor Take(int64_t handle) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = held_.find(handle);
    if (found == held_.end()) return {};
    torch::Tensor tensor = std::move(found->second);
    held_.erase(found);
    return tensor;
  }

  // The held tensor, still held; undefined when the handle is spent or unknown.
  torch::Tensor Peek(int64_t handle) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = held_.find(handle);
    return found == held_.end() ? torch::Tensor() : found->second;
  }

  size_t Count() {
    std::lock_guard<std::mutex> lock(mutex_);
    return held_.size();
  }

 private:
  std::mutex mutex_;
  int64_t last_ = 0;  // handles are never reused, so a spent one cannot take another's tensor
  std::unordered_map<int64_t, torch::Tensor> held_;
};

TensorStore& Store() {
  static TensorStore store;
  return store;
}

// A handle is a positive integer below 2^53: a TypeError for a non-number, a RangeError for any
// other number (never truncated to another handle).
int64_t HandleOf(const Napi::Value& value, const std::string& what) {
  if (!value.IsNumber())
    ThrowTypeError(TypeCode::kArgument, what + " must be a tensor handle (a number)");
  return IntegerFromJs(value, 1, (int64_t{1} << 53) - 1, what);
}

// The tensor of `handle`, spent when `take`; an Error when the handle is spent or unknown.
torch::Tensor Held(int64_t handle, bool take) {
  torch::Tensor tensor = take ? Store().Take(handle) : Store().Peek(handle);
  if (!tensor.defined())
    ThrowError(ErrorCode::kHandle,
               "tensor handle " + std::to_string(handle) + " was already taken or released");
  return tensor;
}

// info[0]'s held tensor as a JS tensor in this thread's memory.
Napi::Value HeldToJs(const Napi::CallbackInfo& info, const char* what, bool take) {
  torch::Tensor tensor = Held(HandleOf(info[0], what), take);
  return TensorToJs(info.Env(), tensor);
}

}  // namespace

Napi::Array HoldRows(Napi::Env env, const torch::Tensor& tensor) {
  std::vector<torch::Tensor> rows = tensor.unbind(0);
  Napi::Array handles = Napi::Array::New(env, rows.size());
  for (size_t i = 0; i < rows.size(); ++i)
    handles.Set(i, Napi::Number::New(env, static_cast<double>(Store().Hold(rows[i]))));
  return handles;
}

Napi::Value HoldTensor(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  torch::Tensor tensor = TensorFromJs(info[0], "holdTensor(tensor)");
  return Napi::Number::New(env, static_cast<double>(Store().Hold(std::move(tensor))));
}

Napi::Value ReadTensor(const Napi::CallbackInfo& info) {
  return HeldToJs(info, "readTensor(handle)", /*take=*/false);
}

Napi::Value TakeTensor(const Napi::CallbackInfo& info) {
  return HeldToJs(info, "takeTensor(handle)", /*take=*/true);
}

torch::Tensor HeldOrViewOfJs(const Napi::Value& value, c10::ScalarType dtype, int64_t rank,
                             const std::string& what) {
  if (!value.IsNumber()) return TensorViewOfJs(value, dtype, rank, what);
  torch::Tensor tensor = Held(HandleOf(value, what), /*take=*/false);
  if (tensor.scalar_type() != dtype || tensor.dim() != rank || !tensor.device().is_cpu())
    ThrowTypeError(TypeCode::kDtype, what + ": the held tensor is " +
                                         std::string(c10::toString(tensor.scalar_type())) + " " +
                                         c10::str(tensor.sizes()) + ", not " +
                                         c10::toString(dtype) + " of rank " + std::to_string(rank));
  return tensor.contiguous();
}

Napi::Value ReleaseTensors(const Napi::CallbackInfo& info) {
  if (!info[0].IsArray()) ThrowTypeError(TypeCode::kArgument, "releaseTensors(handles: number[])");
  Napi::Array handles = info[0].As<Napi::Array>();
  // All checked before any is released: a bad entry releases none.
  std::vector<int64_t> checked;
  for (uint32_t i = 0; i < handles.Length(); ++i)
    checked.push_back(HandleOf(handles.Get(i), "handles[" + std::to_string(i) + "]"));
  for (int64_t handle : checked) Store().Take(handle);
  return info.Env().Undefined();
}

Napi::Value HeldTensorCount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(Store().Count()));
}

}  // namespace crackseg
