// Per-environment addon state: the JS constructors the addon creates instances of.
#pragma once

#include <napi.h>

namespace crackseg {

struct AddonData {
  Napi::FunctionReference torchModule;
  Napi::FunctionReference trainer;
  Napi::FunctionReference processGroup;
};

inline AddonData& GetAddonData(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

}  // namespace crackseg
