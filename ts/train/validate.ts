/**
 * Validation during training: the evaluation's own pieces (box prompts from the ground truth as
 * `bbox` evaluation draws them, `predict`, `evaluateImage`, the metric accumulator), without the
 * report files, so an epoch's validation IoU equals what `crackseg evaluate` reports.
 */
import { readDataset, type Sample } from '../data/dataset.js';
import { MetricAccumulator } from '../metrics/accumulator.js';
import { evaluateImage } from '../metrics/image.js';
import type { SamModel } from '../model/load.js';
import { defaultBatchSize, predict, sameSizeBatches } from '../predict.js';
import { groundTruthBoxes } from './box-prompt.js';

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
}

/**
 * Predicts every validation image with its ground-truth boxes and scores it. Null when `signal`
 * aborted it (a partial mean is no epoch's validation).
 */
export async function validate(options: ValidateOptions): Promise<ValidationMetrics | null> {
  const batchSize = options.batchSize ?? defaultBatchSize(options.model.device);
  const accumulator = new MetricAccumulator();
  const score = async (batch: Sample[]) => {
    const prompts = batch.map((sample) => groundTruthBoxes(sample.mask));
    const predictions = await predict(
      options.model,
      batch.map((s) => s.image),
      prompts,
      { batchSize },
    );
    predictions.forEach((prediction, i) =>
      accumulator.add(evaluateImage(prediction.mask, batch[i]!.mask)),
    );
    options.onBatch?.(accumulator.count);
  };
  const samples = readDataset({ root: options.dataRoot, listFile: options.listFile });
  // Batches of same-sized images, as evaluation forms them.
  for await (const batch of sameSizeBatches(samples, batchSize, (sample) => sample.image)) {
    if (options.signal?.aborted) return null;
    await score(batch);
  }
  if (options.signal?.aborted) return null;
  const { images, metrics } = accumulator.result();
  if (images === 0) throw new Error(`validation list '${options.listFile}' has no images`);
  return { iou: metrics.iou.mean!, dice: metrics.dice.mean!, f1: metrics.f1.mean!, images };
}
