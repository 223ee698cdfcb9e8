// predictMasks(module, images uint8 [B,3,H,W], promptSets, {probabilities, lowResLogits}) →
// Promise of one {masks, iou, probabilities?, lowResLogits?} per prompt set (see ts/binding.ts).
#pragma once

#include <napi.h>

namespace crackseg {

Napi::Value PredictMasks(const Napi::CallbackInfo& info);

}  // namespace crackseg
