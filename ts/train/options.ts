/**
 * The options of a training run: their defaults, the loss and optimizer constants, the checks
 * and the native trainer's options they make.
 */
import { resolve } from 'node:path';
import type { TrainerOptions } from '../binding.js';
import { DEFAULT_AUGMENT, type AugmentOptions } from '../data/augment.js';
import type { LoraStrategy } from '../model/export.js';
import { PRECISION_DTYPE, type Precision } from '../model/load.js';
import type { Device } from '../torch-module.js';
import type { TrainProgress } from './train.js';

/** Defaults of {@link train}, used as they are by the CLI and docs/training.md. */
export const TRAIN_DEFAULTS = {
  trainFile: 'train.txt',
  valFile: 'val.txt',
  epochs: 50,
  batchSize: 4,
  gradientAccumulation: 4,
  learningRate: 1e-4,
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
  learningRate: number;
  weightDecay: number;
  /** Fraction of `totalSteps`. */
  warmup: number;
  totalSteps: number;
  gradientAccumulation: number;
  skeletonLoss: boolean;
  seed: number;
  precision: Precision;
  embeddingCache?: number;
}): TrainerOptions {
  const constants = LOSS_AND_OPTIMIZER;
  return {
    learningRate: run.learningRate,
    minLearningRate: run.learningRate * constants.minLearningRateFraction,
    weightDecay: run.weightDecay,
    betas: constants.betas,
    eps: constants.eps,
    warmupSteps: Math.round(run.warmup * run.totalSteps),
    totalSteps: run.totalSteps,
    gradientAccumulation: run.gradientAccumulation,
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
  gradientAccumulation?: number;
  learningRate?: number;
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

export type ResolvedTrainOptions = ReturnType<typeof resolveTrainOptions>;

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1)
    throw new RangeError(`${name} must be a positive integer, got ${value}`);
  return value;
}

/** {@link TrainOptions} with their defaults, checked. */
export function resolveTrainOptions(options: TrainOptions) {
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
    gradientAccumulation: positiveInteger(
      'gradientAccumulation',
      options.gradientAccumulation ?? d.gradientAccumulation,
    ),
    learningRate: options.learningRate ?? d.learningRate,
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
  if (!(settings.learningRate > 0))
    throw new RangeError(`learningRate must be positive, got ${settings.learningRate}`);
  if (!(settings.warmup >= 0 && settings.warmup < 1))
    throw new RangeError(`warmup must be a fraction in [0, 1), got ${settings.warmup}`);
  if (settings.precision !== null && !Object.hasOwn(PRECISION_DTYPE, settings.precision))
    throw new RangeError(`precision must be 'fp32' or 'bf16', got '${settings.precision}'`);
  if (!Number.isSafeInteger(settings.seed))
    throw new RangeError(`seed must be an integer, got ${settings.seed}`);
  for (const pattern of settings.trainExtra) new RegExp(pattern); // a bad pattern fails here
  return settings;
}
