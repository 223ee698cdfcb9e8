// predictMasks(module, images: per-image uint8 [H,W,3] (or handles) read in place, promptSets: each
// a list of prompt groups, {probabilities, lowResLogits, hold}) → Promise of one {masks, iou,
// probabilities?, lowResLogits?} per prompt set: masks and probabilities per image, the union over
// the set's groups, as JS arrays or (hold) tensor handles (see ts/binding.ts).
#pragma once

#include <napi.h>

namespace crackseg {

Napi::Value PredictMasks(const Napi::CallbackInfo& info);

}  // namespace crackseg
