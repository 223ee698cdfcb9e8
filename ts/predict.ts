/**
 * Prediction: images and prompts in original pixels in, masks at the original resolution out.
 * Each batch of same-sized images is encoded once and every prompt set is decoded from the same
 * embeddings by the addon's `predictMasks`, off the JS thread.
 */
import { binding, type PredictionSet } from './binding.js';
import type { BinaryMask, ProbabilityMap, RgbImage } from './image.js';
import type { SamModel } from './model/load.js';
import { promptTensors } from './model/prompt-tensors.js';
import type { PromptSet } from './prompts/prompts.js';

/** Images encoded together unless told otherwise (prediction, evaluation, CLI and benchmark). */
export const DEFAULT_BATCH_SIZE = 4;

export interface PredictOptions {
  /** Also return each image's probability map (sigmoid of the union logits), e.g. for ODS/OIS. */
  probabilities?: boolean;
  /** Images encoded at once; consecutive images of the same size share a batch. */
  batchSize?: number;
}

/** One image's prediction for one prompt set. */
export interface ImagePrediction {
  /** The OR of the image's prompt masks, at the image's size; empty without prompts. */
  mask: BinaryMask;
  probabilities?: ProbabilityMap;
  /** The decoder's IoU estimate per prompt, in prompt order. */
  iouScores: number[];
}

/**
 * Predicts one mask per image: `prompts[i]` are image i's prompts (their masks ORed). Images
 * may differ in size; consecutive same-sized ones are batched.
 */
export async function predict(
  model: SamModel,
  images: readonly RgbImage[],
  prompts: readonly PromptSet[],
  options: PredictOptions = {},
): Promise<ImagePrediction[]> {
  if (images.length !== prompts.length) {
    throw new Error(`${images.length} images but ${prompts.length} prompt lists`);
  }
  const results: ImagePrediction[] = [];
  for (const [start, end] of sameSizeRuns(images, options.batchSize ?? DEFAULT_BATCH_SIZE)) {
    const [set] = await predictBatch(
      model,
      images.slice(start, end),
      [prompts.slice(start, end)],
      options,
    );
    results.push(...set!);
  }
  return results;
}

/**
 * Encodes a batch of same-sized images once and decodes each prompt set from it:
 * `promptSets[s][i]` are image i's prompts in set s. Returns `[set][image]`.
 */
export async function predictBatch(
  model: SamModel,
  images: readonly RgbImage[],
  promptSets: ReadonlyArray<readonly PromptSet[]>,
  options: Pick<PredictOptions, 'probabilities'> = {},
): Promise<ImagePrediction[][]> {
  const sets = promptSets.map((prompts) => promptTensors(prompts, images, model.imageSize));
  const outputs = await binding().predictMasks(model.module.native, imagesTensor(images), sets, {
    probabilities: options.probabilities ?? false,
  });
  return outputs.map((output, s) => splitByImage(output, sets[s]!.imageIndex.data, images));
}

/** `[start, end)` ranges of consecutive same-sized images, at most `batchSize` long. */
export function sameSizeRuns(
  images: ReadonlyArray<{ width: number; height: number }>,
  batchSize: number,
): Array<[number, number]> {
  assertBatchSize(batchSize);
  const runs: Array<[number, number]> = [];
  let start = 0;
  for (let i = 1; i <= images.length; i++) {
    const changed =
      i === images.length ||
      images[i]!.width !== images[start]!.width ||
      images[i]!.height !== images[start]!.height ||
      i - start === batchSize;
    if (changed) {
      runs.push([start, i]);
      start = i;
    }
  }
  return runs;
}

/** Throws unless `batchSize` is a positive integer. */
export function assertBatchSize(batchSize: number): void {
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new RangeError(`batch size must be a positive integer, got ${batchSize}`);
  }
}

/** Interleaved RGB images of one size → uint8 `[B, 3, H, W]`. */
export function imagesTensor(images: readonly RgbImage[]) {
  const first = images[0];
  if (!first) throw new Error('predict needs at least one image');
  const { width, height } = first;
  const plane = width * height;
  const data = new Uint8Array(images.length * 3 * plane);
  images.forEach((image, b) => {
    if (image.width !== width || image.height !== height) {
      throw new Error(
        `A batch needs images of one size: ${image.width}x${image.height} vs ${width}x${height}`,
      );
    }
    const base = b * 3 * plane;
    const pixels = image.data;
    for (let i = 0; i < plane; i++) {
      data[base + i] = pixels[i * 3]!;
      data[base + plane + i] = pixels[i * 3 + 1]!;
      data[base + 2 * plane + i] = pixels[i * 3 + 2]!;
    }
  });
  return { data, shape: [images.length, 3, height, width], dtype: 'uint8' as const };
}

/** One prompt set's batched output → per image, each with its own (transferable) buffers. */
function splitByImage(
  output: PredictionSet,
  imageIndex: BigInt64Array,
  images: readonly RgbImage[],
): ImagePrediction[] {
  return images.map(({ width, height }, b) => {
    const plane = width * height;
    const prediction: ImagePrediction = {
      mask: { width, height, data: output.masks.data.slice(b * plane, (b + 1) * plane) },
      iouScores: [],
    };
    if (output.probabilities) {
      const data = output.probabilities.data.slice(b * plane, (b + 1) * plane);
      prediction.probabilities = { width, height, data };
    }
    imageIndex.forEach((image, n) => {
      if (Number(image) === b) prediction.iouScores.push(output.iou.data[n]!);
    });
    return prediction;
  });
}
