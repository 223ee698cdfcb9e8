#include "torch_module.h"

#include <caffe2/serialize/inline_container.h>

#include <fstream>
#include <vector>

#include "addon_data.h"
#include "async_job.h"
#include "device_transfer.h"
#include "errors.h"
#include "js_values.h"

namespace crackseg {
namespace {

constexpr const char* kExtraPrefix = "extra/";

// The archive's extra files ("extra/<name>" records), read without knowing their names first.
std::map<std::string, std::string> ReadExtraFiles(const std::string& path) {
  caffe2::serialize::PyTorchStreamReader reader(path);
  std::map<std::string, std::string> files;
  for (const std::string& record : reader.getAllRecords()) {
    if (record.rfind(kExtraPrefix, 0) != 0) continue;
    auto [data, size] = reader.getRecord(record);
    files[record.substr(std::strlen(kExtraPrefix))] =
        std::string(static_cast<const char*>(data.get()), size);
  }
  return files;
}

torch::Tensor FindParameter(const torch::jit::Module& module, const std::string& name) {
  for (const auto& param : module.named_parameters(true))
    if (param.name == name) return param.value;
  ThrowError(ErrorCode::kNotFound, "no parameter named '" + name + "'");
}

std::vector<std::string> MethodNamesOf(const torch::jit::Module& module) {
  std::vector<std::string> names;
  for (const auto& method : module.get_methods()) names.push_back(method.name());
  return names;
}

c10::ScalarType FloatingParameterDtype(const torch::jit::Module& module) {
  for (const auto& param : module.parameters())
    if (param.is_floating_point()) return param.scalar_type();
  return torch::kFloat;
}

Napi::Value Undefined(Napi::Env env, bool&) { return env.Undefined(); }

}  // namespace

LoadedModule::LoadedModule(torch::jit::Module module, c10::Device device,
                           std::map<std::string, std::string> extraFiles)
    : module(std::move(module)),
      device(device),
      extraFiles(std::move(extraFiles)),
      methodNames(MethodNamesOf(this->module)),
      parameterDtype(FloatingParameterDtype(this->module)) {}

void LoadedModule::CheckAlive() const {
  if (disposed) ThrowError(ErrorCode::kDisposed, "this TorchModule was disposed");
}

void LoadedModule::ConvertTo(c10::ScalarType dtype) {
  // Not Module::to(dtype), which casts integer parameters and buffers too.
  std::unique_lock<std::shared_mutex> changing(metadata);
  torch::NoGradGuard noGrad;
  for (auto tensor : module.parameters())
    if (tensor.is_floating_point()) tensor.set_data(tensor.to(dtype));
  for (auto tensor : module.buffers())
    if (tensor.is_floating_point()) tensor.set_data(tensor.to(dtype));
  parameterDtype = FloatingParameterDtype(module);
}

std::shared_ptr<LoadedModule> TorchModuleWrap::FromValue(const Napi::Value& value,
                                                         const char* what) {
  Napi::Env env = value.Env();
  if (!value.IsObject() ||
      !value.As<Napi::Object>().InstanceOf(GetAddonData(env).torchModule.Value()))
    ThrowTypeError(TypeCode::kArgument, std::string(what) + " must be a TorchModule");
  return Unwrap(value.As<Napi::Object>())->State();
}

void TorchModuleWrap::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function constructor =
      DefineClass(env, "TorchModule",
                  {
                      InstanceAccessor<&TorchModuleWrap::Device>("device"),
                      InstanceAccessor<&TorchModuleWrap::Dtype>("dtype"),
                      InstanceMethod<&TorchModuleWrap::ConvertTo>("convertTo"),
                      InstanceMethod<&TorchModuleWrap::MethodNames>("methodNames"),
                      InstanceMethod<&TorchModuleWrap::ExtraFiles>("extraFiles"),
                      InstanceMethod<&TorchModuleWrap::Run>("run"),
                      InstanceMethod<&TorchModuleWrap::Parameters>("parameters"),
                      InstanceMethod<&TorchModuleWrap::GetParameter>("getParameter"),
                      InstanceMethod<&TorchModuleWrap::SetParameter>("setParameter"),
                      InstanceMethod<&TorchModuleWrap::SetRequiresGrad>("setRequiresGrad"),
                      InstanceMethod<&TorchModuleWrap::SetTraining>("setTraining"),
                      InstanceMethod<&TorchModuleWrap::Dispose>("dispose"),
                  });
  GetAddonData(env).torchModule = Napi::Persistent(constructor);
  exports.Set("TorchModule", constructor);
  exports.Set("loadModule", Napi::Function::New(env, &TorchModuleWrap::Load, "loadModule"));
}

TorchModuleWrap::TorchModuleWrap(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<TorchModuleWrap>(info) {
  Guarded(info.Env(), [&] {
    if (info.Length() != 1 || !info[0].IsExternal())
      ThrowTypeError(TypeCode::kArgument, "TorchModule is created by loadModule(path, device)");
    auto* loaded = info[0].As<Napi::External<std::shared_ptr<LoadedModule>>>().Data();
    state_ = std::move(*loaded);
    delete loaded;
    return 0;
  });
}

std::shared_ptr<LoadedModule> TorchModuleWrap::State() const {
  if (!state_) ThrowError(ErrorCode::kDisposed, "this TorchModule was disposed");
  return state_;
}

Napi::Value TorchModuleWrap::Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    std::string path = StringArg(info, 0, "path");
    c10::Device device = ParseDevice(StringArg(info, 1, "device"));
    using Loaded = std::shared_ptr<LoadedModule>;
    return AsyncJob<Loaded>::Start(
        env,
        [path, device]() -> Loaded {
          if (!std::ifstream(path).good()) ThrowError(ErrorCode::kIo, "cannot open '" + path + "'");
          auto extraFiles = ReadExtraFiles(path);
          torch::jit::Module module = torch::jit::load(path, device);
          module.eval();
          return std::make_shared<LoadedModule>(std::move(module), device, std::move(extraFiles));
        },
        [](Napi::Env env, Loaded& loaded) -> Napi::Value {
          auto* handle = new Loaded(std::move(loaded));
          return GetAddonData(env).torchModule.New({Napi::External<Loaded>::New(env, handle)});
        });
  });
}

Napi::Value TorchModuleWrap::Device(const Napi::CallbackInfo& info) {
  return Guarded(info.Env(), [&]() -> Napi::Value {
    return Napi::String::New(info.Env(), State()->device.str());
  });
}

Napi::Value TorchModuleWrap::Dtype(const Napi::CallbackInfo& info) {
  return Guarded(info.Env(), [&]() -> Napi::Value {
    return Napi::String::New(info.Env(), DtypeName(State()->parameterDtype));
  });
}

Napi::Value TorchModuleWrap::ConvertTo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    auto state = State();
    c10::ScalarType dtype = FloatingDtype(StringArg(info, 0, "dtype"));
    return AsyncJob<bool>::Start(
        env,
        [state, dtype]() {
          std::unique_lock<std::shared_mutex> writing(state->access);
          state->CheckAlive();
          state->ConvertTo(dtype);
          return true;
        },
        Undefined);
  });
}

Napi::Value TorchModuleWrap::MethodNames(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    const std::vector<std::string>& names = State()->methodNames;
    Napi::Array result = Napi::Array::New(env, names.size());
    for (size_t i = 0; i < names.size(); ++i) result.Set(i, names[i]);
    return result;
  });
}

Napi::Value TorchModuleWrap::ExtraFiles(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    Napi::Object result = Napi::Object::New(env);
    for (const auto& [name, contents] : State()->extraFiles) result.Set(name, contents);
    return result;
  });
}

Napi::Value TorchModuleWrap::Run(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    auto state = State();
    std::string methodName = StringArg(info, 0, "method");
    if (info.Length() < 2 || !info[1].IsArray())
      ThrowTypeError(TypeCode::kArgument, "inputs must be an array");
    Napi::Array inputs = info[1].As<Napi::Array>();

    auto method = state->module.find_method(methodName);
    if (!method) ThrowError(ErrorCode::kNotFound, "the module has no method '" + methodName + "'");
    const auto& arguments = method->function().getSchema().arguments();
    size_t expected = arguments.size() - 1;  // arguments[0] is self
    if (inputs.Length() > expected)
      ThrowRangeError(RangeCode::kRange, methodName + "() takes " + std::to_string(expected) +
                                             " inputs, got " + std::to_string(inputs.Length()));
    std::vector<c10::IValue> stack{state->module._ivalue()};
    for (size_t i = 0; i < expected; ++i) {
      const c10::Argument& argument = arguments[i + 1];
      std::string what =
          methodName + "() input " + std::to_string(i) + " '" + argument.name() + "'";
      if (i < inputs.Length()) {
        stack.push_back(IValueFromJs(inputs.Get(i), argument.type(), what));
      } else if (argument.default_value()) {
        stack.push_back(*argument.default_value());
      } else {
        ThrowTypeError(TypeCode::kArgument, what + " is missing");
      }
    }
    return AsyncJob<c10::IValue>::Start(
        env,
        [state, methodName, stack = std::move(stack)]() mutable -> c10::IValue {
          std::shared_lock<std::shared_mutex> reading(state->access);
          torch::NoGradGuard noGrad;
          for (size_t i = 1; i < stack.size(); ++i) stack[i] = ToDevice(stack[i], state->device);
          torch::jit::Method method = state->module.get_method(methodName);
          method.function().run(stack);
          return ToHost(stack.back());
        },
        [](Napi::Env env, c10::IValue& output) { return IValueToJs(env, output); });
  });
}

Napi::Value TorchModuleWrap::Parameters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    auto state = State();
    std::shared_lock<std::shared_mutex> reading(state->metadata);
    auto params = state->module.named_parameters(true);
    Napi::Array result = Napi::Array::New(env);
    for (const auto& param : params) {
      Napi::Object entry = Napi::Object::New(env);
      entry.Set("name", param.name);
      Napi::Array shape = Napi::Array::New(env, param.value.dim());
      for (int64_t d = 0; d < param.value.dim(); ++d) shape.Set(d, param.value.size(d));
      entry.Set("shape", shape);
      entry.Set("dtype", DtypeName(param.value.scalar_type()));
      entry.Set("requiresGrad", param.value.requires_grad());
      result.Set(result.Length(), entry);
    }
    return result;
  });
}

Napi::Value TorchModuleWrap::GetParameter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    auto state = State();
    std::string name = StringArg(info, 0, "name");
    return AsyncJob<torch::Tensor>::Start(
        env,
        [state, name]() {
          std::shared_lock<std::shared_mutex> reading(state->access);
          return FindParameter(state->module, name).detach().clone();
        },
        [](Napi::Env env, torch::Tensor& value) -> Napi::Value { return TensorToJs(env, value); });
  });
}

Napi::Value TorchModuleWrap::SetParameter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    auto state = State();
    std::string name = StringArg(info, 0, "name");
    if (info.Length() < 2) ThrowTypeError(TypeCode::kArgument, "setParameter(name, tensor)");
    torch::Tensor value = TensorFromJs(info[1], "parameter '" + name + "'");
    return AsyncJob<bool>::Start(
        env,
        [state, name, value]() {
          std::unique_lock<std::shared_mutex> writing(state->access);
          torch::Tensor param = FindParameter(state->module, name);
          if (param.sizes() != value.sizes())
            ThrowRangeError(RangeCode::kShape, "parameter '" + name + "' has shape " +
                                                   c10::str(param.sizes()) + ", got " +
                                                   c10::str(value.sizes()));
          if (param.scalar_type() != value.scalar_type())
            ThrowTypeError(TypeCode::kDtype, "parameter '" + name + "' is " +
                                                 DtypeName(param.scalar_type()) + ", got " +
                                                 DtypeName(value.scalar_type()));
          torch::NoGradGuard noGrad;
          param.copy_(value);
          return true;
        },
        Undefined);
  });
}

Napi::Value TorchModuleWrap::SetRequiresGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    auto state = State();
    if (info.Length() < 2 || !info[0].IsArray() || !info[1].IsBoolean())
      ThrowTypeError(TypeCode::kArgument,
                     "setRequiresGrad(names: string[], requiresGrad: boolean)");
    Napi::Array names = info[0].As<Napi::Array>();
    bool flag = info[1].As<Napi::Boolean>();
    std::vector<std::string> wanted;
    for (uint32_t i = 0; i < names.Length(); ++i) {
      if (!names.Get(i).IsString()) ThrowTypeError(TypeCode::kArgument, "names must be strings");
      wanted.push_back(names.Get(i).As<Napi::String>());
    }
    return AsyncJob<bool>::Start(
        env,
        [state, wanted, flag]() {
          std::unique_lock<std::shared_mutex> writing(state->access);
          std::vector<torch::Tensor> params;
          for (const std::string& name : wanted) {
            torch::Tensor param = FindParameter(state->module, name);
            if (flag && !param.is_floating_point())
              ThrowTypeError(TypeCode::kDtype, "parameter '" + name + "' is " +
                                                   DtypeName(param.scalar_type()) +
                                                   ": it cannot require grad");
            params.push_back(param);
          }
          std::unique_lock<std::shared_mutex> changing(state->metadata);
          for (auto& param : params) param.requires_grad_(flag);
          return true;
        },
        Undefined);
  });
}

Napi::Value TorchModuleWrap::SetTraining(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    auto state = State();
    if (info.Length() < 1 || !info[0].IsBoolean())
      ThrowTypeError(TypeCode::kArgument, "setTraining(training: boolean)");
    bool training = info[0].As<Napi::Boolean>();
    return AsyncJob<bool>::Start(
        env,
        [state, training]() {
          std::unique_lock<std::shared_mutex> writing(state->access);
          state->module.train(training);
          return true;
        },
        Undefined);
  });
}

Napi::Value TorchModuleWrap::Dispose(const Napi::CallbackInfo& info) {
  return Guarded(info.Env(), [&] {
    if (state_) state_->disposed = true;  // trainers holding it stop; in-flight jobs finish
    state_.reset();
    return info.Env().Undefined();
  });
}

}  // namespace crackseg
