// zhangSuenSkeleton(mask: uint8 [H, W], foreground non-zero, read in place) → Uint8Array of H·W:
// its one-pixel-wide Zhang–Suen skeleton, 0/1, as skimage.morphology.skeletonize makes it.
#pragma once

#include <napi.h>

namespace crackseg {

Napi::Value ZhangSuenSkeleton(const Napi::CallbackInfo& info);

}  // namespace crackseg
