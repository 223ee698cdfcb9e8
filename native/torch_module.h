// TorchModule: a loaded TorchScript module exposed to JS. Loading and running happen on the libuv
// pool; parameter access is synchronous. After dispose() every call throws.
#pragma once

#include <napi.h>
#include <torch/script.h>

#include <map>
#include <memory>
#include <string>

namespace crackseg {

// What a TorchModule owns. Shared with in-flight jobs, so dispose() never frees it under them.
struct LoadedModule {
  torch::jit::Module module;
  c10::Device device;
  std::map<std::string, std::string> extraFiles;
};

class TorchModuleWrap : public Napi::ObjectWrap<TorchModuleWrap> {
 public:
  // Adds the class to `exports` and `loadModule(path, device)` → Promise<TorchModule>.
  static void Init(Napi::Env env, Napi::Object exports);

  // Constructed only by loadModule (through an External holding the loaded state).
  explicit TorchModuleWrap(const Napi::CallbackInfo& info);

  // The loaded state; throws a JS Error after dispose().
  std::shared_ptr<LoadedModule> State(Napi::Env env) const;

 private:
  static Napi::Value Load(const Napi::CallbackInfo& info);
  Napi::Value Device(const Napi::CallbackInfo& info);
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
