/**
 * Prediction: images and prompts in original pixels in, masks at the original resolution out.
 * Each batch of same-sized images is encoded once and every prompt set is decoded from the same
 * embeddings by the addon's `predictMasks`, off the JS thread.
 */
import {
  binding,
  type AutoMaskFilter,
  type HeldPredictionSet,
  type PredictionSet,
  type Tensor,
  type TensorHandle,
} from './binding.js';
import { releaseHeld } from './held.js';
import {
  isHeld,
  type BinaryMask,
  type HeldPlane,
  type ProbabilityMap,
  type RgbImage,
} from './image.js';
import type { SamModel } from './model/load.js';
import {
  promptTensorGroups,
  type ImageSize,
  type PromptTensorGroup,
} from './model/prompt-tensors.js';
import { autoPrompts } from './prompts/auto.js';
import type { AutoPromptConfig } from './prompts/config.js';
import type { PromptSet } from './prompts/prompts.js';

/**
 * Images encoded together when the caller names no batch size (prediction, evaluation,
 * validation, CLI and benchmark): 4 on the CPU; 32 on CUDA, the batch of the reference H200
 * figures, where {@link predictBatch} halves a batch that does not fit in device memory.
 */
export function defaultBatchSize(device: string): number {
  return device === 'cpu' ? 4 : 32;
}

/** Per model, the batch size to start from once a larger one did not fit ({@link predictBatch}). */
const fittingBatch = new WeakMap<SamModel, number>();

/** Whether `error` is libtorch's "CUDA out of memory" (or another device's). */
export function isOutOfMemory(error: unknown): boolean {
  return error instanceof Error && /out of memory/i.test(error.message);
}

/**
 * `run` over items [0, count) in runs of at most `limit`; a run that fails with
 * {@link isOutOfMemory} is split in halves (down to one item, whose failure is thrown), and
 * `onSplit` hears each half's size. Results concatenated per row: `[row][item]`. When a run fails
 * for good, `discard` gets the rows of the runs that had succeeded (to free what they hold).
 */
export async function splitWhileOutOfMemory<R>(
  count: number,
  limit: number,
  run: (start: number, end: number) => Promise<R[][]>,
  onSplit: (size: number) => void = () => {},
  discard: (rows: R[][]) => void = () => {},
): Promise<R[][]> {
  const rows: R[][] = [];
  const append = (part: R[][]) =>
    part.forEach((row, r) => (rows[r] ? rows[r].push(...row) : (rows[r] = [...row])));
  const attempt = async (start: number, end: number): Promise<void> => {
    try {
      append(await run(start, end));
    } catch (error) {
      if (!isOutOfMemory(error) || end - start === 1) throw error;
      const middle = start + Math.ceil((end - start) / 2);
      onSplit(middle - start);
      await attempt(start, middle);
      await attempt(middle, end);
    }
  };
  try {
    for (let start = 0; start < count; start += limit)
      await attempt(start, Math.min(count, start + limit));
  } catch (error) {
    discard(rows);
    throw error;
  }
  return rows;
}

export interface PredictOptions {
  /** Also return each image's probability map (sigmoid of the union logits), e.g. for ODS/OIS. */
  probabilities?: boolean;
  /** Also return each prompt's low-resolution logits (the decoder's output, S/4 × S/4). */
  lowResLogits?: boolean;
  /** Images encoded at once; consecutive images of the same size share a batch. */
  batchSize?: number;
}

/** A prompt's low-resolution logits, `size × size` (S/4, S the model's image size), row-major. */
export interface LowResLogits {
  width: number;
  height: number;
  data: Float32Array;
}

/** One image's prediction for one prompt set. */
export interface ImagePrediction {
  /** The OR of the image's prompt masks, at the image's size; empty without prompts. */
  mask: BinaryMask;
  /** Sigmoid of the per-pixel maximum logit over the image's prompts (0 without prompts). */
  probabilities?: ProbabilityMap;
  /** The decoder's IoU estimate per prompt, in prompt order (boxes, then point groups). */
  iouScores: number[];
  /** With `lowResLogits`: per prompt, in prompt order, the decoder's logits before upsampling. */
  lowResLogits?: LowResLogits[];
  /** For an automatic prompt set: per prompt, whether its mask was selected (made the mask). */
  kept?: boolean[];
}

/** {@link ImagePrediction} with `hold`: the mask and probabilities still in native memory. */
export interface HeldPrediction extends Omit<ImagePrediction, 'mask' | 'probabilities'> {
  mask: HeldPlane;
  probabilities?: HeldPlane;
}

/**
 * Predicts one mask per image: `prompts[i]` are image i's prompts (their masks ORed), or, with an
 * automatic config, every image gets the prompt-free prompts (ts/prompts/auto.ts). Images may
 * differ in size; consecutive same-sized ones are batched. An image's result does not depend on
 * the other images or their prompts.
 */
export async function predict(
  model: SamModel,
  images: readonly RgbImage[],
  promptsOrAuto: readonly PromptSet[] | AutoPromptConfig,
  options: PredictOptions = {},
): Promise<ImagePrediction[]> {
  const prompts =
    'kind' in promptsOrAuto
      ? images.map((image) => autoPrompts(image, promptsOrAuto))
      : promptsOrAuto;
  if (images.length !== prompts.length) {
    throw new Error(`${images.length} images but ${prompts.length} prompt lists`);
  }
  const results: ImagePrediction[] = [];
  const batchSize = options.batchSize ?? defaultBatchSize(model.device);
  for (const [start, end] of sameSizeRuns(images, batchSize)) {
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
 * `promptSets[s][i]` are image i's prompts in set s. Returns `[set][image]`. A batch that does
 * not fit in device memory is run in halves (an image's result does not depend on its batch), and
 * later batches for the model are cut to the size that fitted. With `hold`, masks and probability
 * maps stay in native memory ({@link HeldPrediction}): whoever ends up with them takes or
 * releases them.
 *
 * Within a set, prompts are decoded in groups of equal point count (a box counts 2), never padded
 * to a common length: a padding token would take part in the decoder's attention and change the
 * other prompts' masks. The addon decodes a set's groups from the single encoder pass and unites
 * them per image: the mask is the OR of its groups' masks, its probability map their maximum (=
 * sigmoid of the maximum logit over all its prompts).
 */
export function predictBatch(
  model: SamModel,
  images: ReadonlyArray<RgbImage | HeldPlane>,
  promptSets: ReadonlyArray<readonly PromptSet[]>,
  options: BatchOptions & { hold: true },
): Promise<HeldPrediction[][]>;
export function predictBatch(
  model: SamModel,
  images: ReadonlyArray<RgbImage | HeldPlane>,
  promptSets: ReadonlyArray<readonly PromptSet[]>,
  options?: BatchOptions & { hold?: false },
): Promise<ImagePrediction[][]>;
export function predictBatch(
  model: SamModel,
  images: ReadonlyArray<RgbImage | HeldPlane>,
  promptSets: ReadonlyArray<readonly PromptSet[]>,
  options: BatchOptions & { hold?: boolean } = {},
): Promise<Array<Array<ImagePrediction | HeldPrediction>>> {
  return splitWhileOutOfMemory(
    images.length,
    fittingBatch.get(model) ?? images.length,
    (start, end) =>
      predictWhole(
        model,
        images.slice(start, end),
        promptSets.map((prompts) => prompts.slice(start, end)),
        options,
      ),
    (size) => fittingBatch.set(model, Math.min(size, fittingBatch.get(model) ?? size)),
    // A batch that fails after some of its halves were predicted leaves nothing held.
    (rows) => releaseHeld(rows.flat().flatMap((p) => [p.mask, p.probabilities])),
  );
}

/** What {@link predictBatch} may return besides masks. */
type BatchOptions = Pick<PredictOptions, 'probabilities' | 'lowResLogits'>;

/** {@link predictBatch} in one `predictMasks` call. */
async function predictWhole(
  model: SamModel,
  images: ReadonlyArray<RgbImage | HeldPlane>,
  promptSets: ReadonlyArray<readonly PromptSet[]>,
  options: BatchOptions & { hold?: boolean },
): Promise<Array<Array<ImagePrediction | HeldPrediction>>> {
  const grouped = promptSets.map((prompts) => promptTensorGroups(prompts, images, model.imageSize));
  const flags = {
    probabilities: options.probabilities ?? false,
    lowResLogits: options.lowResLogits ?? false,
  };
  const native = model.module.native;
  const sets = grouped.map((groups) => groups.map((g) => g.tensors));
  const tensors = imageTensors(images);
  const automatic = promptSets.map(setSelection);
  const selection = automatic.some((filter) => filter !== null) ? { automatic } : {};
  let outputs: Array<PredictionSet | HeldPredictionSet>;
  try {
    outputs = options.hold
      ? await binding().predictMasks(native, tensors, sets, { ...flags, ...selection, hold: true })
      : await binding().predictMasks(native, tensors, sets, { ...flags, ...selection });
  } catch (err) {
    // Whatever failed ran this model's methods (e.g. one that broke the interface): name its file.
    if (err instanceof Error) err.message = `${model.module.path}: ${err.message}`;
    throw err;
  }
  return outputs.map((output: PredictionSet | HeldPredictionSet, s) =>
    images.map((size, b) => {
      const probabilities = output.probabilities?.[b];
      const prediction = {
        mask: planeOf(output.masks[b]!, size),
        ...(probabilities === undefined ? {} : { probabilities: planeOf(probabilities, size) }),
        ...promptOutputs(grouped[s]!, output, promptSets[s]![b]!, b, flags.lowResLogits),
      };
      return prediction as ImagePrediction | HeldPrediction;
    }),
  );
}
/** A prompt set's automatic selection: its images' (all the same), or null when they have none. */
function setSelection(prompts: readonly PromptSet[]): AutoMaskFilter | null {
  const [first, ...rest] = prompts.map((set) => set.automatic ?? null);
  const key = JSON.stringify(first ?? null);
  if (rest.some((filter) => JSON.stringify(filter) !== key)) {
    throw new Error('the images of a prompt set must share one automatic selection (or none)');
  }
  return first ?? null;
}

/** One image's item of a prediction set as a map of the image's size: held, or its array. */
function planeOf(item: Tensor | TensorHandle, { width, height }: ImageSize) {
  return typeof item === 'number'
    ? { width, height, handle: item }
    : { width, height, data: item.data };
}

/** Whether two images have the same width and height (they may then share a batch). */
export function sameSize(a: ImageSize, b: ImageSize): boolean {
  return a.width === b.width && a.height === b.height;
}

/**
 * `[start, end)` ranges of consecutive same-sized images, at most `batchSize` long: how
 * prediction, evaluation and validation batch images (see {@link sameSizeBatches} for a stream).
 */
export function sameSizeRuns(
  images: readonly ImageSize[],
  batchSize: number,
): Array<[number, number]> {
  assertBatchSize(batchSize);
  const runs: Array<[number, number]> = [];
  let start = 0;
  for (let i = 1; i <= images.length; i++) {
    const changed =
      i === images.length || !sameSize(images[i]!, images[start]!) || i - start === batchSize;
    if (changed) {
      runs.push([start, i]);
      start = i;
    }
  }
  return runs;
}

/**
 * {@link sameSizeRuns} over a stream: consecutive items whose `sizeOf` is the same, at most
 * `batchSize` of them; a size change starts a batch. When the source throws, the batch gathered so
 * far is yielded first and the error is thrown at the next step, so the items read before a bad
 * one are never lost.
 */
export async function* sameSizeBatches<T>(
  items: AsyncIterable<T>,
  batchSize: number,
  sizeOf: (item: T) => ImageSize,
): AsyncGenerator<T[]> {
  assertBatchSize(batchSize);
  let batch: T[] = [];
  try {
    for await (const item of items) {
      const first = batch[0];
      if (first !== undefined && !sameSize(sizeOf(first), sizeOf(item))) {
        yield batch;
        batch = [];
      }
      batch.push(item);
      if (batch.length === batchSize) {
        yield batch;
        batch = [];
      }
    }
  } catch (error) {
    if (batch.length > 0) yield batch;
    throw error;
  }
  if (batch.length > 0) yield batch;
}

/** Throws unless `batchSize` is a positive integer. */
export function assertBatchSize(batchSize: number): void {
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new RangeError(`batch size must be a positive integer, got ${batchSize}`);
  }
}

/**
 * Interleaved RGB images of one size → uint8 `[H, W, 3]` tensors over their own data, or the
 * handles of held ones (no copy either way: the addon batches them and changes the layout off the
 * JS thread).
 */
export function imageTensors(
  images: ReadonlyArray<RgbImage | HeldPlane>,
): Array<Tensor<'uint8'> | TensorHandle> {
  const first = images[0];
  if (!first) throw new Error('predict needs at least one image');
  const { width, height } = first;
  return images.map((image) => {
    if (image.width !== width || image.height !== height) {
      throw new Error(
        `A batch needs images of one size: ${image.width}x${image.height} vs ${width}x${height}`,
      );
    }
    return isHeld(image)
      ? image.handle
      : { data: image.data, shape: [height, width, 3], dtype: 'uint8' };
  });
}

/**
 * Image b's IoU scores (and low-resolution logits) in its prompt order, from a set's outputs,
 * whose prompts are the groups' prompts in order.
 */
function promptOutputs(
  groups: readonly PromptTensorGroup[],
  output: Pick<PredictionSet, 'iou' | 'lowResLogits' | 'kept'>,
  prompts: PromptSet,
  b: number,
  withLogits: boolean,
): Pick<ImagePrediction, 'iouScores' | 'lowResLogits' | 'kept'> {
  const count = prompts.boxes.length + prompts.points.length;
  const iouScores = new Array<number>(count).fill(Number.NaN);
  const logits = new Array<LowResLogits>(count);
  const kept = new Array<boolean>(count).fill(false);
  let offset = 0;
  for (const group of groups) {
    group.tensors.imageIndex.data.forEach((image, n) => {
      if (Number(image) !== b) return;
      const row = offset + n;
      const prompt = group.promptIndex[n]!;
      iouScores[prompt] = output.iou.data[row]!;
      if (output.kept) kept[prompt] = output.kept.data[row] === 1;
      const low = output.lowResLogits;
      if (low) {
        const [, , h, w] = low.shape;
        const size = h! * w!;
        logits[prompt] = {
          width: w!,
          height: h!,
          data: low.data.slice(row * size, (row + 1) * size),
        };
      }
    });
    offset += group.promptIndex.length;
  }
  return {
    iouScores,
    ...(withLogits ? { lowResLogits: logits } : {}),
    ...(output.kept ? { kept } : {}),
  };
}
