/**
 * Metric values from counts. Per-image and pooled (dataset) values go through the same functions,
 * so the empty-case convention is applied in exactly one place: {@link ratio}.
 */
import type { MaskMetricKey } from './definitions.js';

/** Pixel confusion counts of a binary prediction against its ground truth. */
export interface ConfusionCounts {
  truePositives: number;
  falsePositives: number;
  falseNegatives: number;
  trueNegatives: number;
}

/**
 * Skeleton counts behind skeleton IoU and clDice. S_P, S_G are the skeletons of prediction and
 * ground truth; V_P, V_G the masks themselves.
 */
export interface SkeletonCounts {
  /** |S_P| */
  predictionSkeletonPixels: number;
  /** |S_G| */
  groundTruthSkeletonPixels: number;
  /** Pixels of S_P with a pixel of S_G within the tolerance radius. */
  predictionSkeletonMatched: number;
  /** Pixels of S_G with a pixel of S_P within the tolerance radius. */
  groundTruthSkeletonMatched: number;
  /** |S_P ∩ V_G| */
  predictionSkeletonInGroundTruth: number;
  /** |S_G ∩ V_P| */
  groundTruthSkeletonInPrediction: number;
}

/**
 * The one empty-case convention: a ratio whose denominator is 0 is 1 when prediction and ground
 * truth are both empty (nothing to find, nothing claimed: perfect agreement) and 0 otherwise
 * (e.g. precision of an empty prediction against a non-empty ground truth).
 */
export function ratio(numerator: number, denominator: number, bothEmpty: boolean): number {
  if (denominator === 0) return bothEmpty ? 1 : 0;
  return numerator / denominator;
}

/** Harmonic mean of precision and recall; 0 when both are 0. */
export function fMeasure(precision: number, recall: number): number {
  const sum = precision + recall;
  return sum === 0 ? 0 : (2 * precision * recall) / sum;
}

/** The mask metrics that need only the pixel confusion (no skeletons). */
export type PixelMetricKey = Exclude<MaskMetricKey, 'skeletonIou' | 'clDice'>;

/** True when neither prediction nor ground truth has a crack pixel (see {@link ratio}). */
function bothEmpty({ truePositives: tp, falsePositives: fp, falseNegatives: fn }: ConfusionCounts) {
  return tp + fp === 0 && tp + fn === 0;
}

/** The pixel metrics from confusion counts (of one image, or summed over images). */
export function pixelMetricsFromCounts(confusion: ConfusionCounts): Record<PixelMetricKey, number> {
  const { truePositives: tp, falsePositives: fp, falseNegatives: fn } = confusion;
  const empty = bothEmpty(confusion);
  const precision = ratio(tp, tp + fp, empty);
  const recall = ratio(tp, tp + fn, empty);
  return {
    iou: ratio(tp, tp + fp + fn, empty),
    dice: ratio(2 * tp, 2 * tp + fp + fn, empty),
    precision,
    recall,
    f1: fMeasure(precision, recall),
  };
}

/** Every mask metric from confusion and skeleton counts (of one image, or summed over images). */
export function maskMetricsFromCounts(
  confusion: ConfusionCounts,
  skeleton: SkeletonCounts,
): Record<MaskMetricKey, number> {
  const empty = bothEmpty(confusion);
  const matched = skeleton.predictionSkeletonMatched + skeleton.groundTruthSkeletonMatched;
  const skeletonTotal = skeleton.predictionSkeletonPixels + skeleton.groundTruthSkeletonPixels;
  const topologyPrecision = ratio(
    skeleton.predictionSkeletonInGroundTruth,
    skeleton.predictionSkeletonPixels,
    empty,
  );
  const topologySensitivity = ratio(
    skeleton.groundTruthSkeletonInPrediction,
    skeleton.groundTruthSkeletonPixels,
    empty,
  );
  return {
    ...pixelMetricsFromCounts(confusion),
    // Matched pixels counted from both sides: at radius 0 this is exactly the IoU of the skeletons.
    skeletonIou: ratio(matched, 2 * skeletonTotal - matched, empty),
    clDice: fMeasure(topologyPrecision, topologySensitivity),
  };
}
