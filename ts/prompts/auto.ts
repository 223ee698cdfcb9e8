/**
 * Prompt-free prompts: what SAM gets when there is no ground truth to prompt from.
 * - `grid`: the official automatic mask generator's point grid, `pointsPerSide`² single positive
 *   points; each point's mask is kept or dropped as that generator does (predicted IoU and
 *   stability thresholds, then box NMS: {@link AutoMaskFilter}), and the crack mask is the union
 *   of the kept masks. One crop (the whole image) and one mask per point (the single-mask output
 *   the model is fine-tuned on), where the official generator may add crops and takes three.
 * - `box`: one box over the whole image.
 */
import type { AutoMaskFilter } from '../binding.js';
import type { ImageSize } from '../model/prompt-tensors.js';
import type { AutoPromptConfig } from './config.js';
import type { Point, PromptSet } from './prompts.js';

/** The official generator's defaults (SAM2AutomaticMaskGenerator). */
export const DEFAULT_POINTS_PER_SIDE = 32;
export const DEFAULT_AUTO_FILTER: AutoMaskFilter = {
  iouThreshold: 0.8,
  stabilityThreshold: 0.95,
  stabilityOffset: 1,
  boxNmsThreshold: 0.7,
  pointsPerBatch: 64,
};

/**
 * `n`² points evenly spaced in [0, 1]², the first coordinate fastest: `((i + 0.5) / n, (j +
 * 0.5) / n)` for row j, column i, as the official `build_point_grid`.
 */
export function pointGrid(n: number): Point[] {
  if (!Number.isInteger(n) || n < 1) {
    throw new RangeError(`points per side must be a positive integer, got ${n}`);
  }
  const points: Point[] = [];
  for (let j = 0; j < n; j++) {
    for (let i = 0; i < n; i++) points.push([(i + 0.5) / n, (j + 0.5) / n]);
  }
  return points;
}

/** An image's prompts for an automatic config: the scaled grid (with its filter) or one box. */
export function autoPrompts(size: ImageSize, config: AutoPromptConfig): PromptSet {
  const { width, height } = size;
  if (config.mode === 'box') return { boxes: [[0, 0, width, height]], points: [] };
  return {
    boxes: [],
    points: pointGrid(config.pointsPerSide).map(([x, y]) => ({
      coords: [[x * width, y * height]],
      labels: [1],
    })),
    automatic: { ...DEFAULT_AUTO_FILTER, ...config.filter },
  };
}
