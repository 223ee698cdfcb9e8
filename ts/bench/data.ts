/**
 * The training data benchmark: how many images per second the host prepares for the trainer
 * (files read and decoded, augmented, boxes drawn and jittered, tensors built), with and without
 * augmentation, as `train()` consumes them (`prefetchBatches`, two batches ahead, samples read,
 * decoded and augmented in its worker threads). No model runs:
 * this is the ceiling the JS thread and the decoders put on training throughput. Synthetic
 * Crack500-sized images (640×360 by default) in a temporary folder.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { SamplePool } from '../data/sample-pool.js';
import { synthesizeDataset } from '../synth/synthesize.js';
import { DEFAULT_AUGMENT } from '../data/augment.js';
import { epochBatches, prefetchBatches, scanTrainingSet } from '../train/batches.js';
import { TRAIN_DEFAULTS } from '../train/options.js';

export interface DataBenchmarkOptions {
  /** Synthetic image size; default 640×360 (Crack500's). */
  width?: number;
  height?: number;
  /** Training images (default 64). */
  images?: number;
  /** Images per micro-batch (default 8, the training benchmark's CUDA batch). */
  batchSize?: number;
  /** The model input side the prompts are mapped to (default 1024). */
  imageSize?: number;
}

export interface DataBenchmarkResult {
  cpu: string;
  imageSize: { width: number; height: number };
  images: number;
  batchSize: number;
  /** Images/s prepared, over one epoch after an untimed one. */
  augmented: number;
  plain: number;
  unit: 'images/s';
}

/** Runs the benchmark; the dataset lives in a temporary folder removed at the end. */
export async function runDataBenchmark(
  options: DataBenchmarkOptions = {},
): Promise<DataBenchmarkResult> {
  const width = options.width ?? 640;
  const height = options.height ?? 360;
  const images = options.images ?? 64;
  const batchSize = options.batchSize ?? 8;
  const dir = await mkdtemp(join(tmpdir(), 'crackseg-bench-data-'));
  // As train() prepares samples: in its default worker threads.
  const loader = new SamplePool();
  try {
    await synthesizeDataset({
      out: dir,
      train: images,
      val: 0,
      test: 0,
      width,
      height,
      crackFreeFraction: 0,
    });
    const { entries } = await scanTrainingSet(loader, dir, 'train.txt');
    const rate = async (augment: boolean) => {
      const options_ = {
        loader,
        root: dir,
        listFile: 'train.txt',
        batchSize,
        imageSize: options.imageSize ?? 1024,
        augment: augment ? DEFAULT_AUGMENT : null,
        boxJitter: TRAIN_DEFAULTS.boxJitter,
        seed: 0,
      };
      const epoch = async (index: number) => {
        const batches = epochBatches(entries, { ...options_, gradientAccumulation: 1 }, index);
        let count = 0;
        for await (const prepared of prefetchBatches(batches, options_, index, 0))
          count += prepared.images;
        return count;
      };
      await epoch(0); // untimed: file cache and JIT warm up
      const started = performance.now();
      const count = await epoch(1);
      return count / ((performance.now() - started) / 1000);
    };
    return {
      cpu: `${cpus().length}-core ${cpus()[0]?.model.trim() ?? 'CPU'}`,
      imageSize: { width, height },
      images: entries.length,
      batchSize,
      augmented: await rate(true),
      plain: await rate(false),
      unit: 'images/s',
    };
  } finally {
    await loader.close();
    await rm(dir, { recursive: true, force: true });
  }
}
