/**
 * Worker-thread side of the metric pool: scores one image per message and encodes its PNGs. The
 * prediction and its probability map travel in and back out as transferred buffers, so they are
 * never copied and the caller gets them back; the PNGs travel out the same way.
 */
import { parentPort } from 'node:worker_threads';
import { scoreImage, transferables, type ScoreReply, type ScoreRequest } from './metrics-pool.js';

const port = parentPort;
if (!port) throw new Error('metrics-worker.ts must run in a worker thread');

port.on('message', async ({ id, ...input }: ScoreRequest) => {
  let reply: ScoreReply;
  try {
    reply = { id, ...(await scoreImage(input)) };
  } catch (err) {
    reply = { id, error: err instanceof Error ? err.message : String(err) };
  }
  port.postMessage(reply, 'evaluation' in reply ? transferables(reply) : []);
});
