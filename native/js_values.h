// Converts between JS values and tensors or TorchScript IValues, on the JS thread. Everything a JS
// caller can get wrong is rejected here, naming the argument, before libtorch sees it: a wrong JS
// type is a TypeError (ERR_CRACKSEG_ARGUMENT), a wrong dtype ERR_CRACKSEG_DTYPE, a wrong shape a
// RangeError (ERR_CRACKSEG_SHAPE), a value out of range ERR_CRACKSEG_RANGE.
#pragma once

#include <napi.h>
#include <torch/script.h>

#include <string>

#include "sam_ops.h"

namespace crackseg {

// info[index] as a string.
std::string StringArg(const Napi::CallbackInfo& info, size_t index, const char* name);

// An integer JS number in [minimum, maximum] (non-integers and NaN are a RangeError).
int64_t IntegerFromJs(const Napi::Value& value, int64_t minimum, int64_t maximum,
                      const std::string& what);

// A JS tensor {data: TypedArray, shape: number[], dtype} → a CPU tensor owning a copy of the data.
torch::Tensor TensorFromJs(const Napi::Value& value, const std::string& what);

// A JS tensor that must have `dtype` and `rank` dimensions.
torch::Tensor TensorFromJs(const Napi::Value& value, c10::ScalarType dtype, int64_t rank,
                           const std::string& what);

// A JS tensor's data in place, no copy, checked as TensorFromJs checks it: valid only while the JS
// array is referenced and unchanged (an AsyncJob's keepAlive).
torch::Tensor TensorViewOfJs(const Napi::Value& value, c10::ScalarType dtype, int64_t rank,
                             const std::string& what);

// A JS value → an IValue of the TorchScript type `type` (tensors on the CPU).
c10::IValue IValueFromJs(const Napi::Value& value, const c10::TypePtr& type,
                         const std::string& what);

// A JS {coords, labels, imageIndex} → checked prompt tensors for a batch of `batchSize` images.
PromptTensors PromptsFromJs(const Napi::Value& value, int64_t batchSize, const std::string& what);

// A host IValue → JS: tensors copied into typed arrays, tuples and lists into arrays.
Napi::Value IValueToJs(Napi::Env env, const c10::IValue& value);

// A host tensor → a JS tensor {data, shape, dtype}.
Napi::Object TensorToJs(Napi::Env env, const torch::Tensor& tensor);

// A host tensor's slices along dimension 0 → JS tensors, each with its own ArrayBuffer (so that
// one can be transferred to a worker without the others).
Napi::Array TensorRowsToJs(Napi::Env env, const torch::Tensor& tensor);

// The floating dtype named "float32", "float64", "bfloat16" or "float16"; a TypeError otherwise.
c10::ScalarType FloatingDtype(const std::string& name);

// The JS name of a dtype ("float32", "bfloat16", ...); a TypeError for dtypes JS cannot hold.
std::string DtypeName(c10::ScalarType type);

}  // namespace crackseg
