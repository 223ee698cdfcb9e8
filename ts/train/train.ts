/**
 * LoRA fine-tuning over the native trainer: the data pipeline (prepared ahead of the device),
 * validation each epoch, best/last checkpoints, metrics.jsonl, training curves, early stopping,
 * resume and abort. The loss, optimizer and schedule run in C++ (`createTrainer`).
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { binding, type NativeTrainer, type StepResult } from '../binding.js';
import { SamplePool } from '../data/sample-pool.js';
import { saveAdapter, trainedParameterNames } from '../model/adapter.js';
import { defaultPrecision, loadModel, type SamModel } from '../model/load.js';
import { runRecord } from '../run-record.js';
import { removeOthersTemporaries, writeFileAtomic } from '../util/atomic.js';
import { launchAhead } from '../util/launch-ahead.js';
import {
  epochBatches,
  prefetchBatches,
  scanTrainingSet,
  type BatchOptions,
  type TrainingSet,
} from './batches.js';
import { writeTrainingCurves } from './curves.js';
import { saveLastCheckpoint } from './last-checkpoint.js';
import { appendMetricsRecord, trimMetricsLog } from './metrics-log.js';
import {
  nativeTrainerOptions,
  resolveTrainOptions,
  type ResolvedTrainOptions,
  type TrainOptions,
} from './options.js';
import {
  emptySums,
  readLastCheckpoint,
  restoreOptimizer,
  runSettings,
  TRAINING_FILES,
  type LastCheckpoint,
  type LastState,
  type RunSettings,
} from './resume.js';
import { validate, type ValidationMetrics } from './validate.js';
import type { ProcessGroup } from '../distributed/group.js';
import type { Shard } from '../distributed/sampler.js';
import {
  agreeToStop,
  GRADIENT_BUCKET_BYTES,
  resumedBatchInEpoch,
  sumAcrossRanks,
} from '../distributed/training.js';

/** One finished epoch, as in metrics.jsonl. */
export interface EpochRecord {
  /** 1-based. */
  epoch: number;
  trainLoss: number;
  trainDice: number;
  trainFocal: number;
  trainSkeleton: number;
  val: ValidationMetrics;
  learningRate: number;
  optimizerSteps: number;
  /**
   * Optimizer steps of the epoch skipped for a non-finite loss or gradient; the losses above
   * leave out the non-finite micro-batch losses.
   */
  skippedSteps: number;
  seconds: number;
  /**
   * Whether this epoch set a new best validation IoU (and was saved as best_model); an epoch
   * whose training loss or validation IoU is not finite never does.
   */
  best: boolean;
}

export type TrainProgress =
  | {
      phase: 'train';
      /** 1-based. */
      epoch: number;
      epochs: number;
      /** Micro-batches done in this epoch. */
      batch: number;
      batches: number;
      optimizerSteps: number;
      totalSteps: number;
      loss: number;
      learningRate: number;
      imagesPerSecond: number;
      /** Training time left at the current rate (validation excluded). */
      etaSeconds: number;
    }
  | { phase: 'validate'; epoch: number; epochs: number; done: number }
  | { phase: 'epoch'; epochs: number; record: EpochRecord };

export interface TrainResult {
  outputDir: string;
  /** Null when no epoch finished. */
  bestModel: string | null;
  bestEpoch: number | null;
  bestValIou: number | null;
  /** Every finished epoch of the run, resumed ones included. */
  history: EpochRecord[];
  stoppedEarly: boolean;
  aborted: boolean;
  optimizerSteps: number;
  /** What trained: parameter names (LoRA factors and `trainExtra` matches). */
  trainedParameters: string[];
  /** Training images without a crack, left out (they get no box prompt). */
  skippedWithoutCrack: number;
  /** Images whose embeddings the trainer held at the end (0 without `embeddingCache`). */
  cachedImages: number;
  seconds: number;
}

/** A micro-batch handed to the trainer, its step result to come. */
interface QueuedStep {
  result: Promise<StepResult>;
  index: number;
  images: number;
}

/**
 * Fine-tunes the model's LoRA adapters (and `trainExtra` parameters) on the training list,
 * validating on the validation list after every epoch. Writes under `outputDir`: see
 * {@link TRAINING_FILES} and docs/training.md.
 */
export async function train(options: TrainOptions): Promise<TrainResult> {
  const started = performance.now();
  const config = resolveTrainOptions(options);
  const model = await loadModel({
    path: options.model,
    ...(options.device ? { device: options.device } : {}),
    // The trainer casts it to the run's precision after taking fp32 masters of what trains.
    precision: 'fp32',
  });
  // Threads reading, decoding and augmenting samples, for the scan, the batches and validation.
  const loader = new SamplePool(undefined, options.decode);
  try {
    return await run(model, loader, config, options, started);
  } finally {
    model.module.dispose();
    await loader.close();
  }
}

async function run(
  model: SamModel,
  loader: SamplePool,
  config: ResolvedTrainOptions,
  options: TrainOptions,
  started: number,
): Promise<TrainResult> {
  const { module, metadata } = model;
  if (options.strategy !== undefined && options.strategy !== metadata.lora_strategy)
    throw new Error(
      `LoRA strategy ${options.strategy} was asked for, but ${module.path} was exported with ` +
        `strategy ${metadata.lora_strategy} (adapters are injected at export): export the model ` +
        `with --lora ${options.strategy}, or leave the strategy out`,
    );
  const trained = trainedParameterNames(module, config.trainExtra);
  if (trained.length === 0)
    throw new Error(
      `${module.path} has nothing to train: LoRA strategy '${metadata.lora_strategy}' and no trainExtra patterns`,
    );
  await module.setRequiresGrad(/./, false);
  await module.native.setRequiresGrad(trained, true);

  const signal = options.signal;
  // Both lists are read and every sample decoded before training, so a wrong list file or a bad
  // image fails now rather than after an epoch.
  const trainingSet = await scanTrainingSet(loader, config.dataRoot, config.trainFile, signal);
  const validationSet = await scanTrainingSet(loader, config.dataRoot, config.valFile, signal);
  if (signal?.aborted)
    // Stopped while scanning: no step was taken and nothing is written (a resume's `last` stays).
    return {
      outputDir: config.outputDir,
      bestModel: null,
      bestEpoch: null,
      bestValIou: null,
      history: [],
      stoppedEarly: false,
      aborted: true,
      optimizerSteps: 0,
      trainedParameters: trained,
      skippedWithoutCrack: trainingSet.withoutCrack,
      cachedImages: 0,
      seconds: (performance.now() - started) / 1000,
    };
  if (validationSet.entries.length + validationSet.withoutCrack === 0)
    throw new Error(`validation list ${config.valFile} has no images`);
  const group = options.group;
  const shard = group ? { rank: group.rank, worldSize: group.worldSize } : undefined;
  // The epochs' batches: with a group, this rank's share of each epoch's order.
  const plan = { ...config, ...(shard ? { shard } : {}) };
  const perEpoch = epochBatches(trainingSet.entries, plan, 0).length;
  if (perEpoch === 0)
    throw new Error(
      `${config.trainFile} has ${trainingSet.entries.length} image(s) with cracks: ` +
        `${Math.ceil(trainingSet.entries.length / config.batchSize)} batch(es) of ${config.batchSize}, ` +
        `fewer than the ${config.gradientAccumulation} micro-batches of one optimizer step (lower gradientAccumulation or batchSize)`,
    );
  const totalSteps = (config.epochs * perEpoch) / config.gradientAccumulation;
  const file = (name: keyof typeof TRAINING_FILES) => join(config.outputDir, TRAINING_FILES[name]);
  const settings = runSettings(config, model);
  // The weights are restored before the trainer exists: it takes its fp32 masters from them.
  const resumed = options.resume
    ? await readLastCheckpoint(file('checkpoints'), settings, model)
    : null;
  const precision = config.precision ?? defaultPrecision(model.device);
  const trainer = binding().createTrainer(
    module.native,
    nativeTrainerOptions({ ...config, totalSteps, precision }),
  );
  try {
    if (resumed) await restoreOptimizer(resumed, trainer);
    if (group) trainer.distribute(group.native, GRADIENT_BUCKET_BYTES);
    return await trainEpochs({
      model,
      loader,
      trainer,
      config,
      plan,
      group,
      shard,
      trainingSet,
      perEpoch,
      totalSteps,
      file,
      settings,
      resumed,
      trained,
      started,
      signal,
      onProgress: options.onProgress,
    });
  } finally {
    // Frees the optimizer state and cached embeddings now, on success, error or abort alike.
    trainer.dispose();
  }
}

/** Everything the epochs need, set up by {@link train}. */
interface EpochLoop {
  model: SamModel;
  loader: SamplePool;
  trainer: NativeTrainer;
  config: ResolvedTrainOptions;
  plan: ResolvedTrainOptions & { shard?: Shard };
  group: ProcessGroup | undefined;
  shard: Shard | undefined;
  trainingSet: TrainingSet;
  /** Micro-batches per epoch. */
  perEpoch: number;
  totalSteps: number;
  file: (name: keyof typeof TRAINING_FILES) => string;
  settings: RunSettings;
  resumed: LastCheckpoint | null;
  trained: string[];
  started: number;
  signal: AbortSignal | undefined;
  onProgress: TrainOptions['onProgress'];
}

/**
 * The epochs, from a fresh start or where `resumed` stands: steps, validation, best and last
 * checkpoints, metrics.jsonl and curves, until the last epoch, early stopping or an abort.
 */
async function trainEpochs(loop: EpochLoop): Promise<TrainResult> {
  const { model, loader, trainer, config, trainingSet, perEpoch, totalSteps, file } = loop;
  const { settings, resumed, trained, started, signal, onProgress, plan, group, shard } = loop;
  const { module } = model;
  // Only one process writes the run's files.
  const writes = !group || group.rank === 0;
  let state: LastState;
  // What killed runs left half-written is of no use.
  if (writes)
    for (const folder of [config.outputDir, file('checkpoints')])
      await removeOthersTemporaries(folder);
  if (resumed) {
    state = resumed.state;
    state.batchInEpoch = resumedBatchInEpoch(state, trainingSet.entries, plan, shard);
    state.worldSize = shard?.worldSize ?? 1;
    // The saved sums are all ranks' together: rank 0 carries them on, the others add theirs.
    if (!writes) state.epochSums = emptySums();
    // What a stopped run logged after its last save is logged again from here.
    if (writes) await trimMetricsLog(file('metrics'), state);
  } else {
    if (writes) {
      await mkdir(join(config.outputDir, 'checkpoints'), { recursive: true });
      await rm(file('metrics'), { force: true });
    }
    state = {
      version: 2,
      generation: 0,
      settings,
      optimizerSteps: 0,
      epoch: 0,
      batchInEpoch: 0,
      worldSize: shard?.worldSize ?? 1,
      epochSums: emptySums(),
      epochSkippedSteps: 0,
      bestValIou: null,
      bestEpoch: null,
      epochsWithoutImprovement: 0,
      history: [],
    };
  }
  await writeFileAtomic(
    file('run'),
    JSON.stringify(
      await runRecord({
        command: 'train',
        settings: { ...config, strategy: model.metadata.lora_strategy, resumed: resumed !== null },
        model: module.path,
        device: model.device,
      }),
      null,
      2,
    ) + '\n',
  );

  const log = async (record: object) => {
    if (writes) await appendMetricsRecord(file('metrics'), record);
  };
  const saveLast = async () => {
    state.optimizerSteps = trainer.optimizerSteps;
    if (!writes) return;
    const tensors = await trainer.weights();
    const optimizerState = await trainer.stateBytes();
    await saveLastCheckpoint(
      file('checkpoints'),
      state,
      (path) =>
        saveAdapter(path, module, {
          tensors,
          trainExtra: config.trainExtra,
          epoch: state.epoch,
          valMetrics: adapterMetrics(state.history.at(-1)?.val),
          optimizerSteps: state.optimizerSteps,
        }),
      optimizerState,
    );
  };

  const batchOptions: BatchOptions = {
    loader,
    root: config.dataRoot,
    listFile: config.trainFile,
    batchSize: config.batchSize,
    imageSize: model.imageSize,
    augment: config.augment,
    boxJitter: config.boxJitter,
    seed: config.seed,
    cacheKeys: config.embeddingCache > 0,
  };
  const throughput = { time: performance.now(), batches: 0, images: 0 };
  let stoppedEarly = false;
  let aborted = false;
  let sinceLastLog: StepResult[] = [];
  let skippedInARow = 0;
  let learningRate = state.history.at(-1)?.learningRate ?? 0;

  for (let epoch = state.epoch; epoch < config.epochs && !aborted && !stoppedEarly; epoch++) {
    const epochStarted = performance.now();
    const batches = epochBatches(trainingSet.entries, plan, epoch);
    // One step is queued ahead of the one being read back, so the device never waits for the
    // host between steps (the trainer runs them in call order).
    const settle = async ({ result: pending, index, images }: QueuedStep) => {
      const result = await pending;
      if (result.skipped) {
        state.epochSkippedSteps++;
        if (++skippedInARow >= config.maxNonFiniteSteps)
          throw new Error(
            `training diverged in epoch ${epoch + 1}: ${skippedInARow} optimizer steps in a row ` +
              `had a non-finite loss or gradient (last loss ${result.loss}, gradient norm ` +
              `${result.gradNorm}); they were skipped, so the weights and checkpoints are those ` +
              `of step ${result.optimizerSteps}. Lower the learning rate (${config.learningRate}), ` +
              `or allow more skipped steps in a row (maxNonFiniteSteps ${config.maxNonFiniteSteps})`,
          );
      } else if (result.stepped) {
        skippedInARow = 0;
      }
      const sums = state.epochSums;
      if ([result.loss, result.dice, result.focal, result.skeleton].every(Number.isFinite)) {
        sums.loss += result.loss;
        sums.dice += result.dice;
        sums.focal += result.focal;
        sums.skeleton += result.skeleton;
        sums.batches++;
      }
      state.batchInEpoch = index + 1;
      throughput.batches++;
      throughput.images += images;
      sinceLastLog.push(result);
      learningRate = result.learningRate;
      if (result.stepped && result.optimizerSteps % config.logEverySteps === 0) {
        await log({
          type: 'step',
          epoch: epoch + 1,
          step: result.optimizerSteps,
          loss: mean(sinceLastLog.map((r) => r.loss)),
          dice: mean(sinceLastLog.map((r) => r.dice)),
          focal: mean(sinceLastLog.map((r) => r.focal)),
          skeleton: mean(sinceLastLog.map((r) => r.skeleton)),
          learningRate: result.learningRate,
          gradNorm: result.gradNorm,
        });
        sinceLastLog = [];
      }
      const seconds = (performance.now() - throughput.time) / 1000;
      const remaining = (config.epochs - epoch) * perEpoch - (index + 1);
      onProgress?.({
        phase: 'train',
        epoch: epoch + 1,
        epochs: config.epochs,
        batch: index + 1,
        batches: batches.length,
        optimizerSteps: result.optimizerSteps,
        totalSteps,
        loss: result.loss,
        learningRate: result.learningRate,
        imagesPerSecond: throughput.images / seconds,
        etaSeconds: (remaining * seconds) / throughput.batches,
      });
    };
    const loop = await launchAhead(
      prefetchBatches(batches, batchOptions, epoch, state.batchInEpoch),
      {
        // Abort only between optimizer steps: the accumulated gradients are not saved. With a
        // group, all ranks stop after the same step, once any was told to.
        proceed: async ({ index }) =>
          index % config.gradientAccumulation !== 0 || !(await agreeToStop(group, signal)),
        launch: ({ index, batch, images }): QueuedStep => {
          const result = trainer.step(batch);
          result.catch(() => undefined); // awaited in settle(); never unhandled meanwhile
          return { result, index, images };
        },
        settle,
        // The queued step ends before the error leaves (and the trainer is disposed).
        abandon: (queued) => queued.result,
      },
    );
    aborted = loop.stopped;
    if (aborted) break;

    const val = await validate({
      model,
      loader,
      dataRoot: config.dataRoot,
      listFile: config.valFile,
      batchSize: config.batchSize,
      ...(signal ? { signal } : {}),
      ...(group ? { group } : {}),
      onBatch: (done) =>
        onProgress?.({
          phase: 'validate',
          epoch: epoch + 1,
          epochs: config.epochs,
          done,
        }),
    });
    // (with a group, validate() is null on every rank once any rank was stopped)
    if (val === null || (!group && signal?.aborted)) {
      // The epoch's training is kept; a resume validates it again.
      aborted = true;
      break;
    }
    const sums = group ? await sumAcrossRanks(group, state.epochSums) : state.epochSums;
    const trainLoss = sums.loss / sums.batches;
    const improved =
      Number.isFinite(trainLoss) &&
      Number.isFinite(val.iou) &&
      (state.bestValIou === null || val.iou > state.bestValIou);
    const record: EpochRecord = {
      epoch: epoch + 1,
      trainLoss,
      trainDice: sums.dice / sums.batches,
      trainFocal: sums.focal / sums.batches,
      trainSkeleton: sums.skeleton / sums.batches,
      val,
      learningRate,
      optimizerSteps: trainer.optimizerSteps,
      skippedSteps: state.epochSkippedSteps,
      seconds: (performance.now() - epochStarted) / 1000,
      best: improved,
    };
    state.history.push(record);
    state.epoch = epoch + 1;
    state.batchInEpoch = 0;
    state.epochSums = emptySums();
    state.epochSkippedSteps = 0;
    if (improved) {
      state.bestValIou = val.iou;
      state.bestEpoch = epoch + 1;
      state.epochsWithoutImprovement = 0;
      if (writes)
        await saveAdapter(file('best'), module, {
          tensors: await trainer.weights(),
          trainExtra: config.trainExtra,
          epoch: epoch + 1,
          valMetrics: adapterMetrics(val),
        });
    } else {
      state.epochsWithoutImprovement++;
    }
    await log({ type: 'epoch', ...record });
    await saveLast();
    if (writes) await writeTrainingCurves(file('curves'), state.history, state.bestEpoch);
    onProgress?.({ phase: 'epoch', epochs: config.epochs, record });
    stoppedEarly =
      config.patience !== null &&
      state.epochsWithoutImprovement >= config.patience &&
      epoch + 1 < config.epochs;
  }
  if (aborted) {
    if (group) state.epochSums = await sumAcrossRanks(group, state.epochSums);
    await saveLast();
  }

  return {
    outputDir: config.outputDir,
    bestModel: state.bestEpoch === null ? null : file('best'),
    bestEpoch: state.bestEpoch,
    bestValIou: state.bestValIou,
    history: state.history,
    stoppedEarly,
    aborted,
    optimizerSteps: trainer.optimizerSteps,
    trainedParameters: trained,
    skippedWithoutCrack: trainingSet.withoutCrack,
    cachedImages: trainer.cachedImages,
    seconds: (performance.now() - started) / 1000,
  };
}

/** The validation metrics an adapter records. */
function adapterMetrics(val: ValidationMetrics | undefined): Record<string, number> | null {
  return val ? { iou: val.iou, dice: val.dice, f1: val.f1 } : null;
}

function mean(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);
}
