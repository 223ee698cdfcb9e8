/**
 * A pool of worker threads running `evaluateImage` (skeletons, tolerant matching, the threshold
 * sweep: the CPU-heavy part of scoring) and saving the prediction's PNG files, so the JS thread
 * stays free to feed the device. Predictions held in native memory are taken by the worker itself
 * and their files written there: their pixels never reach the JS thread unless asked back (for
 * figures). With 0 workers, images are scored on the calling thread.
 */
import { isHeld, type BinaryMask, type HeldPlane, type ProbabilityMap } from '../image.js';
import { evaluateImage, type ImageEvaluation } from '../metrics/image.js';
import { readHeld, releaseHeld, takeHeld } from '../held.js';
import {
  writeMaskPng,
  writeProbabilityPng,
  type ProbabilityBitDepth,
} from '../report/predictions.js';
import { siblingWorkerUrl, WorkerPool } from '../util/worker-pool.js';

/** A scored image whose PNG files are written; with the prediction when asked for it. */
export interface Scored {
  evaluation: ImageEvaluation;
  prediction?: BinaryMask;
}

/** What scoring an image takes. */
export interface ScoreRequest {
  prediction: BinaryMask | HeldPlane;
  /** Held ones are read (copied), not taken: every prompt config's scoring reads the same. */
  groundTruth: BinaryMask | HeldPlane;
  probabilities: ProbabilityMap | HeldPlane | undefined;
  toleranceRadius: number;
  /** Where the mask goes, and the probability map (at this depth), written atomically. */
  save: { mask: string; probabilities?: { path: string; bits: ProbabilityBitDepth } };
  /** Send the prediction back (to draw a figure of it). */
  returnPrediction: boolean;
}

/** Scores one image and saves its PNGs: what a worker does, and the pool without workers. */
export async function scoreImage(input: ScoreRequest): Promise<Scored> {
  const { probabilities, toleranceRadius, save } = input;
  const prediction = takeHeld(input.prediction);
  const groundTruth = readHeld(input.groundTruth);
  // The probability map is only read (swept, quantised), in place: never copied, even if held.
  try {
    const evaluation = evaluateImage(prediction, groundTruth, {
      toleranceRadius,
      ...(probabilities ? { probabilities } : {}),
    });
    await Promise.all([
      writeMaskPng(save.mask, prediction),
      save.probabilities &&
        probabilities &&
        writeProbabilityPng(save.probabilities.path, probabilities, save.probabilities.bits),
    ]);
    return input.returnPrediction ? { evaluation, prediction } : { evaluation };
  } finally {
    releaseHeld([probabilities]);
  }
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
   * Scores one image and saves its PNGs. A held prediction and probability map are taken by the
   * worker (or released if it never gets to them); arrays are transferred to it, and the
   * prediction back when asked for (the ground truth, often shared by several prompt configs, is
   * copied).
   */
  score(input: ScoreRequest): Promise<Scored> {
    if (this.closed) return Promise.reject(new Error('metrics pool is closed'));
    const owned = this.pool && ownedBuffers(input);
    const scored = owned ? this.pool.run(owned, transferables(owned)) : scoreImage(input);
    return scored.finally(() => releaseHeld([input.prediction, input.probabilities]));
  }

  /** Busy milliseconds of the threads so far ({@link WorkerPool.busyMs}); 0 without threads. */
  busyMs(): number {
    return this.pool?.busyMs() ?? 0;
  }

  /** Stops the threads; pending scores are rejected. */
  async close(): Promise<void> {
    this.closed = true;
    await this.pool?.close();
  }
}

/** The array buffers of a request or a scored image, to transfer (held planes have none). */
export function transferables(message: {
  prediction?: BinaryMask | HeldPlane | undefined;
  probabilities?: ProbabilityMap | HeldPlane | undefined;
}): ArrayBuffer[] {
  return [message.prediction, message.probabilities].flatMap((p) =>
    p && !isHeld(p) ? [p.data.buffer as ArrayBuffer] : [],
  );
}

/** The prediction and probability map with buffers of their own (copied if views). */
function ownedBuffers(input: ScoreRequest): ScoreRequest {
  const own = <T extends BinaryMask | ProbabilityMap | HeldPlane>(m: T): T =>
    isHeld(m) || (m.data.byteOffset === 0 && m.data.byteLength === m.data.buffer.byteLength)
      ? m
      : { ...m, data: m.data.slice() };
  return {
    ...input,
    prediction: own(input.prediction),
    probabilities: input.probabilities && own(input.probabilities),
  };
}
