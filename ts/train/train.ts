/**
 * LoRA fine-tuning over the native trainer: the data pipeline (prepared ahead of the device),
 * validation each epoch, best/last checkpoints, metrics.jsonl, training curves, early stopping,
 * resume and abort. The loss, optimizer and schedule run in C++ (`createTrainer`).
 */
import { appendFile, mkdir, readFile, rm } from 'node:fs/promises';
import { RUN_JSON, runRecord } from '../run-record.js';
import { join, resolve } from 'node:path';
import { binding, type NativeTrainer, type StepResult, type TrainerOptions } from '../binding.js';
import {
  defaultPrecision,
  loadModel,
  PRECISION_DTYPE,
  type Precision,
  type SamModel,
} from '../model/load.js';
import type { LoraStrategy } from '../model/export.js';
import type { Device } from '../torch-module.js';
import { writeFileAtomic } from '../util/atomic.js';
import { DEFAULT_AUGMENT, type AugmentOptions } from './augment.js';
import { applyAdapter, saveAdapter, trainedParameterNames } from './adapter.js';
import { epochBatches, prefetchBatches, scanTrainingSet, type BatchOptions } from './batches.js';
import { writeTrainingCurves } from './curves.js';
import { validate, type ValidationMetrics } from './validate.js';
import { SamplePool } from '../data/sample-pool.js';

/** Defaults of {@link train}, used as they are by the CLI and docs/training.md. */
export const TRAIN_DEFAULTS = {
  trainFile: 'train.txt',
  valFile: 'val.txt',
  epochs: 50,
  batchSize: 4,
  gradAccum: 4,
  lr: 1e-4,
  weightDecay: 0.01,
  /** Fraction of the run's optimizer steps spent in linear warm-up. */
  warmup: 0.05,
  skeletonLoss: false,
  augment: true,
  patience: 10,
  outputDir: 'results/lora_training',
  seed: 42,
  /** Standard deviation of the box-corner noise, as a fraction of the box side (SAM: 0.1). */
  boxJitter: 0.1,
  /** A `step` line in metrics.jsonl every this many optimizer steps. */
  logEverySteps: 10,
} as const;

/**
 * The loss and optimizer constants: Dice + 20 × Focal(α 0.25, γ 2) as SAM's own training weighs
 * them (focal is a per-pixel mean, an order of magnitude below Dice), + 0.5 × soft-clDice with
 * `skeletonLoss`; AdamW betas/eps of PyTorch; clipping at norm 1; cosine down to 1% of the rate.
 */
export const LOSS_AND_OPTIMIZER = {
  diceWeight: 1,
  focalWeight: 20,
  focalAlpha: 0.25,
  focalGamma: 2,
  skeletonWeight: 0.5,
  betas: [0.9, 0.999] as [number, number],
  eps: 1e-8,
  maxGradNorm: 1,
  minLearningRateFraction: 0.01,
} as const;

/**
 * The native trainer's options for a run of `totalSteps` optimizer steps: {@link
 * LOSS_AND_OPTIMIZER} with the run's rate, decay, warm-up, accumulation, loss choice and seed
 * (train() and the training benchmark both use it).
 */
export function nativeTrainerOptions(run: {
  lr: number;
  weightDecay: number;
  /** Fraction of `totalSteps`. */
  warmup: number;
  totalSteps: number;
  gradAccum: number;
  skeletonLoss: boolean;
  seed: number;
  precision: Precision;
  embeddingCache?: number;
}): TrainerOptions {
  const constants = LOSS_AND_OPTIMIZER;
  return {
    learningRate: run.lr,
    minLearningRate: run.lr * constants.minLearningRateFraction,
    weightDecay: run.weightDecay,
    betas: constants.betas,
    eps: constants.eps,
    warmupSteps: Math.round(run.warmup * run.totalSteps),
    totalSteps: run.totalSteps,
    gradientAccumulation: run.gradAccum,
    maxGradNorm: constants.maxGradNorm,
    diceWeight: constants.diceWeight,
    focalWeight: constants.focalWeight,
    focalAlpha: constants.focalAlpha,
    focalGamma: constants.focalGamma,
    skeletonWeight: run.skeletonLoss ? constants.skeletonWeight : 0,
    precision: PRECISION_DTYPE[run.precision],
    seed: run.seed,
    cacheLimit: run.embeddingCache ?? 0,
  };
}

/** The files of a training run, under `<outputDir>/`. */
export const TRAINING_FILES = {
  best: 'checkpoints/best_model.safetensors',
  lastWeights: 'checkpoints/last.safetensors',
  lastOptimizer: 'checkpoints/last.optimizer.pt',
  lastState: 'checkpoints/last.json',
  /** The run's record (ts/run-record.ts), rewritten when a run starts or resumes. */
  run: `checkpoints/${RUN_JSON}`,
  metrics: 'metrics.jsonl',
  curves: 'training_curves.png',
} as const;

export interface TrainOptions {
  /** An exported model (TorchScript; its LoRA adapters were injected at export). */
  model: string;
  device?: Device;
  dataRoot: string;
  /** Relative to `dataRoot` unless absolute. */
  trainFile?: string;
  valFile?: string;
  /** Must equal the model's LoRA strategy when given (it is fixed at export). */
  strategy?: LoraStrategy;
  epochs?: number;
  /** Images per micro-batch. */
  batchSize?: number;
  /** Micro-batches per optimizer step. */
  gradAccum?: number;
  lr?: number;
  weightDecay?: number;
  /** Fraction of the optimizer steps spent in linear warm-up. */
  warmup?: number;
  /** Adds the soft-clDice skeleton loss. */
  skeletonLoss?: boolean;
  /** Flips, quarter turns, brightness/contrast: true for {@link DEFAULT_AUGMENT}, or custom. */
  augment?: boolean | AugmentOptions;
  /** Stop after `patience` epochs without a better validation IoU; false: never. */
  earlyStopping?: { patience: number } | false;
  outputDir?: string;
  /** Continue from `<outputDir>/checkpoints/last.*`. */
  resume?: boolean;
  seed?: number;
  /**
   * Regular expressions of parameter names trained in full besides the LoRA factors (e.g.
   * `^sam_mask_decoder\.` to train the mask decoder); they are saved in the adapter too.
   */
  trainExtra?: string[];
  boxJitter?: number;
  logEverySteps?: number;
  /**
   * Images whose encoder outputs the trainer keeps and reuses across epochs (0, the default: no
   * cache). Needs `augment: false` (a cached image must have the exact same pixels each time), and
   * only takes effect when no image-encoder parameter trains (strategy A without encoder extras).
   * Costs device memory per image: about 16 MiB at 1024 px in fp32 (8 MiB in bf16), 256 KiB for
   * the `test` model.
   */
  embeddingCache?: number;
  /**
   * What the model computes in (default: {@link defaultPrecision} of the device). With `bf16` the
   * frozen weights, activations and LoRA matmuls are bf16 while the optimizer updates fp32 master
   * copies of the trained weights; adapters are saved from the masters.
   */
  precision?: Precision;
  onProgress?: (progress: TrainProgress) => void;
  /** Stops at the next optimizer-step boundary (or during validation), saving `last`. */
  signal?: AbortSignal;
}

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

/** The settings a resumed run must share with the run it continues. */
type RunSettings = ReturnType<typeof runSettings>;
type ResolvedOptions = ReturnType<typeof resolvedOptions>;

/** `last.json`: where the run stands. */
interface LastState {
  version: 1;
  settings: RunSettings;
  optimizerSteps: number;
  /** Epochs finished. */
  epoch: number;
  /** Micro-batches done in the unfinished epoch (a multiple of gradAccum). */
  batchInEpoch: number;
  epochSums: LossSums;
  bestValIou: number | null;
  bestEpoch: number | null;
  epochsWithoutImprovement: number;
  history: EpochRecord[];
}

interface LossSums {
  loss: number;
  dice: number;
  focal: number;
  skeleton: number;
  batches: number;
}

const emptySums = (): LossSums => ({ loss: 0, dice: 0, focal: 0, skeleton: 0, batches: 0 });

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1)
    throw new RangeError(`${name} must be a positive integer, got ${value}`);
  return value;
}

function resolvedOptions(options: TrainOptions) {
  const d = TRAIN_DEFAULTS;
  const augment =
    options.augment === false
      ? null
      : options.augment === true || options.augment === undefined
        ? DEFAULT_AUGMENT
        : options.augment;
  const settings = {
    dataRoot: resolve(options.dataRoot),
    trainFile: options.trainFile ?? d.trainFile,
    valFile: options.valFile ?? d.valFile,
    epochs: positiveInteger('epochs', options.epochs ?? d.epochs),
    batchSize: positiveInteger('batchSize', options.batchSize ?? d.batchSize),
    gradAccum: positiveInteger('gradAccum', options.gradAccum ?? d.gradAccum),
    lr: options.lr ?? d.lr,
    weightDecay: options.weightDecay ?? d.weightDecay,
    warmup: options.warmup ?? d.warmup,
    skeletonLoss: options.skeletonLoss ?? d.skeletonLoss,
    augment,
    patience:
      options.earlyStopping === false
        ? null
        : positiveInteger('patience', options.earlyStopping?.patience ?? d.patience),
    outputDir: resolve(options.outputDir ?? d.outputDir),
    seed: options.seed ?? d.seed,
    trainExtra: options.trainExtra ?? [],
    boxJitter: options.boxJitter ?? d.boxJitter,
    logEverySteps: positiveInteger('logEverySteps', options.logEverySteps ?? d.logEverySteps),
    embeddingCache: options.embeddingCache ?? 0,
    precision: options.precision ?? null,
  };
  if (!Number.isSafeInteger(settings.embeddingCache) || settings.embeddingCache < 0)
    throw new RangeError(
      `embeddingCache must be a non-negative integer, got ${settings.embeddingCache}`,
    );
  if (settings.embeddingCache > 0 && settings.augment)
    throw new RangeError(
      'embeddingCache needs augment: false (--no-augment): augmentation changes the pixels a cached image stands for',
    );
  if (!(settings.lr > 0)) throw new RangeError(`lr must be positive, got ${settings.lr}`);
  if (!(settings.warmup >= 0 && settings.warmup < 1))
    throw new RangeError(`warmup must be a fraction in [0, 1), got ${settings.warmup}`);
  if (settings.precision !== null && !Object.hasOwn(PRECISION_DTYPE, settings.precision))
    throw new RangeError(`precision must be 'fp32' or 'bf16', got '${settings.precision}'`);
  if (!Number.isSafeInteger(settings.seed))
    throw new RangeError(`seed must be an integer, got ${settings.seed}`);
  for (const pattern of settings.trainExtra) new RegExp(pattern); // a bad pattern fails here
  return settings;
}

/** The subset of settings (and the model) that must not change across a resume. */
function runSettings(config: ResolvedOptions, model: SamModel) {
  return {
    model: model.module.path,
    strategy: model.metadata.lora_strategy,
    trainFile: config.trainFile,
    epochs: config.epochs,
    batchSize: config.batchSize,
    gradAccum: config.gradAccum,
    lr: config.lr,
    weightDecay: config.weightDecay,
    warmup: config.warmup,
    skeletonLoss: config.skeletonLoss,
    augment: config.augment,
    seed: config.seed,
    trainExtra: config.trainExtra,
    boxJitter: config.boxJitter,
  };
}

/**
 * Fine-tunes the model's LoRA adapters (and `trainExtra` parameters) on the training list,
 * validating on the validation list after every epoch. Writes under `outputDir`: see
 * {@link TRAINING_FILES} and docs/training.md.
 */
export async function train(options: TrainOptions): Promise<TrainResult> {
  const started = performance.now();
  const config = resolvedOptions(options);
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
  config: ResolvedOptions,
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
  module.setRequiresGrad(/./, false);
  module.native.setRequiresGrad(trained, true);

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
  const perEpoch = epochBatches(
    trainingSet.entries,
    { ...config, gradientAccumulation: config.gradAccum },
    0,
  ).length;
  if (perEpoch === 0)
    throw new Error(
      `${config.trainFile} has ${trainingSet.entries.length} image(s) with cracks: ` +
        `${Math.ceil(trainingSet.entries.length / config.batchSize)} batch(es) of ${config.batchSize}, ` +
        `fewer than the ${config.gradAccum} micro-batches of one optimizer step (lower gradAccum or batchSize)`,
    );
  const totalSteps = (config.epochs * perEpoch) / config.gradAccum;
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
    return await trainLoop();
  } finally {
    // Frees the optimizer state and cached embeddings now, on success, error or abort alike.
    trainer.dispose();
  }

  async function trainLoop(): Promise<TrainResult> {
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
          settings: { ...config, strategy: metadata.lora_strategy, resumed: resumed !== null },
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
      const batches = epochBatches(
        trainingSet.entries,
        { ...config, gradientAccumulation: config.gradAccum },
        epoch,
      );
      // One step is queued ahead of the one being read back, so the device never waits for the
      // host between steps (the trainer runs them in call order).
      let inFlight: { result: Promise<StepResult>; index: number; images: number } | null = null;
      const settle = async ({ result: pending, index, images }: NonNullable<typeof inFlight>) => {
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
        options.onProgress?.({
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
      try {
        for await (const { index, batch, images } of prefetchBatches(
          batches,
          batchOptions,
          epoch,
          state.batchInEpoch,
        )) {
          // Abort only between optimizer steps: the accumulated gradients are not saved.
          if (signal?.aborted && index % config.gradAccum === 0) {
            aborted = true;
            break;
          }
          const queued = { result: trainer.step(batch), index, images };
          if (inFlight) await settle(inFlight);
          inFlight = queued;
        }
      } catch (err) {
        // The queued step ends before the error leaves (and the trainer is disposed).
        await inFlight?.result.catch(() => undefined);
        throw err;
      }
      if (inFlight) await settle(inFlight);
      if (aborted) break;

      const val = await validate({
        model,
        loader,
        dataRoot: config.dataRoot,
        listFile: config.valFile,
        batchSize: config.batchSize,
        ...(signal ? { signal } : {}),
        onBatch: (done) =>
          options.onProgress?.({
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
      options.onProgress?.({ phase: 'epoch', epochs: config.epochs, record });
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
}

/** The validation metrics an adapter records. */
function adapterMetrics(val: ValidationMetrics | undefined): Record<string, number> | null {
  return val ? { iou: val.iou, dice: val.dice, f1: val.f1 } : null;
}

function mean(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);
}

/** The last checkpoint of the run being resumed, its weights already in the model. */
interface LastCheckpoint {
  state: LastState;
  adapterSteps: number;
}

/** Reads `last.json`, checks it belongs to this run and loads `last.safetensors` into the model. */
async function readLastCheckpoint(
  file: (name: keyof typeof TRAINING_FILES) => string,
  settings: RunSettings,
  model: SamModel,
): Promise<LastCheckpoint> {
  const statePath = file('lastState');
  let state: LastState;
  try {
    state = JSON.parse(await readFile(statePath, 'utf8')) as LastState;
  } catch (err) {
    throw new Error(`cannot resume: ${statePath}: ${(err as Error).message}`);
  }
  const changed = (Object.keys(settings) as Array<keyof RunSettings>).filter(
    (key) => JSON.stringify(settings[key]) !== JSON.stringify(state.settings?.[key]),
  );
  if (changed.length > 0)
    throw new Error(
      `cannot resume from ${statePath}: ${changed
        .map(
          (key) =>
            `${key} was ${JSON.stringify(state.settings?.[key])}, now ${JSON.stringify(settings[key])}`,
        )
        .join('; ')}`,
    );
  const adapter = await applyAdapter(model.module, file('lastWeights'));
  return { state, adapterSteps: Number(adapter.metadata.optimizer_steps) };
}

/** Loads `last.optimizer.pt` into the trainer; the three files must name the same step. */
async function restoreOptimizer(
  file: (name: keyof typeof TRAINING_FILES) => string,
  resumed: LastCheckpoint,
  trainer: NativeTrainer,
): Promise<void> {
  await trainer.loadState(file('lastOptimizer'));
  const steps = [resumed.adapterSteps, trainer.optimizerSteps, resumed.state.optimizerSteps];
  if (new Set(steps).size !== 1)
    throw new Error(
      `cannot resume: the last checkpoint's files disagree on the optimizer step ` +
        `(weights ${steps[0]}, optimizer ${steps[1]}, last.json ${steps[2]})`,
    );
}
