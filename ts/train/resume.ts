/**
 * The files of a training run and resuming from them: `last.json` (where the run stands, written
 * last), the adapter and the optimizer state of the set it names (ts/train/last-checkpoint.ts),
 * and the settings a resume must share.
 */
import { join } from 'node:path';
import type { NativeTrainer } from '../binding.js';
import { applyAdapter } from '../model/adapter.js';
import type { SamModel } from '../model/load.js';
import { RUN_JSON } from '../run-record.js';
import type { ResolvedTrainOptions } from './options.js';
import {
  readLastState,
  type LastCheckpointFiles,
  type LastStateHeader,
} from './last-checkpoint.js';
import type { EpochRecord } from './train.js';

/**
 * The files of a training run, under `<outputDir>/`. The weights and optimizer state of `last`
 * are in the generation folder that `last.json` names ({@link readLastState}).
 */
export const TRAINING_FILES = {
  checkpoints: 'checkpoints',
  best: 'checkpoints/best_model.safetensors',
  lastState: 'checkpoints/last.json',
  /** The run's record (ts/run-record.ts), rewritten when a run starts or resumes. */
  run: `checkpoints/${RUN_JSON}`,
  metrics: 'metrics.jsonl',
  curves: 'training_curves.png',
} as const;

/** The settings a resumed run must share with the run it continues. */
export type RunSettings = ReturnType<typeof runSettings>;

/** `last.json`: where the run stands (and which generation folder holds the rest of `last`). */
export interface LastState extends LastStateHeader {
  settings: RunSettings;
  optimizerSteps: number;
  /** Epochs finished. */
  epoch: number;
  /** Micro-batches done in the unfinished epoch (a multiple of gradientAccumulation). */
  batchInEpoch: number;
  /** Ranks of the run that saved this (absent: 1); batchInEpoch counts each rank's batches. */
  worldSize?: number;
  epochSums: LossSums;
  /** Optimizer steps of the unfinished epoch skipped for a non-finite loss or gradient. */
  epochSkippedSteps: number;
  bestValIou: number | null;
  bestEpoch: number | null;
  epochsWithoutImprovement: number;
  history: EpochRecord[];
}

/** Sums of the unfinished epoch's finite micro-batch losses. */
export interface LossSums {
  loss: number;
  dice: number;
  focal: number;
  skeleton: number;
  batches: number;
}

export const emptySums = (): LossSums => ({ loss: 0, dice: 0, focal: 0, skeleton: 0, batches: 0 });

/** The subset of settings (and the model) that must not change across a resume. */
export function runSettings(config: ResolvedTrainOptions, model: SamModel) {
  return {
    model: model.module.path,
    strategy: model.metadata.lora_strategy,
    trainFile: config.trainFile,
    epochs: config.epochs,
    batchSize: config.batchSize,
    gradientAccumulation: config.gradientAccumulation,
    learningRate: config.learningRate,
    weightDecay: config.weightDecay,
    warmup: config.warmup,
    skeletonLoss: config.skeletonLoss,
    augment: config.augment,
    seed: config.seed,
    trainExtra: config.trainExtra,
    boxJitter: config.boxJitter,
  };
}

/** The last checkpoint of the run being resumed, its weights already in the model. */
export interface LastCheckpoint {
  state: LastState;
  files: LastCheckpointFiles;
  adapterSteps: number;
}

/**
 * Reads `<checkpoints>/last.json`, checks it belongs to this run and loads the weights of the set
 * it names into the model.
 */
export async function readLastCheckpoint(
  checkpoints: string,
  settings: RunSettings,
  model: SamModel,
): Promise<LastCheckpoint> {
  let last: Awaited<ReturnType<typeof readLastState<LastState>>>;
  try {
    last = await readLastState<LastState>(checkpoints);
  } catch (err) {
    throw new Error(`cannot resume: ${(err as Error).message}`);
  }
  if (last === null)
    throw new Error(`cannot resume: ${join(checkpoints, 'last.json')} does not exist`);
  const { state, files } = last;
  const statePath = files.state;
  // Written before skipped steps were counted.
  state.epochSkippedSteps ??= 0;
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
  const adapter = await applyAdapter(model.module, files.weights);
  return { state, files, adapterSteps: Number(adapter.metadata.optimizer_steps) };
}

/** Loads the set's optimizer state into the trainer; the three files must name the same step. */
export async function restoreOptimizer(
  resumed: LastCheckpoint,
  trainer: NativeTrainer,
): Promise<void> {
  await trainer.loadState(resumed.files.optimizer);
  const steps = [resumed.adapterSteps, trainer.optimizerSteps, resumed.state.optimizerSteps];
  if (new Set(steps).size !== 1)
    throw new Error(
      `cannot resume: the last checkpoint's files disagree on the optimizer step ` +
        `(weights ${steps[0]}, optimizer ${steps[1]}, last.json ${steps[2]})`,
    );
}
