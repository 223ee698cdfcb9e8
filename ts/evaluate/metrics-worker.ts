/**
 * Worker-thread side of the metric pool: scores one image per message. The prediction and its
 * probability map travel in and back out as transferred buffers, so they are never copied and the
 * caller gets them back to write.
 */
import { parentPort } from 'node:worker_threads';
import { evaluateImage } from '../metrics/image.js';
import { transferables, type ScoreReply, type ScoreRequest } from './metrics-pool.js';

const port = parentPort;
if (!port) throw new Error('metrics-worker.ts must run in a worker thread');

port.on('message', (request: ScoreRequest) => {
  let reply: ScoreReply;
  try {
    const { prediction, groundTruth, probabilities, toleranceRadius } = request;
    const evaluation = evaluateImage(prediction, groundTruth, {
      toleranceRadius,
      ...(probabilities ? { probabilities } : {}),
    });
    reply = { id: request.id, evaluation, prediction, probabilities };
  } catch (err) {
    reply = { id: request.id, error: err instanceof Error ? err.message : String(err) };
  }
  port.postMessage(reply, 'evaluation' in reply ? transferables(reply) : []);
});
