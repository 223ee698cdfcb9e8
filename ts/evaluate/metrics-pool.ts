/**
 * A pool of worker threads running `evaluateImage` (skeletons, tolerant matching, the threshold
 * sweep: the CPU-heavy part of scoring) and preparing the prediction's PNG files, so the JS thread
 * stays free to feed the device and write files. With 0 workers, images are scored on the calling
 * thread.
 */
import type { BinaryMask, ProbabilityMap } from '../image.js';
import { evaluateImage, type ImageEvaluation } from '../metrics/image.js';
import {
  encodeMaskPng,
  encodeProbabilityPng,
  type ProbabilityBitDepth,
} from '../report/predictions.js';
import type { EncodedPredictions } from '../report/writer.js';
import { siblingWorkerUrl, WorkerPool } from '../util/worker-pool.js';

/**
 * A scored image, with the prediction and probability map handed back (the ones given to
 * {@link MetricsPool.score} were transferred away and must not be used any more) and the
 * prediction's PNG files.
 */
export interface Scored {
  evaluation: ImageEvaluation;
  prediction: BinaryMask;
  probabilities: ProbabilityMap | undefined;
  encoded: EncodedPredictions;
}

/** What scoring an image takes. */
export interface ScoreRequest {
  prediction: BinaryMask;
  groundTruth: BinaryMask;
  probabilities: ProbabilityMap | undefined;
  toleranceRadius: number;
  /** Also encode the probability map as a PNG of this depth (false: not saved). */
  probabilityPng: ProbabilityBitDepth | false;
}

/** Scores one image and encodes its PNGs: what a worker does, and the pool without workers. */
export async function scoreImage(input: ScoreRequest): Promise<Scored> {
  const { prediction, groundTruth, probabilities, toleranceRadius, probabilityPng } = input;
  const evaluation = evaluateImage(prediction, groundTruth, {
    toleranceRadius,
    ...(probabilities ? { probabilities } : {}),
  });
  // Copied out of sharp's Buffers, so that they own their memory and can be transferred.
  const [mask, probabilityBytes] = await Promise.all([
    encodeMaskPng(prediction).then((png) => new Uint8Array(png)),
    probabilityPng && probabilities
      ? encodeProbabilityPng(probabilities, probabilityPng).then((png) => new Uint8Array(png))
      : undefined,
  ]);
  const encoded: EncodedPredictions = probabilityBytes
    ? { mask, probabilities: probabilityBytes }
    : { mask };
  return { evaluation, prediction, probabilities, encoded };
}

export class MetricsPool {
  private readonly pool: WorkerPool<ScoreRequest, Scored> | null;
  private closed = false;

  /** Starts `workers` threads (0: score on the calling thread). */
  constructor(readonly workers: number) {
    // Two images per thread: one is scored while the other's PNGs encode on the libuv pool.
    this.pool =
      workers > 0
        ? new WorkerPool(siblingWorkerUrl(import.meta.url, 'metrics-worker'), workers, 2)
        : null;
  }

  /**
   * Scores one image. The prediction's and probability map's buffers are transferred to a worker
   * and back (the ground truth, often shared by several prompt configs, is copied).
   */
  score(input: ScoreRequest): Promise<Scored> {
    if (this.closed) return Promise.reject(new Error('metrics pool is closed'));
    if (!this.pool) return scoreImage(input);
    const owned = ownedBuffers(input);
    return this.pool.run(owned, transferables(owned));
  }

  /** Stops the threads; pending scores are rejected. */
  async close(): Promise<void> {
    this.closed = true;
    await this.pool?.close();
  }
}

/** The buffers of a prediction, its probability map and their PNGs, to transfer. */
export function transferables(
  scored: Pick<Scored, 'prediction' | 'probabilities'> & Partial<Pick<Scored, 'encoded'>>,
): ArrayBuffer[] {
  const arrays = [
    scored.prediction.data,
    scored.probabilities?.data,
    scored.encoded?.mask,
    scored.encoded?.probabilities,
  ];
  return arrays.flatMap((a) => (a ? [a.buffer as ArrayBuffer] : []));
}

/** The prediction and probability map with buffers of their own (copied if views). */
function ownedBuffers(input: ScoreRequest): ScoreRequest {
  const own = <T extends { data: Uint8Array | Float32Array }>(m: T): T =>
    m.data.byteOffset === 0 && m.data.byteLength === m.data.buffer.byteLength
      ? m
      : { ...m, data: m.data.slice() };
  return {
    ...input,
    prediction: own(input.prediction),
    probabilities: input.probabilities && own(input.probabilities),
  };
}
