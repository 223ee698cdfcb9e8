/**
 * A pool of worker threads running `evaluateImage` (skeletons, tolerant matching, the threshold
 * sweep: the CPU-heavy part of scoring) and preparing the prediction's PNG files, so the JS thread
 * stays free to feed the device and write files. With 0 workers, images are scored on the calling
 * thread.
 */
import { Worker } from 'node:worker_threads';
import type { BinaryMask, ProbabilityMap } from '../image.js';
import { evaluateImage, type ImageEvaluation } from '../metrics/image.js';
import {
  encodeMaskPng,
  encodeProbabilityPng,
  type ProbabilityBitDepth,
} from '../report/predictions.js';
import type { EncodedPredictions } from '../report/writer.js';

/** What a worker receives. */
export interface ScoreRequest {
  id: number;
  prediction: BinaryMask;
  groundTruth: BinaryMask;
  probabilities: ProbabilityMap | undefined;
  toleranceRadius: number;
  /** Also encode the probability map as a PNG of this depth (false: not saved). */
  probabilityPng: ProbabilityBitDepth | false;
}

/** What a worker answers: the scored image, or an error. */
export type ScoreReply = ({ id: number } & Scored) | { id: number; error: string };

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

type Input = Omit<ScoreRequest, 'id'>;

/** Scores one image and encodes its PNGs: what a worker does, and the pool without workers. */
export async function scoreImage(input: Input): Promise<Scored> {
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

// Under the test runner this module is TypeScript, and so is its worker.
const workerUrl = new URL(
  import.meta.url.endsWith('.ts') ? './metrics-worker.ts' : './metrics-worker.js',
  import.meta.url,
);

export class MetricsPool {
  private readonly idle: Worker[] = [];
  private readonly all: Worker[] = [];
  /** The request each busy worker is scoring. */
  private readonly running = new Map<Worker, number>();
  private readonly queue: Array<{ id: number; input: Input }> = [];
  private readonly pending = new Map<
    number,
    { resolve: (s: Scored) => void; reject: (e: Error) => void }
  >();
  private nextId = 0;
  private closed = false;

  /** Starts `workers` threads (0: score on the calling thread). */
  constructor(readonly workers: number) {
    for (let i = 0; i < workers; i++) this.spawn();
  }

  /**
   * Scores one image. The prediction's and probability map's buffers are transferred to a worker
   * and back (the ground truth, often shared by several prompt configs, is copied).
   */
  score(input: Input): Promise<Scored> {
    if (this.closed) return Promise.reject(new Error('metrics pool is closed'));
    if (this.workers === 0) return scoreImage(input);
    const id = this.nextId++;
    return new Promise<Scored>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.queue.push({ id, input: ownedBuffers(input) });
      this.dispatch();
    });
  }

  /** Stops the threads; pending scores are rejected. */
  async close(): Promise<void> {
    this.closed = true;
    for (const { reject } of this.pending.values()) reject(new Error('metrics pool closed'));
    this.pending.clear();
    await Promise.all(this.all.map((worker) => worker.terminate()));
  }

  private spawn(): void {
    const worker = new Worker(workerUrl);
    worker.on('message', (reply: ScoreReply) => {
      this.running.delete(worker);
      const task = this.pending.get(reply.id);
      this.pending.delete(reply.id);
      if ('error' in reply) task?.reject(new Error(reply.error));
      else task?.resolve(reply);
      this.idle.push(worker);
      this.dispatch();
    });
    worker.on('error', (err) => {
      // A crashed worker fails its image and is replaced; the run decides what that means.
      const id = this.running.get(worker);
      this.running.delete(worker);
      if (id !== undefined) this.pending.get(id)?.reject(err);
      if (id !== undefined) this.pending.delete(id);
      this.all.splice(this.all.indexOf(worker), 1);
      if (!this.closed) this.spawn();
    });
    this.all.push(worker);
    this.idle.push(worker);
    this.dispatch();
  }

  private dispatch(): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const worker = this.idle.pop()!;
      const { id, input } = this.queue.shift()!;
      this.running.set(worker, id);
      worker.postMessage({ id, ...input } satisfies ScoreRequest, transferables(input));
    }
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
function ownedBuffers(input: Input): Input {
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
