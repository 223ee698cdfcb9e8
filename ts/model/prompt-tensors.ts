/**
 * The one mapping from prompts in original-image pixels to the model's prompt tensors. Prediction,
 * evaluation and training all build their {@link PromptTensors} here, so coordinate scaling,
 * box encoding and padding are defined once.
 */
import type { PromptTensors } from '../binding.js';
import type { PromptSet } from '../prompts/prompts.js';

/** Point labels of the SAM prompt encoder. */
export const POINT_LABEL = {
  boxTopLeft: 2,
  boxBottomRight: 3,
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

/** An image's prompts as point lists: each box (labels 2, 3), then each point group. */
function promptPoints(prompts: PromptSet): Array<{ coords: number[]; labels: number[] }> {
  return [
    ...prompts.boxes.map(([x0, y0, x1, y1]) => ({
      coords: [x0, y0, x1, y1],
      labels: [POINT_LABEL.boxTopLeft, POINT_LABEL.boxBottomRight],
    })),
    ...prompts.points.map((group) => {
      if (group.labels.length !== group.coords.length || group.coords.length === 0) {
        throw new Error(
          `A point prompt needs one label per point and at least one point, got ` +
            `${group.coords.length} points and ${group.labels.length} labels`,
        );
      }
      return { coords: group.coords.flat(), labels: [...group.labels] };
    }),
  ];
}

/**
 * The prompt tensors of a batch: `promptsPerImage[b]` are image b's prompts (possibly none), in
 * its original pixels (`sizes[b]`); every box and every point group is one prompt. Prompts are stacked image by image; each is padded to the
 * batch's longest prompt with (0, 0) points labelled -1, which the prompt encoder ignores as
 * SAM's "not a point".
 */
export function promptTensors(
  promptsPerImage: readonly PromptSet[],
  sizes: readonly ImageSize[],
  modelSize: number,
): PromptTensors {
  if (promptsPerImage.length !== sizes.length) {
    throw new Error(`${promptsPerImage.length} prompt lists for ${sizes.length} images`);
  }
  const flat: Array<{ image: number; coords: number[]; labels: number[] }> = [];
  promptsPerImage.forEach((prompts, image) => {
    for (const prompt of promptPoints(prompts)) flat.push({ image, ...prompt });
  });
  const count = flat.length;
  const length = Math.max(0, ...flat.map((p) => p.labels.length));
  const coords = new Float32Array(count * length * 2);
  const labels = new Int32Array(count * length).fill(POINT_LABEL.padding);
  const imageIndex = new BigInt64Array(count);
  flat.forEach((prompt, n) => {
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
    coords: { data: coords, shape: [count, length, 2], dtype: 'float32' },
    labels: { data: labels, shape: [count, length], dtype: 'int32' },
    imageIndex: { data: imageIndex, shape: [count], dtype: 'int64' },
  };
}
