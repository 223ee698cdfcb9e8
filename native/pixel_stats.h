// Per-pixel statistics for the metric threads, exact as docs/metrics.md defines them, reading
// maps and masks in place (a held tensor or a JS array): no copy is made.
#pragma once

#include <napi.h>

namespace crackseg {

// thresholdHistograms(probabilities [H,W] float32 | handle, groundTruth [H,W] uint8, thresholds:
// Float64Array, ascending) → {all, crack}: Float64Array(thresholds + 1) where bin r counts the
// pixels (all; ground-truth crack) with p ≥ exactly the r lowest thresholds (p widened to float64;
// NaN reaches none).
Napi::Value ThresholdHistograms(const Napi::CallbackInfo& info);

// skeletonMatches(skeleton, other, mask: uint8 [H,W] each, read in place; offsets: Int32Array of
// (dx, dy) pairs) → {pixels, matched, inMask}: the skeleton's non-zero pixels, those with a
// non-zero pixel of `other` at one of the offsets (inside the image), and those non-zero in `mask`.
Napi::Value SkeletonMatches(const Napi::CallbackInfo& info);

// quantizeProbabilities(probabilities [H,W] float32 | handle, bits: 8 | 16) → Uint8Array or
// Uint16Array of round-half-up(clamp(p, 0, 1) · (2^bits − 1)); NaN becomes 0.
Napi::Value QuantizeProbabilities(const Napi::CallbackInfo& info);

}  // namespace crackseg
