// TorchModule: a loaded TorchScript module exposed to JS. Loading, running, reading a parameter's
// values and every change to the module (convertTo, setParameter, setRequiresGrad, setTraining)
// happen on the libuv pool; what the JS thread reads (device, dtype, methods, extra files, the
// parameters' names, shapes, dtypes and flags) no training step locks, so the JS thread never
// waits for one. After dispose() every call throws ERR_CRACKSEG_DISPOSED.
#pragma once

#include <napi.h>
#include <torch/script.h>

#include <atomic>
#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <vector>

namespace crackseg {

// What a TorchModule owns. Shared with in-flight jobs and trainers, so dispose() never frees it
// under them; work asked for after dispose() is refused (`disposed`), work queued before runs.
struct LoadedModule {
  LoadedModule(torch::jit::Module module, c10::Device device,
               std::map<std::string, std::string> extraFiles);

  torch::jit::Module module;
  const c10::Device device;
  const std::map<std::string, std::string> extraFiles;
  // Fixed at load, so read without `access`: the methods, and (a TorchScript class's methods and
  // their schemas never change) what Run looks up.
  const std::vector<std::string> methodNames;
  // Jobs that read the module (run, predictMasks) hold it shared; whatever changes it (a training
  // step, setParameter, setRequiresGrad, setTraining) holds it exclusively.
  std::shared_mutex access;
  // The parameters' dtypes and requires_grad flags, which parameters() reads on the JS thread:
  // changed only inside `access`, under this lock too; a training step never takes it.
  std::shared_mutex metadata;
  std::atomic<bool> disposed{false};
  // The dtype of the floating-point parameters (float32 when there are none), kept by ConvertTo.
  std::atomic<c10::ScalarType> parameterDtype;

  // ERR_CRACKSEG_DISPOSED when the module was disposed.
  void CheckAlive() const;

  // Casts the floating-point parameters and buffers to `dtype` in place (the tensors keep their
  // identity and requires_grad; integer ones are left alone). The caller holds `access`
  // exclusively; `metadata` is taken here.
  void ConvertTo(c10::ScalarType dtype);
};

class TorchModuleWrap : public Napi::ObjectWrap<TorchModuleWrap> {
 public:
  // Adds the class to `exports` and `loadModule(path, device)` → Promise<TorchModule>.
  static void Init(Napi::Env env, Napi::Object exports);

  // The loaded state of a JS TorchModule; a TypeError for any other value, ERR_CRACKSEG_DISPOSED
  // if disposed.
  static std::shared_ptr<LoadedModule> FromValue(const Napi::Value& value, const char* what);

  // Constructed only by loadModule (through an External holding the loaded state).
  explicit TorchModuleWrap(const Napi::CallbackInfo& info);

 private:
  std::shared_ptr<LoadedModule> State() const;

  static Napi::Value Load(const Napi::CallbackInfo& info);
  Napi::Value Device(const Napi::CallbackInfo& info);
  Napi::Value Dtype(const Napi::CallbackInfo& info);
  Napi::Value ConvertTo(const Napi::CallbackInfo& info);
  Napi::Value MethodNames(const Napi::CallbackInfo& info);
  Napi::Value ExtraFiles(const Napi::CallbackInfo& info);
  Napi::Value Run(const Napi::CallbackInfo& info);
  Napi::Value Parameters(const Napi::CallbackInfo& info);
  Napi::Value GetParameter(const Napi::CallbackInfo& info);
  Napi::Value SetParameter(const Napi::CallbackInfo& info);
  Napi::Value SetRequiresGrad(const Napi::CallbackInfo& info);
  Napi::Value SetTraining(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  std::shared_ptr<LoadedModule> state_;
};

}  // namespace crackseg
