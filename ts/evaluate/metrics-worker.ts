/**
 * Worker-thread side of the metric pool: scores one image per request and encodes its PNGs. The
 * prediction and its probability map travel in and back out as transferred buffers, so they are
 * never copied and the caller gets them back; the PNGs travel out the same way.
 */
import { serveRequests } from '../util/worker-pool.js';
import { scoreImage, transferables, type ScoreRequest, type Scored } from './metrics-pool.js';

serveRequests<ScoreRequest, Scored>(async (request) => {
  const scored = await scoreImage(request);
  return { reply: scored, transfer: transferables(scored) };
});
