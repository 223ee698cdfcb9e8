/**
 * Evaluation of a model on a list file, for one or more prompt configs at once, in three stages:
 * the plan (options checked and resolved, the list read, each config's report opened), the
 * pipeline ({@link runPipeline}: samples loaded, predicted, scored and written, overlapping) and
 * the finish (reports finalised, report.html, timings).
 */
import { availableParallelism } from 'node:os';
import { access } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { EventLoopUtilization } from 'node:perf_hooks';
import { DatasetError, loadSample, readList, type SkippedEntry } from '../data/dataset.js';
import type { DecodeOptions } from '../data/decode.js';
import { defaultLoadWorkers } from '../data/sample-pool.js';
import { errorCode } from '../errors.js';
import { mergeShards, type MergedOutcome } from '../distributed/evaluation.js';
import type { ProcessGroup } from '../distributed/group.js';
import { inShard } from '../distributed/sampler.js';
import { DEFAULT_TOLERANCE_RADIUS } from '../metrics/image.js';
import type { SamModel } from '../model/load.js';
import { defaultBatchSize, assertBatchSize } from '../predict.js';
import { promptConfigName, type PromptConfig } from '../prompts/config.js';
import { runRecord, type RunRecord } from '../run-record.js';
import { MAX_HTML_EXAMPLES, writeHtmlReport } from '../report/html.js';
import { PREDICTIONS_DIR, type ProbabilityBitDepth } from '../report/predictions.js';
import type { EvaluationSummary } from '../report/summary.js';
import { ReportWriter, type FinishExtras, type ReportWriterOptions } from '../report/writer.js';
import {
  runPipeline,
  type ConfigRun,
  type PipelineOutcome,
  type PipelineSettings,
} from './pipeline.js';
import { ProgressMeter, type EvaluationProgress } from './progress.js';

export type { EvaluationProgress };

/** Overlays and figures of the best and worst this-many images by IoU, per config, by default. */
export const DEFAULT_NUM_VIS = 20;
/** Bits per sample of saved probability maps when the depth is not named (CLI). */
export const DEFAULT_PROBABILITY_BITS: ProbabilityBitDepth = 16;
/** Seed of the random point prompts unless told otherwise. */
export const DEFAULT_SEED = 0;
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
  /** The pixel limit and the colour-mask rule of decoding ({@link DecodeOptions}). */
  decode?: DecodeOptions;
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
  /**
   * Sharded across this group's ranks (docs/distributed.md): each rank predicts and scores its
   * share of the list (image i on rank i mod W) and writes those images' predictions and figures
   * into `outputDir`; rank 0 then writes the CSV, summary, histograms, extremes' figures and
   * report.html of every image, in list order, as one process would. Every rank calls it with the
   * same options; the other ranks' results have no configs.
   */
  group?: ProcessGroup;
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
  /** `<outputDir>/report.html`; null with `skip.evaluation`, and on a sharded run's other ranks. */
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

/**
 * Runs the evaluation; see {@link EvaluateOptions}. Three stages: the plan (options checked, the
 * list read, each config's report opened), the pipeline ({@link runPipeline}: samples predicted,
 * scored and written) and the finish (each report finalised, report.html, timings).
 */
export async function evaluate(options: EvaluateOptions): Promise<EvaluationResult> {
  const clock = {
    started: performance.now(),
    cpu: process.cpuUsage(),
    loop: performance.eventLoopUtilization(),
  };
  const plan = planEvaluation(options);
  const list = await readCheckedList(plan);
  const run = await describeRun(plan);
  const { shard } = plan.pipeline;
  // From here on outputs exist: whatever happens, every opened report is finalised.
  const { runs, failure } = await openReports(plan, list, run, { shard: !!shard });
  // Rank 0 of a sharded run also opens the job's reports now (emptied, as one process's are),
  // written once at the end with every rank's images, not every few rows.
  const job =
    options.group?.rank === 0
      ? await openReports(plan, list, run, {
          flushEvery: Number.POSITIVE_INFINITY,
          flushIntervalMs: Number.POSITIVE_INFINITY,
        })
      : null;
  const share = list.entries.filter((_, index) => inShard(index, shard)).length;
  const progress = new ProgressMeter(
    list.total - list.entries.length + share,
    options.onProgress,
    clock.started,
  );
  const openFailure = failure ?? job?.failure;
  const outcome = openFailure
    ? notStarted(openFailure)
    : await runPipeline({ ...plan.pipeline, runs, progress });
  if (!options.group) return finishEvaluation(plan, runs, outcome, progress, clock);
  // Every rank's share is written: rank 0 writes the job's reports.
  const merged = await mergeShards(
    options.group,
    shardOutcome(runs, outcome, progress.count),
    (id) => list.indexById.get(id)!,
  );
  const recorded = job ? await recordMerged(job.runs, merged) : undefined;
  const firstFailure =
    outcome.failure ?? (merged.failure ? { error: merged.failure } : undefined) ?? recorded;
  return finishEvaluation(
    plan,
    job?.runs ?? [],
    { ...outcome, failure: firstFailure, aborted: merged.aborted, skipped: merged.skipped },
    progress,
    clock,
    merged.images,
  );
}

/** What this rank's share came to, for {@link mergeShards}. */
function shardOutcome(runs: readonly ConfigRun[], outcome: PipelineOutcome, images: number) {
  const failure = outcome.failure;
  return {
    records: runs.map((run) => [...(run.writer?.records() ?? [])]),
    skipped: outcome.skipped,
    images,
    aborted: outcome.aborted,
    error: failure
      ? {
          message: failure.error instanceof Error ? failure.error.message : String(failure.error),
          code: errorCode(failure.error),
        }
      : null,
  };
}

/**
 * Rank 0's reports of a sharded run fed every rank's records and skips, in list order; the
 * failure, if any.
 */
async function recordMerged(
  runs: readonly ConfigRun[],
  merged: MergedOutcome,
): Promise<{ error: unknown } | undefined> {
  try {
    for (const [c, run] of runs.entries()) {
      const { writer } = run;
      if (!writer) continue;
      for (const record of merged.records[c]!) await writer.record(record);
      for (const entry of merged.skipped)
        if (!entry.promptConfig || entry.promptConfig === run.name) writer.skip(entry);
    }
    return undefined;
  } catch (error) {
    return { error };
  }
}

type EvaluationPlan = ReturnType<typeof planEvaluation>;
type CheckedList = Awaited<ReturnType<typeof readCheckedList>>;

/**
 * The options checked and resolved, each config's folder, and the pipeline's settings: the first
 * stage of {@link evaluate}, before anything is read or written.
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
  const saveProbabilities = options.saveProbabilities ?? false;
  const source = {
    root: options.dataRoot,
    listFile: options.listFile,
    skipBad: options.skipBad ?? false,
    decode: options.decode ?? {},
  };
  const plans = options.prompts.map((config) => {
    const name = promptConfigName(config);
    const folder = layout === 'config-folder' ? basename(outputDir) : name;
    return { name, config, folder, dir: join(parentDir, folder) };
  });
  const pipeline: PipelineSettings = {
    source,
    model: skip.inference ? null : (options.model ?? null),
    batchSize,
    seed: options.seed ?? DEFAULT_SEED,
    toleranceRadius: options.toleranceRadius ?? DEFAULT_TOLERANCE_RADIUS,
    saveProbabilities,
    // Without scoring, the maps are only wanted to be saved.
    probabilities: !skip.evaluation || saveProbabilities !== false,
    loadWorkers: options.loadWorkers ?? defaultLoadWorkers(),
    // Every core but the JS thread's: scoring and PNG encoding are the most CPU of a GPU run.
    scoringWorkers: skip.evaluation
      ? 0
      : (options.workers ?? Math.max(1, availableParallelism() - 1)),
    signal: options.signal,
    shard: options.group && { rank: options.group.rank, worldSize: options.group.worldSize },
  };
  return {
    skip,
    layout,
    numVis,
    outputDir,
    parentDir,
    source,
    listFile: resolve(options.dataRoot, options.listFile),
    /** For the reports' metadata and timings (the pipeline's is null when re-scoring). */
    model: options.model,
    plans,
    pipeline,
  };
}

/**
 * The list's entries and its line count. Everything that can fail cheaply fails here, before any
 * output is touched: a re-run that cannot start leaves the previous results as they were.
 */
async function readCheckedList(plan: EvaluationPlan) {
  const { root, listFile, skipBad } = plan.source;
  const { entries, problems } = await readList(root, listFile);
  const firstProblem = problems[0];
  if (firstProblem && !skipBad) {
    const { line, text, reason, kind } = firstProblem;
    throw new DatasetError(listFile, line, text, reason, kind);
  }
  if (entries.length === 0) throw new Error(`list file '${plan.listFile}' has no entries`);
  if (plan.skip.inference) {
    for (const { dir } of plan.plans) {
      const saved = join(dir, PREDICTIONS_DIR);
      if (!(await exists(saved))) {
        throw new Error(`cannot read saved predictions: '${saved}' does not exist`);
      }
    }
  }
  // Ids are unique within a list: records and the extremes' figures find their entry by id.
  const indexById = new Map(entries.map((entry, index) => [entry.id, index]));
  return { entries, indexById, total: entries.length + problems.length };
}

/** What the run is, recorded in every summary. */
function describeRun(plan: EvaluationPlan): Promise<RunRecord> {
  const { skip, numVis, source, model } = plan;
  const { batchSize, seed, saveProbabilities, toleranceRadius } = plan.pipeline;
  return runRecord({
    command: 'evaluate',
    settings: {
      dataRoot: resolve(source.root),
      listFile: plan.listFile,
      prompts: plan.plans.map((p) => p.config),
      outputDir: plan.outputDir,
      layout: plan.layout,
      numVis,
      batchSize,
      seed,
      toleranceRadius,
      saveProbabilities,
      skip,
      skipBad: source.skipBad,
    },
    model: model?.module.path ?? null,
    loraCheckpoint: model?.loraCheckpoint ?? null,
    device: model?.device ?? 'none',
  });
}

/**
 * Each config's report opened (none with `skip.evaluation`), with `writerOptions` (a shard's, or
 * rank 0's of a sharded run); the first failure is returned with the reports that did open, so
 * that those are finalised.
 */
async function openReports(
  plan: EvaluationPlan,
  { entries, indexById }: CheckedList,
  run: RunRecord,
  writerOptions: Pick<ReportWriterOptions, 'shard' | 'flushEvery' | 'flushIntervalMs'>,
): Promise<{ runs: ConfigRun[]; failure: { error: unknown } | undefined }> {
  const { skip, numVis, source, model } = plan;
  const { batchSize, seed, saveProbabilities, toleranceRadius } = plan.pipeline;
  const opened = await Promise.allSettled(
    plan.plans.map(async (config): Promise<ConfigRun> => {
      const writer = skip.evaluation
        ? null
        : await ReportWriter.open(plan.parentDir, config.name, {
            folder: config.folder,
            visualizations: numVis === 'all' ? 'all' : numVis > 0 ? 'extremes' : 'none',
            extremes: numVis === 'all' ? MAX_HTML_EXAMPLES : numVis,
            saveProbabilities,
            toleranceRadius,
            run,
            ...writerOptions,
            // The extremes' figures read their image and mask again: nothing is kept for them.
            loadInputs: async (imageId: string) => {
              const index = indexById.get(imageId)!;
              const sample = await loadSample(entries[index]!, index, {
                root: source.root,
                listFile: source.listFile,
                decode: source.decode,
              });
              return { image: sample.image, groundTruth: sample.mask };
            },
            metadata: {
              promptConfig: config.config,
              model: model?.metadata ?? null,
              device: model?.device ?? null,
              loraCheckpoint: model?.loraCheckpoint ?? null,
              dataRoot: resolve(source.root),
              listFile: plan.listFile,
              batchSize,
              seed,
              inference: skip.inference ? 're-scored from saved predictions' : 'predicted',
            },
          });
      return { ...config, writer, chain: Promise.resolve() };
    }),
  );
  const runs = opened.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
  const openFailure = opened.find((o) => o.status === 'rejected');
  return { runs, failure: openFailure ? { error: openFailure.reason } : undefined };
}

/** The outcome of a pipeline that never started: a report failed to open. */
function notStarted(failure: { error: unknown }): PipelineOutcome {
  return {
    failure,
    aborted: false,
    skipped: [],
    steadyImagesPerSecond: null,
    busyMs: { sampleThreads: 0, scoringThreads: 0 },
  };
}

/**
 * The last stage of {@link evaluate}: each report finalised, whatever ended the run, then
 * report.html; throws the run's first failure once everything is finalised.
 */
async function finishEvaluation(
  plan: EvaluationPlan,
  runs: readonly ConfigRun[],
  outcome: PipelineOutcome,
  progress: ProgressMeter,
  clock: { started: number; cpu: NodeJS.CpuUsage; loop: EventLoopUtilization },
  /** Images written: by every rank of a sharded run. */
  images = progress.count,
): Promise<EvaluationResult> {
  const { aborted, skipped } = outcome;
  let { failure } = outcome;
  const cpu = process.cpuUsage(clock.cpu);
  const jsThread = performance.eventLoopUtilization(clock.loop).active;
  // Finalising (histograms, figures, report.html) comes after and is not in these timings.
  const pipelineSeconds = (performance.now() - clock.started) / 1000;
  const timings = {
    pipelineSeconds,
    imagesPerSecond: images / pipelineSeconds,
    modelLoadSeconds: plan.model?.loadSeconds ?? null,
  };
  const endState = failure
    ? { error: failure.error instanceof Error ? failure.error.message : String(failure.error) }
    : { aborted };
  const finished = await finishReports(runs, {
    timings,
    metadata: endState,
    complete: !failure && !aborted,
  });
  failure ??= finished.failure;
  const { configs } = finished;
  const { outputDir } = plan;
  // None with skip.evaluation, or on the ranks of a sharded run other than 0.
  const reportHtml =
    plan.skip.evaluation || configs.length === 0 ? null : join(outputDir, REPORT_HTML);
  if (reportHtml) {
    const only = plan.layout === 'config-folder' ? undefined : runs.map((run) => run.folder);
    try {
      await writeHtmlReport(reportHtml, [
        { label: basename(outputDir), outputDir, ...(only ? { only } : {}) },
      ]);
    } catch (error) {
      failure ??= { error };
    }
  }
  if (failure) throw failure.error;
  const seconds = (performance.now() - clock.started) / 1000;
  const host: HostTimings = {
    pipelineSeconds,
    firstImageSeconds: progress.firstImageSeconds,
    steadyImagesPerSecond: outcome.steadyImagesPerSecond,
    finishSeconds: seconds - pipelineSeconds,
    processCpuMs: (cpu.user + cpu.system) / 1000,
    busyMs: { jsThread, ...outcome.busyMs },
  };
  return {
    configs,
    aborted,
    images,
    skipped,
    seconds,
    imagesPerSecond: images / seconds,
    reportHtml,
    host,
  };
}

/**
 * Each report finalised (histograms, figures of the extremes, summary), whatever ended the run;
 * the first failure is returned, not thrown, so every report is finalised.
 */
async function finishReports(
  runs: readonly ConfigRun[],
  extras: FinishExtras,
): Promise<{ configs: ConfigResult[]; failure: { error: unknown } | undefined }> {
  const finished = await Promise.allSettled(
    runs.map(async (run) => {
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
