/**
 * The files of a training run and resuming from them: `last.json` (where the run stands, written
 * last), the adapter and the optimizer state it names, and the settings a resume must share.
 */
import { readFile } from 'node:fs/promises';
import type { NativeTrainer } from '../binding.js';
import { applyAdapter } from '../model/adapter.js';
import type { SamModel } from '../model/load.js';
import { RUN_JSON } from '../run-record.js';
import type { ResolvedTrainOptions } from './options.js';
import type { EpochRecord } from './train.js';

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

/** The settings a resumed run must share with the run it continues. */
export type RunSettings = ReturnType<typeof runSettings>;

/** `last.json`: where the run stands. */
export interface LastState {
  version: 1;
  settings: RunSettings;
  optimizerSteps: number;
  /** Epochs finished. */
  epoch: number;
  /** Micro-batches done in the unfinished epoch (a multiple of gradientAccumulation). */
  batchInEpoch: number;
  epochSums: LossSums;
  bestValIou: number | null;
  bestEpoch: number | null;
  epochsWithoutImprovement: number;
  history: EpochRecord[];
}

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
  adapterSteps: number;
}

/** Reads `last.json`, checks it belongs to this run and loads `last.safetensors` into the model. */
export async function readLastCheckpoint(
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
export async function restoreOptimizer(
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
