// Host tensors held in native memory for another thread: the JS thread that predicted them gets a
// number; a worker thread (its own instance of the addon) takes the data as a JS array, so the
// pixels never pass through the JS thread that feeds the device. A handle that is not a positive
// integer is a TypeError or RangeError; a spent or unknown one ERR_CRACKSEG_HANDLE.
#pragma once

#include <napi.h>
#include <torch/script.h>

#include <string>

namespace crackseg {

// Each slice of `tensor` along dimension 0 held until taken or released → their handles.
Napi::Array HoldRows(Napi::Env env, const torch::Tensor& tensor);

// A plane given as a tensor handle (the held tensor, still held) or as a JS tensor (read in place),
// checked to have `dtype` and `rank` dimensions.
torch::Tensor HeldOrViewOfJs(const Napi::Value& value, c10::ScalarType dtype, int64_t rank,
                             const std::string& what);

// holdTensor(tensor) → handle: a copy of a JS tensor, held for another thread.
Napi::Value HoldTensor(const Napi::CallbackInfo& info);

// takeTensor(handle) → {data, shape, dtype}, copied into this thread's memory; spends the handle.
Napi::Value TakeTensor(const Napi::CallbackInfo& info);

// readTensor(handle) → {data, shape, dtype}, copied into this thread's memory; the tensor stays
// held.
Napi::Value ReadTensor(const Napi::CallbackInfo& info);

// releaseTensors(handles) drops held tensors; spent and unknown handles are ignored.
Napi::Value ReleaseTensors(const Napi::CallbackInfo& info);

// heldTensorCount() → how many tensors are held now (leak checks).
Napi::Value HeldTensorCount(const Napi::CallbackInfo& info);

}  // namespace crackseg
