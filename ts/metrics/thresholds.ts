/**
 * Threshold sweep over probability maps for ODS/OIS. Matching is pixel-exact (no distance
 * tolerance). A pixel is predicted crack at threshold t when p ≥ t, compared in float64.
 */
import type { BinaryMask, ProbabilityMap } from '../image.js';
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
 * Counts at every grid threshold in one pass: each pixel is binned by how many thresholds it
 * reaches, then cumulative sums from the top give the counts per threshold.
 */
export function thresholdCounts(
  probabilities: ProbabilityMap,
  groundTruth: BinaryMask,
): ThresholdCounts {
  if (probabilities.width !== groundTruth.width || probabilities.height !== groundTruth.height) {
    throw new Error(
      `Probability map is ${probabilities.width}×${probabilities.height} but ground truth is ` +
        `${groundTruth.width}×${groundTruth.height}`,
    );
  }
  const levels = THRESHOLD_GRID.length;
  const { below, atOrAbove } = binEdges();
  // reached[r]: pixels reaching exactly the r lowest thresholds (r = 0..levels).
  const reachedAll = new Int32Array(levels + 1);
  const reachedCrack = new Int32Array(levels + 1);
  const p = probabilities.data;
  const gt = groundTruth.data;
  for (let i = 0; i < p.length; i++) {
    const value = p[i]!;
    // Truncation is floor(p·100) for p in [0, 1), off by at most one near grid points (float
    // rounding), fixed by one comparison each way; NaN and negatives land in bin 0.
    let reached = levels;
    if (!(value >= 1)) {
      reached = Math.max(0, (value * 100) | 0);
      if (value < below[reached]!) reached--;
      else if (value >= atOrAbove[reached]!) reached++;
    }
    reachedAll[reached]!++;
    if (gt[i]) reachedCrack[reached]!++;
  }
  const predictedPixels = new Float64Array(levels);
  const truePositives = new Float64Array(levels);
  let predicted = 0;
  let hits = 0;
  for (let k = levels; k >= 1; k--) {
    predicted += reachedAll[k]!;
    hits += reachedCrack[k]!;
    predictedPixels[k - 1] = predicted;
    truePositives[k - 1] = hits;
  }
  return { groundTruthPixels: hits + reachedCrack[0]!, predictedPixels, truePositives };
}

/**
 * For bin r (pixels reaching exactly r thresholds): the threshold it must reach, `below[r]`, and
 * the next one it must not, `atOrAbove[r]`; infinities at the ends.
 */
function binEdges(): { below: Float64Array; atOrAbove: Float64Array } {
  const levels = THRESHOLD_GRID.length;
  const below = new Float64Array(levels + 1);
  const atOrAbove = new Float64Array(levels + 1);
  for (let r = 0; r <= levels; r++) {
    below[r] = r === 0 ? -Infinity : THRESHOLD_GRID[r - 1]!;
    atOrAbove[r] = r === levels ? Infinity : THRESHOLD_GRID[r]!;
  }
  return { below, atOrAbove };
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
