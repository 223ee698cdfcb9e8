/**
 * LoRA fine-tuning over the native trainer: the data pipeline (prepared ahead of the device),
 * validation each epoch, best/last checkpoints, metrics.jsonl, training curves, early stopping,
 * resume and abort. The loss, optimizer and schedule run in C++ (`createTrainer`).
 */
import { appendFile, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { binding, type NativeTrainer, type StepResult } from '../binding.js';
import { SamplePool } from '../data/sample-pool.js';
import { saveAdapter, trainedParameterNames } from '../model/adapter.js';
import { defaultPrecision, loadModel, type SamModel } from '../model/load.js';
import { runRecord } from '../run-record.js';
import { writeFileAtomic } from '../util/atomic.js';
import { launchAhead } from '../util/launch-ahead.js';
import {
  epochBatches,
  prefetchBatches,
  scanTrainingSet,
  type BatchOptions,
  type TrainingSet,
} from './batches.js';
import { writeTrainingCurves } from './curves.js';
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
  seconds: number;
  /** Whether this epoch set a new best validation IoU (and was saved as best_model). */
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
  const loader = new SamplePool();
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
  const perEpoch = epochBatches(trainingSet.entries, config, 0).length;
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
  const resumed = options.resume ? await readLastCheckpoint(file, settings, model) : null;
  const precision = config.precision ?? defaultPrecision(model.device);
  const trainer = binding().createTrainer(
    module.native,
    nativeTrainerOptions({ ...config, totalSteps, precision }),
  );
  try {
    if (resumed) await restoreOptimizer(file, resumed, trainer);
    return await trainEpochs({
      model,
      loader,
      trainer,
      config,
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
  const { settings, resumed, trained, started, signal, onProgress } = loop;
  const { module } = model;
  let state: LastState;
  if (resumed) {
    state = resumed.state;
  } else {
    await mkdir(join(config.outputDir, 'checkpoints'), { recursive: true });
    await rm(file('metrics'), { force: true });
    state = {
      version: 1,
      settings,
      optimizerSteps: 0,
      epoch: 0,
      batchInEpoch: 0,
      epochSums: emptySums(),
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

  const log = (line: object) => appendFile(file('metrics'), `${JSON.stringify(line)}\n`);
  const saveLast = async () => {
    state.optimizerSteps = trainer.optimizerSteps;
    await saveAdapter(file('lastWeights'), module, {
      tensors: await trainer.weights(),
      trainExtra: config.trainExtra,
      epoch: state.epoch,
      valMetrics: adapterMetrics(state.history.at(-1)?.val),
      optimizerSteps: state.optimizerSteps,
    });
    await trainer.saveState(file('lastOptimizer'));
    // Written last: it is what a resume trusts, and it names the step the other two hold.
    await writeFileAtomic(file('lastState'), JSON.stringify(state, null, 1));
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
  let learningRate = state.history.at(-1)?.learningRate ?? 0;

  for (let epoch = state.epoch; epoch < config.epochs && !aborted && !stoppedEarly; epoch++) {
    const epochStarted = performance.now();
    const batches = epochBatches(trainingSet.entries, config, epoch);
    // One step is queued ahead of the one being read back, so the device never waits for the
    // host between steps (the trainer runs them in call order).
    const settle = async ({ result: pending, index, images }: QueuedStep) => {
      const result = await pending;
      const sums = state.epochSums;
      sums.loss += result.loss;
      sums.dice += result.dice;
      sums.focal += result.focal;
      sums.skeleton += result.skeleton;
      sums.batches++;
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
        // Abort only between optimizer steps: the accumulated gradients are not saved.
        proceed: ({ index }) => !(signal?.aborted && index % config.gradientAccumulation === 0),
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
      onBatch: (done) =>
        onProgress?.({
          phase: 'validate',
          epoch: epoch + 1,
          epochs: config.epochs,
          done,
        }),
    });
    if (val === null || signal?.aborted) {
      // The epoch's training is kept; a resume validates it again.
      aborted = true;
      break;
    }
    const sums = state.epochSums;
    const improved = state.bestValIou === null || val.iou > state.bestValIou;
    const record: EpochRecord = {
      epoch: epoch + 1,
      trainLoss: sums.loss / sums.batches,
      trainDice: sums.dice / sums.batches,
      trainFocal: sums.focal / sums.batches,
      trainSkeleton: sums.skeleton / sums.batches,
      val,
      learningRate,
      optimizerSteps: trainer.optimizerSteps,
      seconds: (performance.now() - epochStarted) / 1000,
      best: improved,
    };
    state.history.push(record);
    state.epoch = epoch + 1;
    state.batchInEpoch = 0;
    state.epochSums = emptySums();
    if (improved) {
      state.bestValIou = val.iou;
      state.bestEpoch = epoch + 1;
      state.epochsWithoutImprovement = 0;
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
    await writeTrainingCurves(file('curves'), state.history, state.bestEpoch);
    onProgress?.({ phase: 'epoch', epochs: config.epochs, record });
    stoppedEarly =
      config.patience !== null &&
      state.epochsWithoutImprovement >= config.patience &&
      epoch + 1 < config.epochs;
  }
  if (aborted) await saveLast();

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
