/**
 * Worker-thread side of the sample pool: prepares one sample per request. The image and mask
 * travel back as transferred buffers, or stay in native memory (`hold`) and only their handles
 * travel; a bad file comes back as its {@link DatasetError}'s fields.
 */
import { DatasetError } from '../data/dataset.js';
import { isHeld } from '../image.js';
import { serveRequests } from '../util/worker-pool.js';
import { prepareSample, type PrepareReply, type PrepareRequest } from './sample-pool.js';

serveRequests<PrepareRequest, PrepareReply>(async (request) => {
  try {
    const sample = await prepareSample(request);
    // Both arrays own their buffers (decoding copies out of sharp's); held ones have none here.
    const transfer = [sample.image, sample.mask].flatMap((a) =>
      isHeld(a) ? [] : [a.data.buffer as ArrayBuffer],
    );
    return { reply: { sample }, transfer };
  } catch (err) {
    if (!(err instanceof DatasetError)) throw err;
    const { listFile, line, path, reason, category, id } = err;
    return { reply: { datasetError: [listFile, line, path, reason, category, id] }, transfer: [] };
  }
});
