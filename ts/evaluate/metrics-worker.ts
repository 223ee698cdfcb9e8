/**
 * Worker-thread side of the metric pool: scores one image per request and writes its PNGs. A held
 * prediction is taken from native memory here; one given as arrays arrives as transferred
 * buffers. Only the numbers go back, and the mask when asked for (transferred, not copied).
 */
import { serveRequests } from '../util/worker-pool.js';
import { scoreImage, transferables, type ScoreRequest, type Scored } from './metrics-pool.js';

serveRequests<ScoreRequest, Scored>(async (request) => {
  const scored = await scoreImage(request);
  return { reply: scored, transfer: transferables(scored) };
});
