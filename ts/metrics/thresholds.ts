/**
 * Threshold sweep over probability maps for ODS/OIS. Matching is pixel-exact (no distance
 * tolerance). A pixel is predicted crack at threshold t when p ≥ t, compared in float64.
 */
import { binding, maskTensor, probabilityArg } from '../binding.js';
import type { BinaryMask, HeldPlane, ProbabilityMap } from '../image.js';
import { fMeasure, ratio } from './formulas.js';

/** The fixed threshold grid: 0.01, 0.02, …, 0.99 (k / 100 as float64, k = 1..99). */
export const THRESHOLD_GRID: Float64Array = Float64Array.from(
  { length: 99 },
  (_, i) => (i + 1) / 100,
);

/** Per-threshold counts of one image (or summed over images): index i is THRESHOLD_GRID[i]. */
export interface ThresholdCounts {
  /** Ground-truth crack pixels (threshold-independent). */
  groundTruthPixels: number;
  /** Pixels predicted crack at each threshold. */
  predictedPixels: Float64Array;
  /** Predicted crack pixels that are ground-truth crack, at each threshold. */
  truePositives: Float64Array;
}

/** The best F over the grid and the lowest threshold that reaches it. */
export interface BestF {
  f: number;
  threshold: number;
}

/**
 * Counts at every grid threshold in one pass (in the addon, reading the map in place, held or
 * not): each pixel is binned by how many thresholds it reaches, then cumulative sums from the top
 * give the counts per threshold.
 */
export function thresholdCounts(
  probabilities: ProbabilityMap | HeldPlane,
  groundTruth: BinaryMask,
): ThresholdCounts {
  if (probabilities.width !== groundTruth.width || probabilities.height !== groundTruth.height) {
    throw new Error(
      `Probability map is ${probabilities.width}×${probabilities.height} but ground truth is ` +
        `${groundTruth.width}×${groundTruth.height}`,
    );
  }
  const levels = THRESHOLD_GRID.length;
  // all[r], crack[r]: pixels reaching exactly the r lowest thresholds (r = 0..levels).
  const { all, crack } = binding().thresholdHistograms(
    probabilityArg(probabilities),
    maskTensor(groundTruth),
    THRESHOLD_GRID,
  );
  const predictedPixels = new Float64Array(levels);
  const truePositives = new Float64Array(levels);
  let predicted = 0;
  let hits = 0;
  for (let k = levels; k >= 1; k--) {
    predicted += all[k]!;
    hits += crack[k]!;
    predictedPixels[k - 1] = predicted;
    truePositives[k - 1] = hits;
  }
  return { groundTruthPixels: hits + crack[0]!, predictedPixels, truePositives };
}

/** F at each grid threshold, with the empty-case convention of {@link ratio}. */
export function fPerThreshold(counts: ThresholdCounts): Float64Array {
  const gt = counts.groundTruthPixels;
  return counts.predictedPixels.map((predicted, i) => {
    const tp = counts.truePositives[i]!;
    const bothEmpty = predicted === 0 && gt === 0;
    return fMeasure(ratio(tp, predicted, bothEmpty), ratio(tp, gt, bothEmpty));
  });
}

/** The best F over the grid; ties go to the lowest threshold. */
export function bestF(counts: ThresholdCounts): BestF {
  const fs = fPerThreshold(counts);
  let best = 0;
  for (let i = 1; i < fs.length; i++) if (fs[i]! > fs[best]!) best = i;
  return { f: fs[best]!, threshold: THRESHOLD_GRID[best]! };
}

/** Adds `counts` into `total` in place (pooling for ODS). */
export function addThresholdCounts(total: ThresholdCounts, counts: ThresholdCounts): void {
  total.groundTruthPixels += counts.groundTruthPixels;
  for (let i = 0; i < THRESHOLD_GRID.length; i++) {
    total.predictedPixels[i]! += counts.predictedPixels[i]!;
    total.truePositives[i]! += counts.truePositives[i]!;
  }
}

/** All-zero counts over the grid. */
export function emptyThresholdCounts(): ThresholdCounts {
  const levels = THRESHOLD_GRID.length;
  return {
    groundTruthPixels: 0,
    predictedPixels: new Float64Array(levels),
    truePositives: new Float64Array(levels),
  };
}
