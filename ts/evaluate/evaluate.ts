/**
 * Evaluation of a model on a list file, for one or more prompt configs at once.
 *
 * Three stages overlap, joined by bounded queues:
 *   1. loading: the dataset iterator has samples read, decoded (sharp, libuv pool) and prompted
 *      ahead, in worker threads ({@link SamplePool});
 *   2. device: each batch of same-sized images is encoded once and every prompt config decoded
 *      from the same embeddings (`predictMasks`, a libuv job);
 *   3. scoring and writing: metrics in worker threads ({@link MetricsPool}), then each config's
 *      {@link ReportWriter} (PNG encoding on the libuv pool), in list order per config.
 * The device loop waits only when {@link MAX_PENDING_BATCHES} batches are still being scored.
 */
import { availableParallelism } from 'node:os';
import { access } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import {
  DatasetError,
  loadSample,
  readDataset,
  readList,
  type Dataset,
  type SkippedEntry,
} from '../data/dataset.js';
import { defaultLoadWorkers, SamplePool, type HeldSample } from '../data/sample-pool.js';
import { DEFAULT_TOLERANCE_RADIUS } from '../metrics/image.js';
import type { SamModel } from '../model/load.js';
import {
  defaultBatchSize,
  assertBatchSize,
  predictBatch,
  sameSizeBatches,
  type HeldPrediction,
  type ImagePrediction,
} from '../predict.js';
import { promptConfigName, type PromptConfig } from '../prompts/config.js';
import { runRecord } from '../run-record.js';
import type { PromptSet } from '../prompts/prompts.js';
import { MAX_HTML_EXAMPLES, writeHtmlReport } from '../report/html.js';
import {
  PREDICTIONS_DIR,
  predictionPath,
  probabilityPath,
  writeMaskPng,
  writeProbabilityPng,
  type ProbabilityBitDepth,
} from '../report/predictions.js';
import type { EvaluationSummary } from '../report/summary.js';
import { ReportWriter, type FinishExtras } from '../report/writer.js';
import { readHeld, takeHeld } from '../held.js';
import type { BinaryMask, RgbImage } from '../image.js';
import { launchAhead } from '../util/launch-ahead.js';
import { HeldInputs } from './held-inputs.js';
import { MetricsPool } from './metrics-pool.js';
import { ProgressMeter, type EvaluationProgress } from './progress.js';
import { SavedPredictionError, readSavedPrediction } from './saved.js';

export type { EvaluationProgress };

/** Overlays and figures of the best and worst this-many images by IoU, per config, by default. */
export const DEFAULT_NUM_VIS = 20;
/** Bits per sample of saved probability maps when the depth is not named (CLI). */
export const DEFAULT_PROBABILITY_BITS: ProbabilityBitDepth = 16;
/** Seed of the random point prompts unless told otherwise. */
export const DEFAULT_SEED = 0;
/** Batches that may be in scoring and writing while the device works on the next one. */
export const MAX_PENDING_BATCHES = 2;
/** Name of the HTML report, written into `outputDir`. */
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
   * `report.html` to `<outputDir>/`, covering this run's configs. With `'config-folder'` (one
   * config only), `outputDir` is that config's folder itself, as in the seed's
   * `--output-dir ./results/bbox_prompt`, and `report.html` goes into it, covering that config.
   * Nothing is written outside `outputDir`.
   */
  outputDir: string;
  layout?: 'per-config' | 'config-folder';
  /**
   * Overlays and figures of the `numVis` best and `numVis` worst images by IoU per config
   * (default {@link DEFAULT_NUM_VIS}; report.html shows at most {@link MAX_HTML_EXAMPLES} of
   * each); `'all'` for every image; 0 for none.
   */
  numVis?: number | 'all';
  /** Images per device batch (default {@link defaultBatchSize} of the model's device). */
  batchSize?: number;
  skip?: SkipOptions;
  /**
   * Record unreadable samples and malformed lines (and, re-scoring, missing predictions) and go
   * on; each record names list file, line, path, category and message.
   */
  skipBad?: boolean;
  /** Seeds the random point prompts, per image (default {@link DEFAULT_SEED}). */
  seed?: number;
  /** Worker threads scoring images (default: cores − 1, at least 1); 0 scores on the JS thread. */
  workers?: number;
  /** Worker threads reading, decoding and prompting samples ({@link defaultLoadWorkers}); 0: the JS thread. */
  loadWorkers?: number;
  /** Skeleton matching radius (default {@link DEFAULT_TOLERANCE_RADIUS}). */
  toleranceRadius?: number;
  /**
   * Also save each probability map as a PNG of this depth in `probabilities/`, so that a later
   * `skip.inference` re-scores ODS/OIS too (default false: ODS/OIS are computed from the maps in
   * memory and the maps dropped; a 16-bit map of 1024² costs a scoring thread about as much as
   * all its metrics, and its file a hundred times the mask's).
   */
  saveProbabilities?: ProbabilityBitDepth | false;
  onProgress?: (progress: EvaluationProgress) => void;
  /**
   * Stops taking batches; those started (on the device, being scored) are finished, and
   * everything is written and finalised.
   */
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
  /** Images predicted (or re-scored) and written for at least one config. */
  images: number;
  /**
   * Lines and images left out (with `skipBad`): the dataset's, for every config, and (re-scoring)
   * each config's missing predictions, with `promptConfig` set.
   */
  skipped: SkippedEntry[];
  /** Wall time of the whole call, finalising reports included. */
  seconds: number;
  /** `images / seconds`. */
  imagesPerSecond: number;
  /** `<outputDir>/report.html`; null with `skip.evaluation`. */
  reportHtml: string | null;
  host: HostTimings;
}

/**
 * Where the host's time went, from the call to the last image written (finalising not included):
 * what bounds a run when the device waits.
 */
export interface HostTimings {
  /** Seconds from the call to the last image written. */
  pipelineSeconds: number;
  /** Seconds from the call to the first image written (thread start-up, first batches). */
  firstImageSeconds: number | null;
  /** Images/s after the first written batch; null with fewer than two batches. */
  steadyImagesPerSecond: number | null;
  /** Seconds finalising: histograms, figures of the extremes, summaries, report.html. */
  finishSeconds: number;
  /** CPU milliseconds of the whole process, every thread (libuv pool, libtorch, …) counted. */
  processCpuMs: number;
  /** Milliseconds the event loops were busy: this thread's, all sample threads', all scoring threads'. */
  busyMs: { jsThread: number; sampleThreads: number; scoringThreads: number };
}

interface ConfigRun {
  name: string;
  config: PromptConfig;
  /** The folder's name under the parent (the config's name unless `layout: 'config-folder'`). */
  folder: string;
  dir: string;
  writer: ReportWriter | null;
  /** Each config's images are written in list order: a promise chain per config. */
  chain: Promise<void>;
}

/** Runs the evaluation; see {@link EvaluateOptions}. */
export async function evaluate(options: EvaluateOptions): Promise<EvaluationResult> {
  const started = performance.now();
  const cpuAtStart = process.cpuUsage();
  const loopAtStart = performance.eventLoopUtilization();
  const plan = planEvaluation(options);
  const { skip, batchSize, layout, numVis, outputDir, parentDir, plans } = plan;
  const { toleranceRadius, saveProbabilities, seed, listFile } = plan;
  const model = options.model;

  // Everything that can fail cheaply fails here, before any output is touched: a re-run that
  // cannot start leaves the previous results as they were.
  const { entries, problems } = await readList(options.dataRoot, options.listFile);
  // Where each image's list entry is, to read its inputs again for a figure at the end.
  const indexById = new Map<string, number>();
  const firstProblem = problems[0];
  if (firstProblem && !options.skipBad) {
    const { line, text, reason, kind } = firstProblem;
    throw new DatasetError(options.listFile, line, text, reason, kind);
  }
  if (entries.length === 0) throw new Error(`list file '${listFile}' has no entries`);
  if (skip.inference) {
    for (const plan of plans) {
      const saved = join(plan.dir, PREDICTIONS_DIR);
      if (!(await exists(saved))) {
        throw new Error(`cannot read saved predictions: '${saved}' does not exist`);
      }
    }
  }

  const record = await runRecord({
    command: 'evaluate',
    settings: {
      dataRoot: resolve(options.dataRoot),
      listFile,
      prompts: options.prompts,
      outputDir,
      layout,
      numVis,
      batchSize,
      seed,
      toleranceRadius,
      saveProbabilities,
      skip,
      skipBad: options.skipBad ?? false,
    },
    model: model?.module.path ?? null,
    loraCheckpoint: model?.loraCheckpoint ?? null,
    device: model?.device ?? 'none',
  });

  // From here on outputs exist: whatever happens, every opened report is finalised.
  const opened = await Promise.allSettled(
    plans.map(async (plan): Promise<ConfigRun> => {
      const writer = skip.evaluation
        ? null
        : await ReportWriter.open(parentDir, plan.name, {
            folder: plan.folder,
            visualizations: numVis === 'all' ? 'all' : numVis > 0 ? 'extremes' : 'none',
            extremes: numVis === 'all' ? MAX_HTML_EXAMPLES : numVis,
            saveProbabilities,
            toleranceRadius,
            run: record,
            // The extremes' figures read their image and mask again: nothing is kept for them.
            loadInputs: async (imageId: string) => {
              const index = indexById.get(imageId)!;
              const sample = await loadSample(entries[index]!, index, {
                root: options.dataRoot,
                listFile: options.listFile,
              });
              return { image: sample.image, groundTruth: sample.mask };
            },
            metadata: {
              promptConfig: plan.config,
              model: model?.metadata ?? null,
              device: model?.device ?? null,
              loraCheckpoint: model?.loraCheckpoint ?? null,
              dataRoot: resolve(options.dataRoot),
              listFile,
              batchSize,
              seed,
              inference: skip.inference ? 're-scored from saved predictions' : 'predicted',
            },
          });
      return { ...plan, writer, chain: Promise.resolve() };
    }),
  );
  const runs = opened.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
  let failure: { error: unknown } | undefined;
  const openFailure = opened.find((o) => o.status === 'rejected');
  if (openFailure) failure = { error: openFailure.reason };

  const progress = new ProgressMeter(entries.length + problems.length, options.onProgress, started);
  const skipped: SkippedEntry[] = [];
  const pending = new Set<Promise<void>>();
  let pool: MetricsPool | undefined;
  let samplePool: SamplePool | undefined;
  let dataset: Dataset<HeldSample> | undefined;
  // Every image, mask and saved-only prediction held natively, released by its one owner.
  const held = new HeldInputs();

  let recordedSkips = 0;
  const recordSkips = () => {
    if (!dataset) return;
    for (const entry of dataset.skipped.slice(recordedSkips)) {
      for (const run of runs) run.writer?.skip(entry);
      skipped.push(entry);
      progress.skipped();
    }
    recordedSkips = dataset.skipped.length;
  };

  try {
    if (failure) throw failure.error;
    const loading = new SamplePool(options.loadWorkers ?? defaultLoadWorkers());
    samplePool = loading;
    const prepare = { root: options.dataRoot, listFile: options.listFile, seed };
    const prompts = runs.map((run) => run.config);
    dataset = readDataset({
      root: options.dataRoot,
      listFile: options.listFile,
      skipBad: options.skipBad ?? false,
      concurrency: Math.max(4, 2 * batchSize),
      load: (entry, index) =>
        held.track(loading.prepare({ ...prepare, entry, index, prompts, hold: true })),
    });
    // Every core but the JS thread's: scoring and PNG encoding are the most CPU of a GPU run.
    const workers = options.workers ?? Math.max(1, availableParallelism() - 1);
    pool = new MetricsPool(skip.evaluation ? 0 : workers);
    const scoring = pool;
    // One batch is on the device while the previous one's results are handed to scoring, so
    // the device does not wait for the JS thread between batches.
    let previousResolved = performance.now();
    const drawsEveryImage = runs.some((run) => run.writer?.drawsEveryImage);
    const launch = (batch: HeldSample[]) => {
      held.launched(batch);
      for (const sample of batch) indexById.set(sample.id, sample.index);
      const prompts = runs.map((_, c) => batch.map((sample) => sample.prompts[c]!));
      const launched = performance.now();
      const predictions = skip.inference
        ? Promise.all(
            runs.map((run) =>
              savedPredictions(run, batch, {
                skipBad: options.skipBad ?? false,
                listFile: options.listFile,
                skipped,
              }),
            ),
          )
        : predictBatch(
            model!,
            batch.map((sample) => sample.image),
            prompts,
            // Held natively: the scoring threads take the pixels, this thread never copies them.
            // Without scoring, the maps are only wanted to be saved.
            { probabilities: !skip.evaluation || saveProbabilities !== false, hold: true },
          );
      // The device has read the images once the predictions are back (unless every image gets
      // a figure: then they go with the ground truths, in hand()).
      if (!drawsEveryImage)
        held.releaseAfter(
          predictions,
          batch.map((sample) => sample.image),
        );
      // The device time of a batch: from when the device could start it to its results.
      const timed = predictions.then((sets) => {
        const resolved = performance.now();
        const ms = resolved - Math.max(launched, previousResolved);
        previousResolved = resolved;
        return { sets, batchMsPerImage: skip.inference ? 0 : ms / batch.length };
      });
      timed.catch(() => undefined); // awaited in hand(); never unhandled meanwhile
      return { batch, prompts, timed };
    };
    const hand = async ({ batch, prompts, timed }: ReturnType<typeof launch>) => {
      // Released twice is harmless: the images may be gone already.
      const inputs = batch.flatMap((sample) => [sample.mask, sample.image]);
      const outcome = await timed.catch((error: unknown) => {
        held.releaseAfter(timed, inputs);
        throw error;
      });
      const { sets: predictions, batchMsPerImage } = outcome;
      // An image counts as done when some config has its prediction; else as skipped.
      const missing = batch.filter((_, i) => predictions.every((set) => set[i] === null)).length;
      const chains = runs.map((run, c) =>
        writeBatch(run, batch, prompts[c]!, predictions[c]!, {
          batchMsPerImage,
          pool: scoring,
          held,
          toleranceRadius,
          saveProbabilities,
        }),
      );
      // The scoring threads read the ground truths until every config's writes have settled.
      held.releaseAfter(Promise.allSettled(chains), inputs);
      const written = Promise.all(chains).then(
        () => {
          progress.done(batch.length - missing);
          for (let k = 0; k < missing; k++) progress.skipped();
        },
        (error: unknown) => void (failure ??= { error }),
      );
      pending.add(written);
      void written.finally(() => pending.delete(written));
      while (pending.size >= MAX_PENDING_BATCHES) await Promise.race(pending);
    };
    await launchAhead(
      sameSizeBatches(dataset, batchSize, (s) => s.image),
      {
        // A batch not launched is released with the unlaunched samples.
        proceed: () => (recordSkips(), !options.signal?.aborted && !failure),
        launch,
        settle: hand,
        // The batch on the device is finished and written whatever ended the loop.
        abandon: (last) => hand(last).catch((error: unknown) => void (failure ??= { error })),
      },
    );
    recordSkips();
  } catch (error) {
    failure ??= { error };
    recordSkips();
  }

  // Whatever stopped the run, what was started is finished and every report finalised.
  await Promise.all(pending);
  await held.close();
  const cpu = process.cpuUsage(cpuAtStart);
  const busyMs = {
    jsThread: performance.eventLoopUtilization(loopAtStart).active,
    sampleThreads: samplePool?.busyMs() ?? 0,
    scoringThreads: pool?.busyMs() ?? 0,
  };
  const steadyImagesPerSecond = progress.steadyRate();
  await Promise.all([pool?.close(), samplePool?.close()]);
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
  const finished = await finishReports(runs, held, {
    timings,
    metadata: endState,
    complete: !failure && !aborted,
  });
  failure ??= finished.failure;
  const { configs } = finished;
  const reportHtml = skip.evaluation ? null : join(outputDir, REPORT_HTML);
  if (reportHtml && configs.length > 0) {
    const only = layout === 'config-folder' ? undefined : runs.map((run) => run.folder);
    try {
      await writeHtmlReport(reportHtml, [
        { label: basename(outputDir), outputDir, ...(only ? { only } : {}) },
      ]);
    } catch (error) {
      failure ??= { error };
    }
  }
  if (failure) throw failure.error;
  const seconds = (performance.now() - started) / 1000;
  const host: HostTimings = {
    pipelineSeconds,
    firstImageSeconds: progress.firstImageSeconds,
    steadyImagesPerSecond,
    finishSeconds: seconds - pipelineSeconds,
    processCpuMs: (cpu.user + cpu.system) / 1000,
    busyMs,
  };
  return {
    configs,
    aborted,
    images: progress.count,
    skipped,
    seconds,
    imagesPerSecond: progress.count / seconds,
    reportHtml,
    host,
  };
}

/**
 * The options checked and resolved, and each config's folder: the first stage of {@link evaluate},
 * before anything is read or written.
 */
function planEvaluation(options: EvaluateOptions) {
  const skip = options.skip ?? {};
  const batchSize = options.batchSize ?? defaultBatchSize(options.model?.device ?? 'cpu');
  assertBatchSize(batchSize);
  if (!skip.inference && !options.model)
    throw new Error('evaluate needs a model unless skip.inference');
  if (skip.inference && skip.evaluation) {
    throw new Error('skip.inference and skip.evaluation together leave nothing to do');
  }
  const layout = options.layout ?? 'per-config';
  if (options.prompts.length === 0) throw new Error('evaluate needs at least one prompt config');
  if (layout === 'config-folder' && options.prompts.length !== 1) {
    throw new Error("layout 'config-folder' takes exactly one prompt config");
  }
  const numVis = skip.visualization ? 0 : (options.numVis ?? DEFAULT_NUM_VIS);
  if (numVis !== 'all' && !(Number.isInteger(numVis) && numVis >= 0)) {
    throw new RangeError(`numVis must be a non-negative integer or 'all', got ${numVis}`);
  }
  const outputDir = resolve(options.outputDir);
  const parentDir = layout === 'config-folder' ? dirname(outputDir) : outputDir;
  const toleranceRadius = options.toleranceRadius ?? DEFAULT_TOLERANCE_RADIUS;
  const saveProbabilities = options.saveProbabilities ?? false;
  const seed = options.seed ?? DEFAULT_SEED;
  const listFile = resolve(options.dataRoot, options.listFile);
  const plans = options.prompts.map((config) => {
    const name = promptConfigName(config);
    const folder = layout === 'config-folder' ? basename(outputDir) : name;
    return { name, config, folder, dir: join(parentDir, folder) };
  });
  return {
    skip,
    batchSize,
    layout,
    numVis,
    outputDir,
    parentDir,
    toleranceRadius,
    saveProbabilities,
    seed,
    listFile,
    plans,
  };
}

/**
 * The last stage of {@link evaluate}: once each config's images are written and the held planes
 * released, each report is finalised (histograms, figures of the extremes, summary), whatever
 * ended the run; the first failure is returned, not thrown, so every report is finalised.
 */
async function finishReports(
  runs: readonly ConfigRun[],
  held: HeldInputs,
  extras: FinishExtras,
): Promise<{ configs: ConfigResult[]; failure: { error: unknown } | undefined }> {
  const finished = await Promise.allSettled(
    runs.map(async (run) => {
      await run.chain.catch(() => undefined);
      await held.released();
      const summary = run.writer ? await run.writer.finish(extras) : null;
      return { name: run.name, config: run.config, dir: run.dir, summary };
    }),
  );
  const configs: ConfigResult[] = [];
  let failure: { error: unknown } | undefined;
  for (const f of finished) {
    if (f.status === 'fulfilled') configs.push(f.value);
    else failure ??= { error: f.reason };
  }
  return { configs, failure };
}

function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/**
 * A batch's saved predictions for re-scoring; with `skipBad`, an unusable one is recorded as
 * skipped in the config's report (null) instead of failing the run.
 */
function savedPredictions(
  run: ConfigRun,
  batch: readonly HeldSample[],
  context: { skipBad: boolean; listFile: string; skipped: SkippedEntry[] },
): Promise<Array<ImagePrediction | null>> {
  return Promise.all(
    batch.map((sample) =>
      readSavedPrediction(run.dir, sample).catch((err: unknown) => {
        if (!context.skipBad || !(err instanceof SavedPredictionError)) throw err;
        const record: SkippedEntry = {
          id: sample.id,
          listFile: context.listFile,
          line: sample.line,
          path: err.path,
          category: err.category,
          reason: err.message,
          promptConfig: run.name,
        };
        run.writer?.skip(record);
        context.skipped.push(record);
        return null;
      }),
    ),
  );
}

/** Scores (in the pool) and writes (in order) one config's predictions for a batch. */
function writeBatch(
  run: ConfigRun,
  batch: readonly HeldSample[],
  prompts: readonly PromptSet[],
  predictions: ReadonlyArray<ImagePrediction | HeldPrediction | null>,
  context: {
    batchMsPerImage: number;
    pool: MetricsPool;
    held: HeldInputs;
    toleranceRadius: number;
    saveProbabilities: ProbabilityBitDepth | false;
  },
): Promise<void> {
  const bits = context.saveProbabilities;
  batch.forEach((sample, i) => {
    const prediction = predictions[i];
    if (!prediction) return;
    const set = prompts[i]!;
    const promptCount = set.boxes.length + set.points.length;
    const { writer } = run;
    if (!writer) {
      run.chain = run.chain.then(() => savePrediction(run.dir, sample.id, prediction, bits));
      context.held.releaseAfter(run.chain, [prediction.mask, prediction.probabilities]);
      return;
    }
    const scored = context.pool.score({
      prediction: prediction.mask,
      groundTruth: sample.mask,
      probabilities: prediction.probabilities,
      toleranceRadius: context.toleranceRadius,
      save: {
        mask: predictionPath(writer.configDir, sample.id),
        ...(bits
          ? { probabilities: { path: probabilityPath(writer.configDir, sample.id), bits } }
          : {}),
      },
      returnPrediction: writer.drawsEveryImage,
    });
    // A rejection is handled by the chain, which awaits it in turn.
    scored.catch(() => undefined);
    run.chain = run.chain.then(async () => {
      const { evaluation, prediction: mask } = await scored;
      await writer.add({
        imageId: sample.id,
        imagePath: sample.imagePath,
        groundTruthPath: sample.maskPath,
        promptCount,
        batchMsPerImage: context.batchMsPerImage,
        evaluation,
        saved: true,
        // A figure of every image needs its inputs now; the extremes' are read again at the end.
        ...(mask
          ? {
              prediction: mask,
              image: readHeld<RgbImage>(sample.image),
              groundTruth: readHeld<BinaryMask>(sample.mask),
            }
          : {}),
      });
    });
  });
  return run.chain;
}

/** Saves a prediction (and its probability map at `bits`) without scoring it (`skip.evaluation`). */
async function savePrediction(
  dir: string,
  imageId: string,
  prediction: ImagePrediction | HeldPrediction,
  bits: ProbabilityBitDepth | false,
) {
  await writeMaskPng(predictionPath(dir, imageId), takeHeld(prediction.mask));
  if (bits && prediction.probabilities) {
    await writeProbabilityPng(probabilityPath(dir, imageId), prediction.probabilities, bits);
  }
}
