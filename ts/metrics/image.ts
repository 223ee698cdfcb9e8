/**
 * Per-image evaluation. Pure functions over typed arrays with no shared state, so the evaluator
 * can run them in worker threads; the result is structured-clone friendly.
 */
import { binding, maskTensor } from '../binding.js';
import type { BinaryMask, HeldPlane, ProbabilityMap } from '../image.js';
import { zhangSuenSkeleton } from '../vision/skeleton.js';
import type { MaskMetricKey } from './definitions.js';
import { maskMetricsFromCounts, type ConfusionCounts, type SkeletonCounts } from './formulas.js';
import { nonZeroBytes, sumBytes, wordsOf } from '../util/bytes.js';
import { bestF, thresholdCounts, type BestF, type ThresholdCounts } from './thresholds.js';

/** Default skeleton matching tolerance, in pixels. */
export const DEFAULT_TOLERANCE_RADIUS = 2;

export interface ImageEvaluationOptions {
  /** Skeleton matching radius in pixels (Euclidean, inclusive); default 2. */
  toleranceRadius?: number;
  /** The model's probability map (held or not), for the threshold sweep behind ODS/OIS. */
  probabilities?: ProbabilityMap | HeldPlane;
}

/** Everything the reports and the dataset aggregates need from one image; no masks kept. */
export interface ImageEvaluation {
  width: number;
  height: number;
  confusion: ConfusionCounts;
  skeleton: SkeletonCounts;
  metrics: Record<MaskMetricKey, number>;
  /** Present when a probability map was given. */
  sweep?: { counts: ThresholdCounts; best: BestF };
}

/** Scores `prediction` against `groundTruth`. */
export function evaluateImage(
  prediction: BinaryMask,
  groundTruth: BinaryMask,
  options: ImageEvaluationOptions = {},
): ImageEvaluation {
  const confusion = confusionCounts(prediction, groundTruth);
  const skeleton = skeletonCounts(
    prediction,
    groundTruth,
    zhangSuenSkeleton(prediction),
    zhangSuenSkeleton(groundTruth),
    options.toleranceRadius ?? DEFAULT_TOLERANCE_RADIUS,
  );
  const evaluation: ImageEvaluation = {
    width: prediction.width,
    height: prediction.height,
    confusion,
    skeleton,
    metrics: maskMetricsFromCounts(confusion, skeleton),
  };
  if (options.probabilities) {
    const counts = thresholdCounts(options.probabilities, groundTruth);
    evaluation.sweep = { counts, best: bestF(counts) };
  }
  return evaluation;
}

/** TP/FP/FN/TN of `prediction` against `groundTruth` (non-zero bytes are crack). */
export function confusionCounts(prediction: BinaryMask, groundTruth: BinaryMask): ConfusionCounts {
  assertSameSize(prediction, groundTruth);
  const p = prediction.data;
  const g = groundTruth.data;
  let predicted = 0;
  let actual = 0;
  let both = 0;
  // Four pixels per step through 32-bit words when both buffers allow it.
  const pw = wordsOf(p);
  const gw = wordsOf(g);
  const words = pw && gw ? pw.length : 0;
  if (pw && gw) {
    for (let i = 0; i < words; i++) {
      const pi = nonZeroBytes(pw[i]!);
      const gi = nonZeroBytes(gw[i]!);
      predicted += sumBytes(pi);
      actual += sumBytes(gi);
      both += sumBytes(pi & gi);
    }
  }
  for (let i = words << 2; i < p.length; i++) {
    // (v + 255) >> 8 is 1 for any non-zero byte, 0 for zero.
    const pi = (p[i]! + 255) >> 8;
    const gi = (g[i]! + 255) >> 8;
    predicted += pi;
    actual += gi;
    both += pi & gi;
  }
  return {
    truePositives: both,
    falsePositives: predicted - both,
    falseNegatives: actual - both,
    trueNegatives: p.length - predicted - actual + both,
  };
}

/**
 * Skeleton counts given both masks and their skeletons. A skeleton pixel is matched when a pixel
 * of the other skeleton lies within Euclidean distance ≤ `radius` (offsets dx² + dy² ≤ r²).
 */
export function skeletonCounts(
  prediction: BinaryMask,
  groundTruth: BinaryMask,
  predictionSkeleton: BinaryMask,
  groundTruthSkeleton: BinaryMask,
  radius: number,
): SkeletonCounts {
  assertSameSize(prediction, groundTruth);
  assertSameSize(prediction, predictionSkeleton);
  assertSameSize(prediction, groundTruthSkeleton);
  const offsets = diskOffsets(radius);
  const predictionSide = countSkeleton(
    predictionSkeleton,
    groundTruthSkeleton,
    groundTruth,
    offsets,
  );
  const groundTruthSide = countSkeleton(
    groundTruthSkeleton,
    predictionSkeleton,
    prediction,
    offsets,
  );
  return {
    predictionSkeletonPixels: predictionSide.pixels,
    groundTruthSkeletonPixels: groundTruthSide.pixels,
    predictionSkeletonMatched: predictionSide.matched,
    groundTruthSkeletonMatched: groundTruthSide.matched,
    predictionSkeletonInGroundTruth: predictionSide.inMask,
    groundTruthSkeletonInPrediction: groundTruthSide.inMask,
  };
}

/**
 * Integer offsets (dx, dy) with dx² + dy² ≤ r², nearest first so a match is usually found on the
 * first probe. Interleaved: [dx0, dy0, dx1, dy1, …].
 */
export function diskOffsets(radius: number): Int32Array {
  if (!(radius >= 0) || !Number.isFinite(radius)) {
    throw new Error(`Tolerance radius must be a finite number ≥ 0, got ${radius}`);
  }
  const reach = Math.floor(radius);
  const offsets: Array<[number, number]> = [];
  for (let dy = -reach; dy <= reach; dy++) {
    for (let dx = -reach; dx <= reach; dx++) {
      if (dx * dx + dy * dy <= radius * radius) offsets.push([dx, dy]);
    }
  }
  offsets.sort((a, b) => a[0] * a[0] + a[1] * a[1] - (b[0] * b[0] + b[1] * b[1]));
  return Int32Array.from(offsets.flat());
}

/**
 * For each pixel of `skeleton`: is `other` within the disk, and is the pixel inside `mask`? (In
 * the addon: skeletons are sparse and the disk's probes many.)
 */
function countSkeleton(
  skeleton: BinaryMask,
  other: BinaryMask,
  mask: BinaryMask,
  offsets: Int32Array,
): { pixels: number; matched: number; inMask: number } {
  return binding().skeletonMatches(
    maskTensor(skeleton),
    maskTensor(other),
    maskTensor(mask),
    offsets,
  );
}

function assertSameSize(a: BinaryMask, b: BinaryMask): void {
  if (a.width !== b.width || a.height !== b.height) {
    throw new Error(`Mask sizes differ: ${a.width}×${a.height} vs ${b.width}×${b.height}`);
  }
  if (a.data.length !== a.width * a.height || b.data.length !== b.width * b.height) {
    throw new Error('Mask data length does not match its width × height');
  }
}
