// Prompt-free prediction's mask selection, as the official SAM 2 automatic mask generator selects
// the masks of its point grid (one crop, one mask per point): a mask is kept when its predicted
// IoU is above a threshold and its stability score at least another, then duplicates are removed
// by greedy non-maximum suppression of the masks' boxes, best predicted IoU first, per image.
#pragma once

#include <napi.h>
#include <torch/script.h>

#include <string>
#include <vector>

namespace crackseg {

// Its defaults (the official generator's) live in ts/prompts/auto.ts alone: JS passes every field.
struct AutoMaskFilter {
  double iouThreshold;        // kept: predicted IoU > this
  double stabilityThreshold;  // kept: stability score ≥ this
  double stabilityOffset;     // the stability score's logit offset
  double boxNmsThreshold;     // dropped: box IoU with a better kept mask > this
  int64_t pointsPerBatch;     // prompts decoded and scored at the image's size at once
};

// The scores of N masks given as logits [N, H, W] (mask: logit > 0) with predicted IoUs [N].
struct MaskScores {
  torch::Tensor stability;  // float [N]: |logit > offset| / |logit > -offset| (NaN for 0 / 0)
  torch::Tensor boxes;      // float [N, 4]: x0, y0, x1, y1, the first and last mask column and
                            // row (inclusive pixel indices); 0, 0, 0, 0 for an empty mask
  torch::Tensor passed;     // bool [N]: both thresholds met
};
MaskScores ScoreMasks(const torch::Tensor& logits, const torch::Tensor& iou,
                      const AutoMaskFilter& filter);

// Greedy NMS of host boxes [N, 4] by host scores [N] within each image (host imageIndex [N]):
// in descending score order (ties: lower index first), a box is dropped when its IoU with a box
// kept before it, of the same image, is above `threshold` (box area (x1 - x0)(y1 - y0), as the
// official code computes it). Returns the kept indices, ascending.
std::vector<int64_t> BoxNms(const torch::Tensor& boxes, const torch::Tensor& scores,
                            const torch::Tensor& imageIndex, double threshold);

// A JS {iouThreshold, stabilityThreshold, stabilityOffset, boxNmsThreshold, pointsPerBatch}, every
// field required; a TypeError naming `what` and the field otherwise.
AutoMaskFilter AutoMaskFilterFromJs(const Napi::Value& value, const std::string& what);

// selectAutoMasks(logits float32 [N,H,W], iou float32 [N], imageIndex int64 [N], filter) →
// {stability: float32 [N], boxes: float32 [N,4], kept: uint8 [N]}: ScoreMasks, then BoxNms of
// the masks that passed; what prediction applies to an automatic prompt set, on the JS thread.
Napi::Value SelectAutoMasks(const Napi::CallbackInfo& info);

}  // namespace crackseg
