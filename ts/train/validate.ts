/**
 * Validation during training: the evaluation's own pieces (samples prepared with box prompts from
 * the ground truth as `bbox` evaluation draws them, `predict`, the confusion counts and
 * pixel-metric formulas, the per-image mean), without the report files and without the skeleton
 * metrics validation does not report, so an epoch's validation IoU, Dice and F1 equal the means
 * `crackseg evaluate` reports.
 */
import { DEFAULT_CONCURRENCY, readDataset } from '../data/dataset.js';
import { SamplePool, type PreparedSample } from '../data/sample-pool.js';
import { distribution } from '../metrics/accumulator.js';
import { pixelMetricsFromCounts } from '../metrics/formulas.js';
import { confusionCounts } from '../metrics/image.js';
import type { SamModel } from '../model/load.js';
import { defaultBatchSize, predict, sameSizeBatches, type ImagePrediction } from '../predict.js';
import { launchAhead } from '../util/launch-ahead.js';
import { TRAINING_BOX_PROMPT } from './box-prompt.js';

/** Mean per-image metrics over the validation list. */
export interface ValidationMetrics {
  iou: number;
  dice: number;
  f1: number;
  images: number;
}

export interface ValidateOptions {
  model: SamModel;
  dataRoot: string;
  listFile: string;
  batchSize?: number;
  /** Called after each batch with images done so far. */
  onBatch?: (done: number) => void;
  /** Stops after the batch in progress; the result is then null. */
  signal?: AbortSignal;
  /** Prepares the samples (default: a pool of its own for this call). */
  loader?: SamplePool;
}

/** A batch handed to the device, with its predictions to come. */
interface Launched {
  batch: PreparedSample[];
  predictions: Promise<ImagePrediction[]>;
}

/**
 * Predicts every validation image with its ground-truth boxes and scores it. Null when `signal`
 * aborted it (a partial mean is no epoch's validation).
 */
export async function validate(options: ValidateOptions): Promise<ValidationMetrics | null> {
  const batchSize = options.batchSize ?? defaultBatchSize(options.model.device);
  const values = { iou: [] as number[], dice: [] as number[], f1: [] as number[] };
  const launch = (batch: PreparedSample[]): Launched => {
    const predictions = predict(
      options.model,
      batch.map((sample) => sample.image),
      batch.map((sample) => sample.prompts[0]!),
      { batchSize },
    );
    predictions.catch(() => undefined); // awaited in score(); never unhandled meanwhile
    return { batch, predictions };
  };
  const drain = async ({ predictions }: Launched) =>
    void (await predictions.catch(() => undefined));
  const score = async ({ batch, predictions }: Launched) => {
    (await predictions).forEach((prediction, i) => {
      const metrics = pixelMetricsFromCounts(confusionCounts(prediction.mask, batch[i]!.mask));
      values.iou.push(metrics.iou);
      values.dice.push(metrics.dice);
      values.f1.push(metrics.f1);
    });
    options.onBatch?.(values.iou.length);
  };
  // Prepared ahead as evaluation prepares them (worker threads read, decode and draw the boxes):
  // a batch is predicted while the next is read.
  const loader = options.loader ?? new SamplePool();
  const prepare = { root: options.dataRoot, listFile: options.listFile, seed: 0 };
  const samples = readDataset({
    root: options.dataRoot,
    listFile: options.listFile,
    concurrency: Math.max(DEFAULT_CONCURRENCY, 2 * batchSize),
    load: (entry, index) =>
      loader.prepare({ ...prepare, entry, index, prompts: [TRAINING_BOX_PROMPT] }),
  });
  // One batch on the device while the previous one is scored; the device never waits for it.
  try {
    await launchAhead(
      sameSizeBatches(samples, batchSize, (sample) => sample.image),
      {
        launch,
        // An aborted validation is no epoch's: what is in flight is only waited for.
        settle: (launched) => (options.signal?.aborted ? drain(launched) : score(launched)),
        proceed: () => !options.signal?.aborted,
        // Training goes on with this model only once nothing of validation runs on it.
        abandon: drain,
      },
    );
  } finally {
    if (!options.loader) await loader.close();
  }
  if (options.signal?.aborted) return null;
  const images = values.iou.length;
  if (images === 0) throw new Error(`validation list '${options.listFile}' has no images`);
  const mean = (of: number[]) => distribution(of).mean!;
  return { iou: mean(values.iou), dice: mean(values.dice), f1: mean(values.f1), images };
}
