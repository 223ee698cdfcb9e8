/**
 * The training data pipeline: which samples train, their order per epoch, and each micro-batch
 * (decoded, augmented, prompted with jittered boxes from its ground truth, as tensors), prepared
 * ahead so the device never waits for the JS side.
 */
import sharp from 'sharp';
import type { Tensor, TrainBatch } from '../binding.js';
import { DatasetError, DEFAULT_CONCURRENCY, readList } from '../data/dataset.js';
import type { SamplePool } from '../data/sample-pool.js';
import type { ListEntry } from '../data/list-file.js';
import type { BinaryMask, RgbImage } from '../image.js';
import { promptTensors } from '../model/prompt-tensors.js';
import type { Box, PromptSet } from '../prompts/prompts.js';
import { createRandom, deriveSeed, type Random } from '../util/random.js';
import { drawAugmentation, IDENTITY_AUGMENTATION, type AugmentOptions } from '../data/augment.js';
import { groundTruthBoxes, TRAINING_BOX_PROMPT } from './box-prompt.js';

/** The usable training samples and how many were left out for having no crack. */
export interface TrainingSet {
  entries: ListEntry[];
  /** Samples without a component large enough for a box: they get no prompt, so cannot train. */
  withoutCrack: number;
}

/**
 * Reads a list file and keeps the samples whose mask has a box prompt (decoding every sample
 * once, in `loader`'s threads, so an unreadable image or mask fails here, before any training). A
 * malformed list line is a {@link DatasetError} naming the file and line. With `signal` aborted
 * the scan stops early and its result is partial.
 */
export async function scanTrainingSet(
  loader: SamplePool,
  root: string,
  listFile: string,
  signal?: AbortSignal,
): Promise<TrainingSet> {
  let parsed;
  try {
    parsed = await readList(root, listFile);
  } catch (err) {
    throw new Error(`cannot read list file ${listFile}: ${(err as Error).message}`);
  }
  const { entries, problems } = parsed;
  const problem = problems[0];
  if (problem) throw new DatasetError(listFile, problem.line, problem.text, problem.reason);
  const keep = new Array<boolean>(entries.length).fill(false);
  let next = 0;
  const scan = async () => {
    for (let i = next++; i < entries.length && !signal?.aborted; i = next++) {
      const request = { entry: entries[i]!, index: i, root, listFile, seed: 0 };
      const { prompts } = await loader.prepare({ ...request, prompts: [TRAINING_BOX_PROMPT] });
      keep[i] = prompts[0]!.boxes.length > 0;
    }
  };
  const concurrency = Math.max(DEFAULT_CONCURRENCY, 2 * loader.workers);
  await Promise.all(Array.from({ length: concurrency }, scan));
  const kept = entries.filter((_, i) => keep[i]);
  return { entries: kept, withoutCrack: entries.length - kept.length };
}

/** The boxes of a mask's components, as evaluation draws them (see box-prompt.ts). */
function boxPrompts(mask: BinaryMask): Box[] {
  return groundTruthBoxes(mask).boxes;
}

/**
 * A box with each side moved by Gaussian noise of `jitter` × the box's width (x) or height (y),
 * at most 20 px, as SAM's own training does, then clipped to the image and kept non-empty.
 */
export function jitterBox(
  box: Box,
  jitter: number,
  width: number,
  height: number,
  rng: Random,
): Box {
  const [x0, y0, x1, y1] = box;
  const noise = (side: number) => {
    const value = rng.normal() * jitter * side;
    return Math.max(-20, Math.min(20, value));
  };
  const [w, h] = [x1 - x0, y1 - y0];
  const nx0 = Math.min(Math.max(0, x0 + noise(w)), width - 1);
  const ny0 = Math.min(Math.max(0, y0 + noise(h)), height - 1);
  const nx1 = Math.max(Math.min(width, x1 + noise(w)), nx0 + 1);
  const ny1 = Math.max(Math.min(height, y1 + noise(h)), ny0 + 1);
  return [nx0, ny0, nx1, ny1];
}

/** A permutation of 0..n-1 for `seed`, the same on every run (Fisher–Yates). */
export function shuffledOrder(n: number, seed: number): number[] {
  const rng = createRandom(seed);
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

/** How batches are formed and augmented. */
export interface BatchOptions {
  /** Reads, decodes and augments the samples (in worker threads). */
  loader: SamplePool;
  root: string;
  /** The list file the entries come from (errors name it with the line). */
  listFile: string;
  batchSize: number;
  /** The model's input side S: prompt coordinates are mapped to 0..S. */
  imageSize: number;
  /** Null: no augmentation. */
  augment: AugmentOptions | null;
  /** Box jitter (fraction of the box side, standard deviation). */
  boxJitter: number;
  seed: number;
  /**
   * Give each image a cache key (its path and batch size in pixels) for the trainer's embedding
   * cache. Only valid without augmentation: a key must name the exact pixels.
   */
  cacheKeys?: boolean;
}

/**
 * The micro-batches of one epoch, as lists of entries: the entries shuffled for (seed, epoch),
 * cut into `batchSize` chunks (the last may be shorter), keeping a multiple of
 * `gradientAccumulation` chunks so every epoch ends on an optimizer step.
 */
export function epochBatches(
  entries: readonly ListEntry[],
  options: { batchSize: number; gradientAccumulation: number; seed: number },
  epoch: number,
): ListEntry[][] {
  const order = shuffledOrder(entries.length, deriveSeed(options.seed, 'order', epoch));
  const batches: ListEntry[][] = [];
  for (let i = 0; i < order.length; i += options.batchSize)
    batches.push(order.slice(i, i + options.batchSize).map((k) => entries[k]!));
  const usable =
    Math.floor(batches.length / options.gradientAccumulation) * options.gradientAccumulation;
  return batches.slice(0, usable);
}

/** Resizes a sample to `width`×`height` (image bilinear, mask nearest), to batch mixed sizes. */
async function resizeSample(
  image: RgbImage,
  mask: BinaryMask,
  width: number,
  height: number,
): Promise<{ image: RgbImage; mask: BinaryMask }> {
  const raw = async (
    data: Uint8Array,
    w: number,
    h: number,
    channels: 1 | 3,
    kernel: 'linear' | 'nearest',
  ) =>
    new Uint8Array(
      await sharp(data, { raw: { width: w, height: h, channels } })
        .resize(width, height, { fit: 'fill', kernel: kernel === 'linear' ? 'linear' : 'nearest' })
        .raw()
        .toBuffer(),
    );
  const [pixels, labels] = await Promise.all([
    raw(image.data, image.width, image.height, 3, 'linear'),
    raw(mask.data, mask.width, mask.height, 1, 'nearest'),
  ]);
  return { image: { width, height, data: pixels }, mask: { width, height, data: labels } };
}

/**
 * Builds micro-batch `index` of `epoch` from its entries: decode and augment in the loader's
 * threads (each sample its own draw from (seed, epoch, index, position), the quarter turn shared
 * by the batch so its images keep one size), boxes from each augmented mask with jitter, then
 * tensors.
 */
export async function prepareBatch(
  entries: readonly ListEntry[],
  options: BatchOptions,
  epoch: number,
  index: number,
): Promise<TrainBatch> {
  // Drawn here, in batch order, so the draws do not depend on which thread prepares a sample.
  const batchRng = createRandom(deriveSeed(options.seed, 'batch', epoch, index));
  const sharedTurns = drawAugmentation(
    batchRng,
    options.augment ?? { flips: false, quarterTurns: false, brightness: 0, contrast: 0 },
  ).quarterTurns;
  const samples = await Promise.all(
    entries.map(async (entry, position) => {
      const rng = createRandom(deriveSeed(options.seed, 'sample', epoch, index, position));
      const augmentation = options.augment
        ? { ...drawAugmentation(rng, options.augment), quarterTurns: sharedTurns }
        : IDENTITY_AUGMENTATION;
      const { root, listFile } = options;
      const request = { entry, index: position, root, listFile, augmentation, seed: 0 };
      const { image, mask } = await options.loader.prepare({ ...request, prompts: [] });
      return { image, mask, rng };
    }),
  );
  const { width, height } = samples[0]!.image;
  const sized = await Promise.all(
    samples.map(async (s) =>
      s.image.width === width && s.image.height === height
        ? s
        : { ...s, ...(await resizeSample(s.image, s.mask, width, height)) },
    ),
  );
  const prompts: PromptSet[] = sized.map(({ mask, rng }) => ({
    boxes: boxPrompts(mask).map((box) => jitterBox(box, options.boxJitter, width, height, rng)),
    points: [],
  }));
  const masks = new Uint8Array(sized.length * width * height);
  sized.forEach(({ mask }, b) => masks.set(mask.data, b * width * height));
  if (options.cacheKeys && options.augment)
    throw new Error('embedding cache keys need augmentation off (a key names the exact pixels)');
  return {
    ...(options.cacheKeys
      ? { cacheKeys: entries.map((e) => `${e.imagePath}@${width}x${height}`) }
      : {}),
    images: imagesTensor(sized.map((s) => s.image)),
    masks: { data: masks, shape: [sized.length, height, width], dtype: 'uint8' },
    prompts: promptTensors(
      prompts,
      sized.map((s) => s.image),
      options.imageSize,
    ),
  };
}

/**
 * Yields the prepared batches `from..batches.length-1` of an epoch in order, keeping `ahead`
 * preparations in flight, so the next batch is ready when a device step finishes.
 */
export async function* prefetchBatches(
  batches: readonly ListEntry[][],
  options: BatchOptions,
  epoch: number,
  from: number,
  ahead = 2,
): AsyncGenerator<{ index: number; batch: TrainBatch; images: number }> {
  const inFlight: Array<Promise<{ index: number; batch: TrainBatch; images: number }>> = [];
  let next = from;
  const refill = () => {
    while (inFlight.length < ahead && next < batches.length) {
      const index = next++;
      const entries = batches[index]!;
      const job = prepareBatch(entries, options, epoch, index).then((batch) => ({
        index,
        batch,
        images: entries.length,
      }));
      job.catch(() => undefined); // surfaced when awaited below; never unhandled meanwhile
      inFlight.push(job);
    }
  };
  refill();
  while (inFlight.length > 0) {
    const prepared = await inFlight.shift()!;
    refill();
    yield prepared;
  }
}

/**
 * A micro-batch's images of one size → uint8 `[B, H, W, 3]`, one copy per image: the trainer
 * changes the layout on the device, not on the JS thread.
 */
export function imagesTensor(images: readonly RgbImage[]): Tensor<'uint8'> {
  const first = images[0];
  if (!first) throw new Error('a batch needs at least one image');
  const { width, height } = first;
  const size = width * height * 3;
  const data = new Uint8Array(images.length * size);
  images.forEach((image, b) => {
    if (image.width !== width || image.height !== height) {
      throw new Error(
        `A batch needs images of one size: ${image.width}x${image.height} vs ${width}x${height}`,
      );
    }
    data.set(image.data, b * size);
  });
  return { data, shape: [images.length, height, width, 3], dtype: 'uint8' };
}
