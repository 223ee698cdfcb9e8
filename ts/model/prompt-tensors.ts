/**
 * The one mapping from prompts in original-image pixels to the model's prompt tensors. Prediction,
 * evaluation and training all build their {@link PromptTensors} here, so coordinate scaling,
 * box encoding and the grouping of prompts by length are defined once.
 */
import type { PromptTensors } from '../binding.js';
import { ERROR_CODES } from '../errors.js';
import type { PromptSet } from '../prompts/prompts.js';

/** Point labels of the SAM prompt encoder. */
export const POINT_LABEL = {
  boxTopLeft: 2,
  boxBottomRight: 3,
  /** SAM's "not a point"; the model appends one to every prompt itself, we never pad. */
  padding: -1,
} as const;

/** Width and height in pixels. */
export interface ImageSize {
  width: number;
  height: number;
}

/**
 * Maps one coordinate from original pixels to model-input pixels exactly as the official
 * `SAM2Transforms.transform_coords(normalize=True)` does on its float32 tensor: `(x / W) * S`,
 * every step rounded to float32.
 */
export function toModelCoordinate(value: number, originalSize: number, modelSize: number): number {
  return Math.fround(Math.fround(Math.fround(value) / originalSize) * modelSize);
}

/**
 * A prompt error of the kind the addon gives the same fault: TypeError with `ERR_CRACKSEG_ARGUMENT`
 * (a wrong type or form), RangeError with `ERR_CRACKSEG_RANGE` (a value out of range).
 */
function promptError(kind: typeof TypeError | typeof RangeError, message: string): Error {
  const code = kind === TypeError ? ERROR_CODES.argument : ERROR_CODES.range;
  return Object.assign(new kind(message), { code });
}

/** The labels a caller's point may have: 1 positive, 0 negative (boxes are given as boxes). */
const POINT_LABELS: readonly number[] = [0, 1];

/** `count` finite numbers, else a TypeError (wrong shape or type) or RangeError (NaN, ±Inf). */
function finiteNumbers(value: unknown, count: number, where: () => string): number[] {
  if (
    !Array.isArray(value) ||
    value.length !== count ||
    !value.every((v) => typeof v === 'number')
  ) {
    throw promptError(
      TypeError,
      `${where()} must be ${count} numbers, got ${JSON.stringify(value)}`,
    );
  }
  const numbers = value;
  if (!numbers.every(Number.isFinite)) {
    throw promptError(RangeError, `${where()} must be finite, got [${numbers.join(', ')}]`);
  }
  return numbers;
}

/**
 * An image's prompts as point lists: each box (labels 2, 3), then each point group. An impossible
 * prompt (not 4 box numbers, a coordinate that is NaN or infinite, a point label other than 0 or
 * 1, labels that do not match the points) throws a TypeError or RangeError naming the image and
 * the prompt's index (boxes first, then point groups).
 */
function promptPoints(
  prompts: PromptSet,
  image: number,
): Array<{ coords: number[]; labels: number[] }> {
  const where = (prompt: number) => `image ${image}, prompt ${prompt}`;
  if (!Array.isArray(prompts?.boxes) || !Array.isArray(prompts.points)) {
    throw promptError(TypeError, `image ${image}: prompts must have 'boxes' and 'points' arrays`);
  }
  const boxes = prompts.boxes.map((box, b) => ({
    coords: finiteNumbers(box, 4, () => `${where(b)}: a box [x0, y0, x1, y1]`),
    labels: [POINT_LABEL.boxTopLeft, POINT_LABEL.boxBottomRight],
  }));
  const groups = prompts.points.map((group, g) => {
    const at = where(prompts.boxes.length + g);
    const { coords, labels } = group ?? {};
    if (!Array.isArray(coords) || !Array.isArray(labels)) {
      throw promptError(TypeError, `${at}: a point prompt needs 'coords' and 'labels' arrays`);
    }
    if (labels.length !== coords.length || coords.length === 0) {
      throw promptError(
        TypeError,
        `${at}: a point prompt needs one label per point and at least one point, got ` +
          `${coords.length} points and ${labels.length} labels`,
      );
    }
    const flat = coords.flatMap((point, p) => finiteNumbers(point, 2, () => `${at}: point ${p}`));
    const bad = labels.findIndex((label) => !POINT_LABELS.includes(label));
    if (bad >= 0) {
      throw promptError(
        RangeError,
        `${at}: point ${bad} has label ${String(labels[bad])}; labels are 1 (positive) or 0 (negative)`,
      );
    }
    return { coords: flat, labels: [...labels] };
  });
  return [...boxes, ...groups];
}

/** One prompt of a batch: the image it belongs to, its index among that image's prompts, points. */
interface FlatPrompt {
  image: number;
  /** Position among the image's prompts (boxes first, then point groups). */
  prompt: number;
  coords: number[];
  labels: number[];
}

/**
 * The tensors of prompts that all have the same number of points: no padding is ever added here
 * (the model appends SAM's single "not a point" itself, as the official prompt encoder does).
 */
function stack(flat: readonly FlatPrompt[], sizes: readonly ImageSize[], modelSize: number) {
  const count = flat.length;
  const length = flat[0]?.labels.length ?? 0;
  const coords = new Float32Array(count * length * 2);
  const labels = new Int32Array(count * length);
  const imageIndex = new BigInt64Array(count);
  flat.forEach((prompt, n) => {
    if (prompt.labels.length !== length) {
      throw new Error(
        `prompts of one tensor set need the same number of points, got ${length} and ` +
          `${prompt.labels.length} (use promptTensorGroups)`,
      );
    }
    const { width, height } = sizes[prompt.image]!;
    imageIndex[n] = BigInt(prompt.image);
    prompt.labels.forEach((label, p) => {
      const offset = (n * length + p) * 2;
      coords[offset] = toModelCoordinate(prompt.coords[p * 2]!, width, modelSize);
      coords[offset + 1] = toModelCoordinate(prompt.coords[p * 2 + 1]!, height, modelSize);
      labels[n * length + p] = label;
    });
  });
  return {
    coords: { data: coords, shape: [count, length, 2], dtype: 'float32' as const },
    labels: { data: labels, shape: [count, length], dtype: 'int32' as const },
    imageIndex: { data: imageIndex, shape: [count], dtype: 'int64' as const },
  };
}

function flatten(promptsPerImage: readonly PromptSet[], sizes: readonly ImageSize[]) {
  if (promptsPerImage.length !== sizes.length) {
    throw new Error(`${promptsPerImage.length} prompt lists for ${sizes.length} images`);
  }
  const flat: FlatPrompt[] = [];
  promptsPerImage.forEach((prompts, image) => {
    promptPoints(prompts, image).forEach((points, prompt) =>
      flat.push({ image, prompt, ...points }),
    );
  });
  return flat;
}

/**
 * The prompt tensors of a batch whose prompts all have the same number of points (e.g. boxes
 * only): `promptsPerImage[b]` are image b's prompts (possibly none), in its original pixels
 * (`sizes[b]`); every box and every point group is one prompt, stacked image by image. Prompts of
 * different lengths throw: padding them to a common length would let the padding tokens take part
 * in the decoder's attention and change the masks; use {@link promptTensorGroups} for those.
 */
export function promptTensors(
  promptsPerImage: readonly PromptSet[],
  sizes: readonly ImageSize[],
  modelSize: number,
): PromptTensors {
  return stack(flatten(promptsPerImage, sizes), sizes, modelSize);
}

/** The prompts of one point count, as tensors, and where each came from. */
export interface PromptTensorGroup {
  /** Points per prompt (2 for a box). */
  points: number;
  tensors: PromptTensors;
  /** Per prompt of `tensors`: its position among its image's prompts (boxes, then groups). */
  promptIndex: number[];
}

/**
 * A batch's prompts split by point count, each group stacked without padding, in increasing
 * point count; decode each group as its own prompt set and combine per image (OR of the masks,
 * maximum of the probabilities). A prompt's result then never depends on the other prompts of the
 * batch, as with the official predictor, which decodes one image's prompt at a time. No group
 * when the batch has no prompt.
 */
export function promptTensorGroups(
  promptsPerImage: readonly PromptSet[],
  sizes: readonly ImageSize[],
  modelSize: number,
): PromptTensorGroup[] {
  const byLength = new Map<number, FlatPrompt[]>();
  for (const prompt of flatten(promptsPerImage, sizes)) {
    const group = byLength.get(prompt.labels.length) ?? [];
    group.push(prompt);
    byLength.set(prompt.labels.length, group);
  }
  return [...byLength.entries()]
    .sort(([a], [b]) => a - b)
    .map(([points, flat]) => ({
      points,
      tensors: stack(flat, sizes, modelSize),
      promptIndex: flat.map((p) => p.prompt),
    }));
}
