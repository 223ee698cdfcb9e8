/**
 * Preparing samples off the JS thread: a list entry's image and mask are read and decoded, a
 * training augmentation applied, and every prompt config's prompts built from the mask in worker
 * threads (`sample-worker.ts`), so the JS thread only batches, feeds the device and hands results
 * on. With 0 workers, samples are prepared on the calling thread.
 */
import { availableParallelism } from 'node:os';
import { hold } from '../held.js';
import type { HeldPlane } from '../image.js';
import type { PromptConfig } from '../prompts/config.js';
import { buildPrompts, type PromptSet } from '../prompts/prompts.js';
import { augmentSample, type Augmentation } from './augment.js';
import { siblingWorkerUrl, WorkerPool } from '../util/worker-pool.js';
import { DatasetError, loadSample, type Sample } from './dataset.js';
import type { ListEntry } from './list-file.js';

/**
 * Threads preparing samples unless told otherwise: one per four cores, at least 1, enough to keep
 * ahead of the device (docs/benchmarks.md, "Measurements behind code choices"). Decoding is
 * mostly sharp's work on the libuv pool.
 */
export function defaultLoadWorkers(): number {
  return Math.max(1, Math.round(availableParallelism() / 4));
}

/** Samples a worker prepares at once (their decoding overlaps its JS work). */
const SAMPLES_PER_WORKER = 4;

/** A sample (augmented if asked) with its prompts: one set per prompt config, in their order. */
export interface PreparedSample extends Sample {
  prompts: PromptSet[];
}

/**
 * A prepared sample whose image and mask wait in native memory (`hold`), so that they reach the
 * device and the scoring threads without passing through the JS thread as arrays.
 */
export interface HeldSample extends Omit<PreparedSample, 'image' | 'mask'> {
  image: HeldPlane;
  mask: HeldPlane;
}

/**
 * One sample to prepare: a list entry (paths relative to `root`; errors name `listFile` and the
 * entry's line), what to apply to it and which prompts to build from its (augmented) mask.
 */
export interface PrepareRequest {
  entry: ListEntry;
  /** The sample's position (its `index`). */
  index: number;
  root: string;
  listFile: string;
  /** Applied after decoding, before the prompts are built. */
  augmentation?: Augmentation;
  /** The configs whose prompts are built (none: no prompts). */
  prompts: readonly PromptConfig[];
  /** Seeds the random point prompts, mixed with the sample's id. */
  seed: number;
  /** Hold the image and mask in native memory ({@link HeldSample}); the caller releases them. */
  hold?: boolean;
}

/** What a worker answers: the sample, or the fields of the {@link DatasetError} it hit. */
export type PrepareReply =
  | { sample: PreparedSample | HeldSample }
  | { datasetError: ConstructorParameters<typeof DatasetError> };

/** Reads, decodes, augments and prompts one entry: what a worker does, and the pool without workers. */
export async function prepareSample(request: PrepareRequest): Promise<PreparedSample | HeldSample> {
  const { entry, index, augmentation, seed } = request;
  const loaded = await loadSample(entry, index, request);
  const sample = augmentation
    ? { ...loaded, ...augmentSample(loaded.image, loaded.mask, augmentation) }
    : loaded;
  const prompts = request.prompts.map((config) =>
    buildPrompts(sample.mask, config, { seed, key: sample.id }),
  );
  if (!request.hold) return { ...sample, prompts };
  return { ...sample, prompts, image: hold(sample.image, 3), mask: hold(sample.mask, 1) };
}

/** Worker threads preparing samples, for any list file and request. */
export class SamplePool {
  private readonly pool: WorkerPool<PrepareRequest, PrepareReply> | null;

  /** Starts `workers` threads (0: prepare on the calling thread). */
  constructor(readonly workers: number = defaultLoadWorkers()) {
    // Reading and decoding are mostly waits for the libuv pool: a worker serves several at once.
    this.pool =
      workers > 0
        ? new WorkerPool(
            siblingWorkerUrl(import.meta.url, 'sample-worker'),
            workers,
            SAMPLES_PER_WORKER,
          )
        : null;
  }

  /** The prepared sample; a bad file rejects with its {@link DatasetError}. */
  prepare(request: PrepareRequest & { hold: true }): Promise<HeldSample>;
  prepare(request: PrepareRequest & { hold?: false }): Promise<PreparedSample>;
  async prepare(request: PrepareRequest): Promise<PreparedSample | HeldSample> {
    if (!this.pool) return prepareSample(request);
    const reply = await this.pool.run(request);
    if ('datasetError' in reply) throw new DatasetError(...reply.datasetError);
    return reply.sample;
  }

  /** Busy milliseconds of the threads so far ({@link WorkerPool.busyMs}); 0 without threads. */
  busyMs(): number {
    return this.pool?.busyMs() ?? 0;
  }

  /** Stops the threads; samples not prepared yet are rejected. */
  async close(): Promise<void> {
    await this.pool?.close();
  }
}
