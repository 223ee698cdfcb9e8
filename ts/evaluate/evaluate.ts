/**
 * Evaluation of a model on a list file, for one or more prompt configs at once.
 *
 * Three stages overlap, joined by bounded queues:
 *   1. decoding: the dataset iterator reads and decodes images ahead (sharp, libuv pool);
 *   2. device: each batch of same-sized images is encoded once and every prompt config decoded
 *      from the same embeddings (`predictMasks`, a libuv job);
 *   3. scoring and writing: metrics in worker threads ({@link MetricsPool}), then each config's
 *      {@link ReportWriter} (PNG encoding on the libuv pool), in list order per config.
 * The device loop waits only when {@link MAX_PENDING_BATCHES} batches are still being scored.
 */
import { availableParallelism } from 'node:os';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { readDataset, readList, type Sample, type SkippedEntry } from '../data/dataset.js';
import { DEFAULT_TOLERANCE_RADIUS } from '../metrics/image.js';
import type { SamModel } from '../model/load.js';
import {
  DEFAULT_BATCH_SIZE,
  assertBatchSize,
  predictBatch,
  type ImagePrediction,
} from '../predict.js';
import { promptConfigName, type PromptConfig } from '../prompts/config.js';
import { buildPrompts, type PromptSet } from '../prompts/prompts.js';
import { writeHtmlReport } from '../report/html.js';
import {
  predictionPath,
  probabilityPath,
  writeMaskPng,
  writeProbabilityPng,
} from '../report/predictions.js';
import type { EvaluationSummary } from '../report/summary.js';
import { ReportWriter } from '../report/writer.js';
import { MetricsPool } from './metrics-pool.js';
import { ProgressMeter, type EvaluationProgress } from './progress.js';
import { readSavedPrediction } from './saved.js';

export type { EvaluationProgress };

/** Figures for the best and worst this-many images by IoU, per config, unless told otherwise. */
export const DEFAULT_NUM_VIS = 20;
/** Seed of the random point prompts unless told otherwise. */
export const DEFAULT_SEED = 0;
/** Batches that may be in scoring and writing while the device works on the next one. */
export const MAX_PENDING_BATCHES = 2;
/** Name of the cross-config HTML report. */
export const REPORT_HTML = 'report.html';

export interface SkipOptions {
  /** Re-score the predictions (and probability maps, for ODS/OIS) already in the output folder. */
  inference?: boolean;
  /** Predict and save masks only: no metrics, CSV, summary or figures. */
  evaluation?: boolean;
  /** No overlays or figures. */
  visualization?: boolean;
}

export interface EvaluateOptions {
  /** Needed unless `skip.inference`. */
  model?: SamModel;
  dataRoot: string;
  /** Relative to `dataRoot` unless absolute. */
  listFile: string;
  /** Evaluated together: one encoder pass per batch serves them all. */
  prompts: readonly PromptConfig[];
  /**
   * With `layout: 'per-config'` (default), each config writes to `<outputDir>/<config name>/` and
   * `report.html` to `<outputDir>/`. With `'config-folder'` (one config only), `outputDir` is that
   * config's folder itself, as in the seed's `--output-dir ./results/bbox_prompt`, and
   * `report.html` goes to its parent, covering every config folder there.
   */
  outputDir: string;
  layout?: 'per-config' | 'config-folder';
  /**
   * Figures for the `numVis` best and `numVis` worst images by IoU per config (default
   * {@link DEFAULT_NUM_VIS}); `'all'` for an overlay and figure of every image; 0 for none.
   */
  numVis?: number | 'all';
  /** Images per device batch (default {@link DEFAULT_BATCH_SIZE}). */
  batchSize?: number;
  skip?: SkipOptions;
  /** Record unreadable samples (and, re-scoring, missing predictions) and go on. */
  skipBad?: boolean;
  /** Seeds the random point prompts, per image (default {@link DEFAULT_SEED}). */
  seed?: number;
  /** Worker threads scoring images (default: cores − 1, 1 to 4); 0 scores on the JS thread. */
  workers?: number;
  /** Skeleton matching radius (default {@link DEFAULT_TOLERANCE_RADIUS}). */
  toleranceRadius?: number;
  onProgress?: (progress: EvaluationProgress) => void;
  /** Stops after the batch in progress; everything finished is written and finalised. */
  signal?: AbortSignal;
}

/** One prompt config's outcome. */
export interface ConfigResult {
  name: string;
  config: PromptConfig;
  dir: string;
  /** Null with `skip.evaluation`. */
  summary: EvaluationSummary | null;
}

export interface EvaluationResult {
  configs: ConfigResult[];
  /** True when `signal` stopped the run: the files cover the images finished before. */
  aborted: boolean;
  /** Images predicted (or re-scored) and written. */
  images: number;
  skipped: SkippedEntry[];
  /** Wall time of the whole call, finalising reports included. */
  seconds: number;
  /** `images / seconds`. */
  imagesPerSecond: number;
  /** Null with `skip.evaluation`. */
  reportHtml: string | null;
}

interface ConfigRun {
  name: string;
  config: PromptConfig;
  dir: string;
  writer: ReportWriter | null;
  /** Each config's images are written in list order: a promise chain per config. */
  chain: Promise<void>;
}

/** Runs the evaluation; see {@link EvaluateOptions}. */
export async function evaluate(options: EvaluateOptions): Promise<EvaluationResult> {
  const started = performance.now();
  const skip = options.skip ?? {};
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  assertBatchSize(batchSize);
  const model = options.model;
  if (!skip.inference && !model) throw new Error('evaluate needs a model unless skip.inference');
  if (skip.inference && skip.evaluation) {
    throw new Error('skip.inference and skip.evaluation together leave nothing to do');
  }
  const layout = options.layout ?? 'per-config';
  if (options.prompts.length === 0) throw new Error('evaluate needs at least one prompt config');
  if (layout === 'config-folder' && options.prompts.length !== 1) {
    throw new Error("layout 'config-folder' takes exactly one prompt config");
  }
  const outputDir = resolve(options.outputDir);
  const parentDir = layout === 'config-folder' ? dirname(outputDir) : outputDir;
  const toleranceRadius = options.toleranceRadius ?? DEFAULT_TOLERANCE_RADIUS;
  const seed = options.seed ?? DEFAULT_SEED;
  const numVis = skip.visualization ? 0 : (options.numVis ?? DEFAULT_NUM_VIS);

  const runs: ConfigRun[] = await Promise.all(
    options.prompts.map(async (config) => {
      const name = promptConfigName(config);
      const folder = layout === 'config-folder' ? basename(outputDir) : name;
      const writer = skip.evaluation
        ? null
        : await ReportWriter.open(parentDir, name, {
            folder,
            visualizations: numVis === 'all' ? 'all' : numVis > 0 ? 'extremes' : 'none',
            extremes: numVis === 'all' ? 5 : numVis,
            saveProbabilities: 16,
            toleranceRadius,
            metadata: {
              promptConfig: config,
              model: model?.metadata ?? null,
              device: model?.device ?? null,
              loraCheckpoint: model?.loraCheckpoint ?? null,
              dataRoot: resolve(options.dataRoot),
              listFile: options.listFile,
              batchSize,
              seed,
              inference: skip.inference ? 're-scored from saved predictions' : 'predicted',
            },
          });
      return { name, config, dir: join(parentDir, folder), writer, chain: Promise.resolve() };
    }),
  );

  const { entries } = await readList(options.dataRoot, options.listFile);
  const progress = new ProgressMeter(entries.length, options.onProgress);
  const dataset = readDataset({
    root: options.dataRoot,
    listFile: options.listFile,
    skipBad: options.skipBad ?? false,
    concurrency: Math.max(4, 2 * batchSize),
  });
  const workers = options.workers ?? Math.min(4, Math.max(1, availableParallelism() - 1));
  const pool = new MetricsPool(skip.evaluation ? 0 : workers);
  const pending = new Set<Promise<void>>();
  let failure: { error: unknown } | undefined;
  let recordedSkips = 0;
  const recordSkips = () => {
    for (const entry of dataset.skipped.slice(recordedSkips)) {
      const imageId = basename(entry.path, extname(entry.path));
      for (const run of runs) run.writer?.skip(imageId, entry.reason);
      progress.skipped();
    }
    recordedSkips = dataset.skipped.length;
  };

  try {
    for await (const batch of sameSizeBatches(dataset, batchSize)) {
      recordSkips();
      if (options.signal?.aborted || failure) break;
      const prompts = runs.map((run) =>
        batch.map((sample) => buildPrompts(sample.mask, run.config, { seed, key: sample.id })),
      );
      const deviceStarted = performance.now();
      const predictions = skip.inference
        ? await Promise.all(runs.map((run) => savedPredictions(run, batch, options.skipBad)))
        : await predictBatch(
            model!,
            batch.map((sample) => sample.image),
            prompts,
            { probabilities: true },
          );
      const inferenceMs = skip.inference ? 0 : (performance.now() - deviceStarted) / batch.length;

      const written = Promise.all(
        runs.map((run, c) =>
          writeBatch(run, batch, prompts[c]!, predictions[c]!, {
            inferenceMs,
            pool,
            toleranceRadius,
          }),
        ),
      ).then(
        () => progress.done(batch.length),
        (error: unknown) => void (failure ??= { error }),
      );
      pending.add(written);
      void written.finally(() => pending.delete(written));
      while (pending.size >= MAX_PENDING_BATCHES) await Promise.race(pending);
    }
    recordSkips();
  } catch (error) {
    failure ??= { error };
  }

  // Whatever stopped the run, what was started is finished and every report finalised.
  await Promise.all(pending);
  await pool.close();
  const aborted = !failure && (options.signal?.aborted ?? false);
  // Finalising (histograms, figures, report.html) comes after and is not in these timings.
  const pipelineSeconds = (performance.now() - started) / 1000;
  const timings = {
    pipelineSeconds,
    imagesPerSecond: progress.count / pipelineSeconds,
    modelLoadSeconds: model?.loadSeconds ?? null,
  };
  const endState = failure
    ? { error: failure.error instanceof Error ? failure.error.message : String(failure.error) }
    : { aborted };
  const configs: ConfigResult[] = await Promise.all(
    runs.map(async (run) => {
      await run.chain.catch(() => undefined);
      const summary = run.writer
        ? await run.writer.finish({ timings, metadata: endState, complete: !failure && !aborted })
        : null;
      return { name: run.name, config: run.config, dir: run.dir, summary };
    }),
  );
  const reportHtml = skip.evaluation ? null : join(parentDir, REPORT_HTML);
  if (reportHtml) {
    await writeHtmlReport(reportHtml, [{ label: basename(parentDir), outputDir: parentDir }]);
  }
  if (failure) throw failure.error;
  const seconds = (performance.now() - started) / 1000;
  return {
    configs,
    aborted,
    images: progress.count,
    skipped: [...dataset.skipped],
    seconds,
    imagesPerSecond: progress.count / seconds,
    reportHtml,
  };
}

/** Consecutive samples of one size, at most `batchSize` of them; a size change starts a batch. */
async function* sameSizeBatches(
  samples: AsyncIterable<Sample>,
  batchSize: number,
): AsyncGenerator<Sample[]> {
  let batch: Sample[] = [];
  for await (const sample of samples) {
    const first = batch[0];
    const sameSize =
      first &&
      first.image.width === sample.image.width &&
      first.image.height === sample.image.height;
    if (first && !sameSize) {
      yield batch;
      batch = [];
    }
    batch.push(sample);
    if (batch.length === batchSize) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}

/**
 * A batch's saved predictions for re-scoring; with `skipBad`, an unusable one is recorded as
 * skipped (null) instead of failing the run.
 */
function savedPredictions(
  run: ConfigRun,
  batch: readonly Sample[],
  skipBad = false,
): Promise<Array<ImagePrediction | null>> {
  return Promise.all(
    batch.map((sample) =>
      readSavedPrediction(run.dir, sample).catch((err: unknown) => {
        if (!skipBad) throw err;
        run.writer?.skip(sample.id, (err as Error).message);
        return null;
      }),
    ),
  );
}

/** Scores (in the pool) and writes (in order) one config's predictions for a batch. */
function writeBatch(
  run: ConfigRun,
  batch: readonly Sample[],
  prompts: readonly PromptSet[],
  predictions: ReadonlyArray<ImagePrediction | null>,
  context: { inferenceMs: number; pool: MetricsPool; toleranceRadius: number },
): Promise<void> {
  batch.forEach((sample, i) => {
    const prediction = predictions[i];
    if (!prediction) return;
    const set = prompts[i]!;
    const promptCount = set.boxes.length + set.points.length;
    const { writer } = run;
    if (!writer) {
      run.chain = run.chain.then(() => savePrediction(run.dir, sample.id, prediction));
      return;
    }
    const scored = context.pool.score({
      prediction: prediction.mask,
      groundTruth: sample.mask,
      probabilities: prediction.probabilities,
      toleranceRadius: context.toleranceRadius,
    });
    // A rejection is handled by the chain, which awaits it in turn.
    scored.catch(() => undefined);
    run.chain = run.chain.then(async () => {
      const { evaluation, prediction: mask, probabilities } = await scored;
      await writer.add({
        imageId: sample.id,
        imagePath: sample.imagePath,
        groundTruthPath: sample.maskPath,
        promptCount,
        inferenceMs: context.inferenceMs,
        prediction: mask,
        groundTruth: sample.mask,
        image: sample.image,
        evaluation,
        ...(probabilities ? { probabilities } : {}),
      });
    });
  });
  return run.chain;
}

/** Saves a prediction without scoring it (`skip.evaluation`). */
async function savePrediction(dir: string, imageId: string, prediction: ImagePrediction) {
  await writeMaskPng(predictionPath(dir, imageId), prediction.mask);
  if (prediction.probabilities) {
    await writeProbabilityPng(probabilityPath(dir, imageId), prediction.probabilities);
  }
}
