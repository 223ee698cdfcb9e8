// Module entry: registers TorchModule, the trainer, the native functions of ts/binding.ts and the
// runtime queries (versions, devices, threads, device memory); turns TorchScript's CPU fusion off.
#include <ATen/Parallel.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <napi.h>
#include <torch/cuda.h>
#include <torch/script.h>

#include <cmath>
#include <utility>

#ifdef CRACKSEG_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include "addon_data.h"
#include "auto_masks.h"
#include "errors.h"
#include "pixel_stats.h"
#include "predictor.h"
#include "skeleton.h"
#include "tensor_convert.h"
#include "tensor_store.h"
#include "torch_module.h"
#include "trainer.h"

namespace torch::jit {
// From torch/csrc/jit/codegen/fuser/interface.h, which not every libtorch ships (Debian's does
// not); every libtorch since 1.x exports it.
TORCH_API void overrideCanFuseOnCPU(bool value);
}  // namespace torch::jit

namespace crackseg {
namespace {

Napi::Value RuntimeInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    Napi::Object result = Napi::Object::New(env);
    result.Set("torchVersion", CRACKSEG_TORCH_VERSION);
    result.Set("flavour", CRACKSEG_TORCH_FLAVOUR);
    bool cuda = torch::cuda::is_available();
    result.Set("cudaAvailable", cuda);
    int count = cuda ? static_cast<int>(torch::cuda::device_count()) : 0;
    result.Set("cudaDeviceCount", count);
    Napi::Array names = Napi::Array::New(env, count);
#ifdef CRACKSEG_WITH_CUDA
    for (int i = 0; i < count; ++i) names.Set(i, at::cuda::getDeviceProperties(i)->name);
#endif
    result.Set("cudaDevices", names);
    const auto& hooks = at::detail::getCUDAHooks();
    result.Set("cudnnVersion", cuda && hooks.hasCuDNN()
                                   ? Napi::Value(Napi::Number::New(env, hooks.versionCuDNN()))
                                   : env.Null());
    result.Set("threads", at::get_num_threads());
    return result;
  });
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double threads =
      info.Length() < 1 || !info[0].IsNumber() ? 0 : info[0].As<Napi::Number>().DoubleValue();
  if (!(threads >= 1 && threads <= 4096) || threads != std::floor(threads))
    throw Napi::TypeError::New(env, "setThreads(n) needs an integer from 1 to 4096");
  at::set_num_threads(info[0].As<Napi::Number>().Int32Value());
  return env.Undefined();
}

// The CUDA caching allocator's byte counts for a device; null for the CPU.
Napi::Value DeviceMemory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "device");
  return Guarded(env, [&]() -> Napi::Value {
    c10::Device device = ParseDevice(name);
    if (!device.is_cuda()) return env.Null();
    Napi::Object result = Napi::Object::New(env);
#ifdef CRACKSEG_WITH_CUDA
    auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
    constexpr size_t kAggregate = 0;  // StatType::AGGREGATE: the small and large pools together
    result.Set("allocatedBytes", static_cast<double>(stats.allocated_bytes[kAggregate].current));
    result.Set("peakAllocatedBytes", static_cast<double>(stats.allocated_bytes[kAggregate].peak));
    result.Set("reservedBytes", static_cast<double>(stats.reserved_bytes[kAggregate].current));
    result.Set("peakReservedBytes", static_cast<double>(stats.reserved_bytes[kAggregate].peak));
#endif
    return result;
  });
}

Napi::Value ResetPeakDeviceMemory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "device");
  Guarded(env, [&] {
    c10::Device device = ParseDevice(name);
#ifdef CRACKSEG_WITH_CUDA
    if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device.index());
#endif
    return device.is_cuda();
  });
  return env.Undefined();
}

}  // namespace
}  // namespace crackseg

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new crackseg::AddonData());
  // TorchScript fuses CPU kernels only in a libtorch built with LLVM (Debian's, not PyTorch's
  // own): they compile during a graph's first optimised runs, for seconds, or past seven minutes
  // (torch 2.6 merging LoRA), and round differently from eager PyTorch. Off, as in PyTorch's
  // builds; CUDA fusion is left as it is.
  torch::jit::overrideCanFuseOnCPU(false);
  crackseg::TorchModuleWrap::Init(env, exports);
  crackseg::TrainerWrap::Init(env, exports);
  // The plain functions of the native surface (ts/binding.ts declares them), by their JS names.
  const std::pair<const char*, Napi::Function::Callback> functions[] = {
      {"predictMasks", crackseg::PredictMasks},
      {"selectAutoMasks", crackseg::SelectAutoMasks},
      {"holdTensor", crackseg::HoldTensor},
      {"takeTensor", crackseg::TakeTensor},
      {"readTensor", crackseg::ReadTensor},
      {"releaseTensors", crackseg::ReleaseTensors},
      {"heldTensorCount", crackseg::HeldTensorCount},
      {"thresholdHistograms", crackseg::ThresholdHistograms},
      {"skeletonMatches", crackseg::SkeletonMatches},
      {"quantizeProbabilities", crackseg::QuantizeProbabilities},
      {"zhangSuenSkeleton", crackseg::ZhangSuenSkeleton},
      {"runtimeInfo", crackseg::RuntimeInfo},
      {"setThreads", crackseg::SetThreads},
      {"deviceMemory", crackseg::DeviceMemory},
      {"resetPeakDeviceMemory", crackseg::ResetPeakDeviceMemory},
  };
  for (const auto& [name, function] : functions)
    exports.Set(name, Napi::Function::New(env, function, name));
  return exports;
}

NODE_API_MODULE(crackseg, InitAddon)
