/**
 * The evaluation benchmark: images per second end to end (list file and files on disk → written
 * metrics) and model only (`predictMasks` on preloaded tensors), for box prompts alone and for
 * box + 1/3/5 points decoded from the same embeddings, plus the encoder alone. Random weights
 * (exported into a temporary folder) and synthetic data, so it runs anywhere.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { binding } from '../binding.js';
import { readDataset, type Sample } from '../data/dataset.js';
import { evaluate, type EvaluationResult } from '../evaluate/evaluate.js';
import { EXPORT_DEFAULTS, exportModel, type ModelConfig } from '../model/export.js';
import { defaultDevice, loadModel, type Precision, type SamModel } from '../model/load.js';
import { defaultBatchSize, imageTensors, predictBatch } from '../predict.js';
import { parsePromptConfigs, type PromptConfig } from '../prompts/config.js';
import { buildPrompts } from '../prompts/prompts.js';
import { synthesizeDataset } from '../synth/synthesize.js';
import type { Device } from '../torch-module.js';

/** Prompt sets measured: box alone, and box with 1, 3 and 5 points together. */
const PROMPT_SETS = { boxOnly: 'bbox', boxAndPoints: 'bbox,points:1,points:3,points:5' };

export interface EvalBenchmarkOptions {
  /** Default `small` on CUDA, `test` on the CPU. */
  config?: ModelConfig;
  device?: Device;
  /** Synthetic image side in pixels; default the model's input size (1024, or 256 for `test`). */
  size?: number;
  images?: number;
  batchSize?: number;
  /** Timed repetitions of each model-only measurement. */
  repeats?: number;
  /** Default: bf16 weights on CUDA, fp32 on the CPU. */
  precision?: Precision;
}

export interface EvalBenchmarkResult {
  device: string;
  precision: Precision;
  cpu: string;
  config: ModelConfig;
  imageSize: { width: number; height: number };
  images: number;
  batchSize: number;
  endToEnd: { boxOnly: number; boxAndPoints: number };
  /** Where the host's time went in the timed end-to-end runs. */
  host: { boxOnly: HostProfile; boxAndPoints: HostProfile };
  modelOnly: { boxOnly: number; boxAndPoints: number };
  encoderOnly: number;
  unit: 'images/s';
}

/** An end-to-end run's host figures ({@link HostTimings}), per image where it says so. */
export interface HostProfile {
  /** Images/s after the first written batch (start-up and finalising left out). */
  steadyImagesPerSecond: number | null;
  firstImageSeconds: number | null;
  finishSeconds: number;
  /** CPU ms per image of the whole process, then busy ms per image of each kind of thread. */
  msPerImage: { process: number; jsThread: number; sampleThreads: number; scoringThreads: number };
}

/** Runs the benchmark; everything it writes lives in a temporary folder removed at the end. */
export async function runEvalBenchmark(
  options: EvalBenchmarkOptions = {},
): Promise<EvalBenchmarkResult> {
  const device = options.device ?? defaultDevice();
  const config = options.config ?? (device === 'cpu' ? 'test' : 'small');
  const batchSize = options.batchSize ?? defaultBatchSize(device);
  const imageCount = options.images ?? 8 * batchSize;
  const repeats = options.repeats ?? 3;
  const dir = await mkdtemp(join(tmpdir(), 'crackseg-bench-'));
  try {
    const modelPath = join(dir, 'model.pt');
    const exported = await exportModel({ ...EXPORT_DEFAULTS, config, out: modelPath });
    const side = options.size ?? exported.metadata.image_size;
    const dataRoot = join(dir, 'data');
    await synthesizeDataset({
      out: dataRoot,
      train: 0,
      val: 0,
      test: imageCount,
      width: side,
      height: side,
    });
    const model = await loadModel({
      path: modelPath,
      device,
      ...(options.precision ? { precision: options.precision } : {}),
    });
    try {
      const samples: Sample[] = [];
      for await (const s of readDataset({ root: dataRoot, listFile: 'test.txt' })) samples.push(s);
      const endToEnd = async (prompts: string) => {
        // One untimed run first: thread pools, allocator and (on CUDA) kernels warm up.
        const run = () =>
          evaluate({
            model,
            dataRoot,
            listFile: 'test.txt',
            prompts: parsePromptConfigs(prompts),
            outputDir: join(dir, 'out'),
            batchSize,
            numVis: 0,
          });
        await run();
        return run();
      };
      const boxOnly = await endToEnd(PROMPT_SETS.boxOnly);
      const boxAndPoints = await endToEnd(PROMPT_SETS.boxAndPoints);
      const modelOnly = (prompts: string) =>
        timeModelOnly(model, samples, parsePromptConfigs(prompts), batchSize, repeats);
      return {
        device: model.device,
        precision: model.precision,
        cpu: `${cpus().length}-core ${cpus()[0]?.model.trim() ?? 'CPU'}`,
        config,
        imageSize: { width: side, height: side },
        images: imageCount,
        batchSize,
        endToEnd: {
          boxOnly: boxOnly.imagesPerSecond,
          boxAndPoints: boxAndPoints.imagesPerSecond,
        },
        host: { boxOnly: hostProfile(boxOnly), boxAndPoints: hostProfile(boxAndPoints) },
        modelOnly: {
          boxOnly: await modelOnly(PROMPT_SETS.boxOnly),
          boxAndPoints: await modelOnly(PROMPT_SETS.boxAndPoints),
        },
        encoderOnly: await timeEncoderOnly(model, samples, batchSize, repeats),
        unit: 'images/s',
      };
    } finally {
      model.module.dispose();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function hostProfile({ images, host }: EvaluationResult): HostProfile {
  const perImage = (ms: number) => ms / images;
  return {
    steadyImagesPerSecond: host.steadyImagesPerSecond,
    firstImageSeconds: host.firstImageSeconds,
    finishSeconds: host.finishSeconds,
    msPerImage: {
      process: perImage(host.processCpuMs),
      jsThread: perImage(host.busyMs.jsThread),
      sampleThreads: perImage(host.busyMs.sampleThreads),
      scoringThreads: perImage(host.busyMs.scoringThreads),
    },
  };
}

/** `[start, end)` batches of `samples` (all one size here). */
function batches(samples: readonly Sample[], batchSize: number): Sample[][] {
  const out: Sample[][] = [];
  for (let i = 0; i < samples.length; i += batchSize) out.push(samples.slice(i, i + batchSize));
  return out;
}

/** Images/s of `predictBatch` over preloaded images and prompts (best of `repeats`, warm). */
async function timeModelOnly(
  model: SamModel,
  samples: readonly Sample[],
  configs: readonly PromptConfig[],
  batchSize: number,
  repeats: number,
): Promise<number> {
  const work = batches(samples, batchSize).map((batch) => ({
    images: batch.map((s) => s.image),
    prompts: configs.map((c) => batch.map((s) => buildPrompts(s.mask, c, { seed: 0, key: s.id }))),
  }));
  return bestRate(samples.length, repeats, async () => {
    for (const { images, prompts } of work) {
      await predictBatch(model, images, prompts, { probabilities: true });
    }
  });
}

/** Images/s of the encoder alone: `predictMasks` with no prompt set. */
async function timeEncoderOnly(
  model: SamModel,
  samples: readonly Sample[],
  batchSize: number,
  repeats: number,
): Promise<number> {
  const tensors = batches(samples, batchSize).map((batch) =>
    imageTensors(batch.map((s) => s.image)),
  );
  return bestRate(samples.length, repeats, async () => {
    for (const images of tensors) await binding().predictMasks(model.module.native, images, []);
  });
}

/** Runs `pass` once to warm up, then `repeats` times; images/s of the fastest pass. */
async function bestRate(images: number, repeats: number, pass: () => Promise<void>) {
  await pass();
  let best = Infinity;
  for (let r = 0; r < repeats; r++) {
    const started = performance.now();
    await pass();
    best = Math.min(best, (performance.now() - started) / 1000);
  }
  return images / best;
}
