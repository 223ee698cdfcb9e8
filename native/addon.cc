// Module entry: registers TorchModule, the trainer, the native functions of ts/binding.ts, the
// runtime queries (versions, devices, threads, device memory) and `errorCodes`; turns TorchScript's
// CPU fusion off and installs the host allocator (host_memory.h). Every function runs under Guarded
// (errors.h): no input ends the process.
#include <ATen/Parallel.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <napi.h>
#include <torch/cuda.h>
#include <torch/script.h>

#include <utility>

#ifdef CRACKSEG_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include "addon_data.h"
#include "auto_masks.h"
#include "device_transfer.h"
#include "errors.h"
#include "host_memory.h"
#include "js_values.h"
#include "pixel_stats.h"
#include "predictor.h"
#include "process_group.h"
#include "skeleton.h"
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
  HostMemoryStats host = GetHostMemoryStats();
  Napi::Object hostMemory = Napi::Object::New(env);
  hostMemory.Set("allocator", host.allocator);
  hostMemory.Set("liveBytes", static_cast<double>(host.liveBytes));
  hostMemory.Set("cachedBytes", static_cast<double>(host.cachedBytes));
  hostMemory.Set("cacheLimitBytes", static_cast<double>(host.cacheLimitBytes));
  result.Set("hostMemory", hostMemory);
  return result;
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  at::set_num_threads(static_cast<int>(IntegerFromJs(info[0], 1, 4096, "setThreads(n)")));
  return info.Env().Undefined();
}

// The CUDA caching allocator's byte counts for a device; null for the CPU.
Napi::Value DeviceMemory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  c10::Device device = ParseDevice(StringArg(info, 0, "device"));
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
}

Napi::Value ResetPeakDeviceMemory(const Napi::CallbackInfo& info) {
  c10::Device device = ParseDevice(StringArg(info, 0, "device"));
#ifdef CRACKSEG_WITH_CUDA
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device.index());
#endif
  (void)device;
  return info.Env().Undefined();
}

}  // namespace
}  // namespace crackseg

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new crackseg::AddonData());
  // CPU fusion off, as in PyTorch's own builds: in a libtorch built with LLVM it compiles kernels
  // during a graph's first optimised runs and rounds differently from eager PyTorch
  // (docs/benchmarks.md). CUDA fusion is left as it is.
  torch::jit::overrideCanFuseOnCPU(false);
  crackseg::Guarded(env, [] { crackseg::InstallHostAllocator(); });
  crackseg::TorchModuleWrap::Init(env, exports);
  crackseg::TrainerWrap::Init(env, exports);
  crackseg::ProcessGroupWrap::Init(env, exports);
  // The plain functions of the native surface (ts/binding.ts declares them), by their JS names.
  const std::pair<const char*, Napi::Function::Callback> functions[] = {
      {"predictMasks", crackseg::GuardedEntry<crackseg::PredictMasks>},
      {"selectAutoMasks", crackseg::GuardedEntry<crackseg::SelectAutoMasks>},
      {"holdTensor", crackseg::GuardedEntry<crackseg::HoldTensor>},
      {"takeTensor", crackseg::GuardedEntry<crackseg::TakeTensor>},
      {"readTensor", crackseg::GuardedEntry<crackseg::ReadTensor>},
      {"releaseTensors", crackseg::GuardedEntry<crackseg::ReleaseTensors>},
      {"heldTensorCount", crackseg::GuardedEntry<crackseg::HeldTensorCount>},
      {"thresholdHistograms", crackseg::GuardedEntry<crackseg::ThresholdHistograms>},
      {"skeletonMatches", crackseg::GuardedEntry<crackseg::SkeletonMatches>},
      {"quantizeProbabilities", crackseg::GuardedEntry<crackseg::QuantizeProbabilities>},
      {"zhangSuenSkeleton", crackseg::GuardedEntry<crackseg::ZhangSuenSkeleton>},
      {"runtimeInfo", crackseg::GuardedEntry<crackseg::RuntimeInfo>},
      {"setThreads", crackseg::GuardedEntry<crackseg::SetThreads>},
      {"deviceMemory", crackseg::GuardedEntry<crackseg::DeviceMemory>},
      {"resetPeakDeviceMemory", crackseg::GuardedEntry<crackseg::ResetPeakDeviceMemory>},
  };
  for (const auto& [name, function] : functions)
    exports.Set(name, Napi::Function::New(env, function, name));
  exports.Set("errorCodes", crackseg::ErrorCodesToJs(env));
  return exports;
}

NODE_API_MODULE(crackseg, InitAddon)
