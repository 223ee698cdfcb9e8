// predictMasks(module, images: per-image uint8 [H,W,3] read in place, promptSets,
// {probabilities, lowResLogits}) → Promise of one {masks, iou, probabilities?, lowResLogits?} per
// prompt set, masks and probabilities per image (see ts/binding.ts).
#pragma once

#include <napi.h>

namespace crackseg {

Napi::Value PredictMasks(const Napi::CallbackInfo& info);

}  // namespace crackseg
