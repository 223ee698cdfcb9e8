/**
 * The middle stage of evaluation: samples in, written images out. Three steps overlap, joined by
 * bounded queues:
 *   1. loading: the dataset iterator has samples read, decoded (sharp, libuv pool) and prompted
 *      ahead, in worker threads ({@link SamplePool});
 *   2. device: each batch of same-sized images is encoded once and every prompt config decoded
 *      from the same embeddings (`predictMasks`, a libuv job), batch n+1 launched before batch n
 *      is settled ({@link launchAhead});
 *   3. scoring and writing: metrics in worker threads ({@link MetricsPool}), then each config's
 *      {@link ReportWriter} (PNG encoding on the libuv pool), in list order per config.
 * The device loop waits only when {@link MAX_PENDING_BATCHES} batches are still being scored.
 * The stage owns both thread pools and every held native plane ({@link HeldInputs}): when it
 * returns, whatever ended it, the pools are closed, each config's writes have settled and no
 * plane is held.
 */
import { readDataset, type Dataset, type SkippedEntry } from '../data/dataset.js';
import type { DecodeOptions } from '../data/decode.js';
import { SamplePool, type HeldSample } from '../data/sample-pool.js';
import type { Shard } from '../distributed/sampler.js';
import type { SamModel } from '../model/load.js';
import {
  predictBatch,
  sameSizeBatches,
  type HeldPrediction,
  type ImagePrediction,
} from '../predict.js';
import type { PromptConfig } from '../prompts/config.js';
import type { PromptSet } from '../prompts/prompts.js';
import {
  predictionPath,
  probabilityPath,
  writeMaskPng,
  writeProbabilityPng,
  type ProbabilityBitDepth,
} from '../report/predictions.js';
import type { ReportWriter } from '../report/writer.js';
import { readHeld, takeHeld } from '../held.js';
import type { BinaryMask, RgbImage } from '../image.js';
import { launchAhead } from '../util/launch-ahead.js';
import { HeldInputs } from './held-inputs.js';
import { MetricsPool } from './metrics-pool.js';
import type { ProgressMeter } from './progress.js';
import { SavedPredictionError, readSavedPrediction } from './saved.js';

/** Batches that may be in scoring and writing while the device works on the next one. */
export const MAX_PENDING_BATCHES = 2;

/** One prompt config's output, as the pipeline writes it. */
export interface ConfigRun {
  name: string;
  config: PromptConfig;
  /** The folder's name under the parent (the config's name unless `layout: 'config-folder'`). */
  folder: string;
  dir: string;
  /** Null when predictions are only saved, not scored. */
  writer: ReportWriter | null;
  /** Each config's images are written in list order: a promise chain per config. */
  chain: Promise<void>;
}

/** What the pipeline needs from the evaluation's options, resolved by its plan. */
export interface PipelineSettings {
  /** The list file (relative to `root` unless absolute), read in list order. */
  source: { root: string; listFile: string; skipBad: boolean; decode: DecodeOptions };
  /** Predicts each batch; null: each config's saved predictions are re-scored instead. */
  model: SamModel | null;
  batchSize: number;
  /** Seeds the random point prompts, per image. */
  seed: number;
  toleranceRadius: number;
  saveProbabilities: ProbabilityBitDepth | false;
  /** Whether the device returns probability maps (to score ODS/OIS, or to save them). */
  probabilities: boolean;
  /** Sample threads; 0: the JS thread. */
  loadWorkers: number;
  /** Scoring threads; 0: the JS thread. */
  scoringWorkers: number;
  /** Stops taking batches; those started are finished and written. */
  signal: AbortSignal | undefined;
  /** Only this rank's share of the list (index ≡ rank mod worldSize); undefined: all of it. */
  shard: Shard | undefined;
}

export interface PipelineInput extends PipelineSettings {
  /** The configs, each with its report opened (in `PipelineSettings`' order of prompts). */
  runs: readonly ConfigRun[];
  /** Told of every image written or skipped. */
  progress: ProgressMeter;
}

export interface PipelineOutcome {
  /** The first error, if any: the images started before it are written all the same. */
  failure: { error: unknown } | undefined;
  /** True when `signal` stopped the run (and nothing failed). */
  aborted: boolean;
  /** The dataset's skipped lines and images, and (re-scoring) each config's missing predictions. */
  skipped: SkippedEntry[];
  /** Images/s after the first written batch; null with fewer than two batches. */
  steadyImagesPerSecond: number | null;
  /** Milliseconds the threads' event loops were busy. */
  busyMs: { sampleThreads: number; scoringThreads: number };
}

/** Predicts (or reads back), scores and writes every sample of the list; never throws. */
export async function runPipeline(input: PipelineInput): Promise<PipelineOutcome> {
  const { runs, progress, model, source, toleranceRadius, saveProbabilities, signal } = input;
  const skipped: SkippedEntry[] = [];
  const pending = new Set<Promise<void>>();
  let failure: { error: unknown } | undefined;
  let dataset: Dataset<HeldSample> | undefined;
  // Every image, mask and saved-only prediction held natively, released by its one owner.
  const held = new HeldInputs();
  const loading = new SamplePool(input.loadWorkers, source.decode);
  const scoring = new MetricsPool(input.scoringWorkers);

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

  // One batch is on the device while the previous one's results are handed to scoring, so the
  // device does not wait for the JS thread between batches.
  let previousResolved = performance.now();
  const drawsEveryImage = runs.some((run) => run.writer?.drawsEveryImage);
  const launch = (batch: HeldSample[]) => {
    held.launched(batch);
    const prompts = runs.map((_, c) => batch.map((sample) => sample.prompts[c]!));
    const launched = performance.now();
    const predictions = model
      ? predictBatch(
          model,
          batch.map((sample) => sample.image),
          prompts,
          // Held natively: the scoring threads take the pixels, this thread never copies them.
          { probabilities: input.probabilities, hold: true },
        )
      : settledInOrder(
          runs.map((run) =>
            savedPredictions(run, batch, {
              skipBad: source.skipBad,
              listFile: source.listFile,
              skipped,
            }),
          ),
        );
    // The device has read the images once the predictions are back (unless every image gets a
    // figure: then they go with the ground truths, in hand()).
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
      return { sets, batchMsPerImage: model ? ms / batch.length : 0 };
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

  try {
    const prompts = runs.map((run) => run.config);
    const prepare = { root: source.root, listFile: source.listFile, seed: input.seed };
    dataset = readDataset({
      ...source,
      ...(input.shard ? { shard: input.shard } : {}),
      concurrency: Math.max(4, 2 * input.batchSize),
      load: (entry, index) =>
        held.track(loading.prepare({ ...prepare, entry, index, prompts, hold: true })),
    });
    await launchAhead(
      sameSizeBatches(dataset, input.batchSize, (s) => s.image),
      {
        // A batch not launched is released with the unlaunched samples.
        proceed: () => (recordSkips(), !signal?.aborted && !failure),
        launch,
        settle: hand,
        // The batch on the device is finished and written whatever ended the loop; its own
        // error is dropped: it comes from later in the list than the one that ended the loop.
        abandon: (last) => hand(last),
      },
    );
    recordSkips();
  } catch (error) {
    failure ??= { error };
    recordSkips();
  }

  // Whatever stopped the run, what was started is finished, and every plane released.
  await Promise.all(pending);
  // After a failure, other configs' writes of the last batches may still be under way.
  await Promise.all(runs.map((run) => run.chain.catch(() => undefined)));
  await held.close();
  const busyMs = { sampleThreads: loading.busyMs(), scoringThreads: scoring.busyMs() };
  const steadyImagesPerSecond = progress.steadyRate();
  await Promise.all([scoring.close(), loading.close()]);
  await held.released();
  return {
    failure,
    aborted: !failure && (signal?.aborted ?? false),
    skipped,
    steadyImagesPerSecond,
    busyMs,
  };
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
  return settledInOrder(
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

/**
 * Like Promise.all, but once all have settled, and rejected with the first failure in list order
 * (not in time), so that an error names the first bad file of the list.
 */
async function settledInOrder<T>(promises: ReadonlyArray<Promise<T>>): Promise<T[]> {
  const settled = await Promise.allSettled(promises);
  const failed = settled.find((outcome) => outcome.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((outcome) => (outcome as PromiseFulfilledResult<T>).value);
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

/** Saves a prediction (and its probability map at `bits`) without scoring it (unscored runs). */
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
