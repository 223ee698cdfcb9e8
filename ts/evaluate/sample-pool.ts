/**
 * Preparing evaluation samples off the JS thread: a list entry's image and mask are read and
 * decoded and every prompt config's prompts built from the mask in worker threads
 * (`sample-worker.ts`), so the JS thread only batches, feeds the device and hands results on.
 * With 0 workers, samples are prepared on the calling thread.
 */
import { availableParallelism } from 'node:os';
import { DatasetError, loadSample, type Sample } from '../data/dataset.js';
import type { ListEntry } from '../data/listFile.js';
import type { PromptConfig } from '../prompts/config.js';
import { buildPrompts, type PromptSet } from '../prompts/prompts.js';
import { siblingWorkerUrl, WorkerPool } from '../util/worker-pool.js';

/**
 * Threads preparing samples unless told otherwise: one per eight cores, at least 1. Decoding is
 * mostly sharp's work on the libuv pool; the threads binarise masks and build prompts.
 */
export function defaultLoadWorkers(): number {
  return Math.max(1, Math.round(availableParallelism() / 8));
}

/** A sample with its prompts: one set per prompt config, in the configs' order. */
export interface PreparedSample extends Sample {
  prompts: PromptSet[];
}

/** What every sample of a run is prepared with. */
export interface PrepareContext {
  root: string;
  listFile: string;
  prompts: readonly PromptConfig[];
  /** Seeds the random point prompts, mixed with each sample's id. */
  seed: number;
}

/** What a worker receives. */
export interface PrepareRequest {
  entry: ListEntry;
  index: number;
  context: PrepareContext;
}

/** What a worker answers: the sample, or the fields of the {@link DatasetError} it hit. */
export type PrepareReply =
  { sample: PreparedSample } | { datasetError: ConstructorParameters<typeof DatasetError> };

/** Reads, decodes and prompts one entry: what a worker does, and the pool without workers. */
export async function prepareSample(request: PrepareRequest): Promise<PreparedSample> {
  const { entry, index, context } = request;
  const sample = await loadSample(entry, index, context);
  const prompts = context.prompts.map((config) =>
    buildPrompts(sample.mask, config, { seed: context.seed, key: sample.id }),
  );
  return { ...sample, prompts };
}

export class SamplePool {
  private readonly pool: WorkerPool<PrepareRequest, PrepareReply> | null;

  /** Starts `workers` threads (0: prepare on the calling thread). */
  constructor(
    readonly workers: number,
    private readonly context: PrepareContext,
  ) {
    this.pool =
      workers > 0
        ? new WorkerPool(siblingWorkerUrl(import.meta.url, 'sample-worker'), workers)
        : null;
  }

  /** The prepared sample of `entry`; a bad file rejects with its {@link DatasetError}. */
  async prepare(entry: ListEntry, index: number): Promise<PreparedSample> {
    const request = { entry, index, context: this.context };
    if (!this.pool) return prepareSample(request);
    const reply = await this.pool.run(request);
    if ('datasetError' in reply) throw new DatasetError(...reply.datasetError);
    return reply.sample;
  }

  /** Stops the threads; samples not prepared yet are rejected. */
  async close(): Promise<void> {
    await this.pool?.close();
  }
}
