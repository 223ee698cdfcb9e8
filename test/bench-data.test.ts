import t from 'tap';
import { runDataBenchmark } from '../ts/bench/data.js';

t.test(
  'the data benchmark prepares every image of an epoch, with and without augmentation',
  async (t) => {
    const started = performance.now();
    const result = await runDataBenchmark({ width: 128, height: 96, images: 10, batchSize: 4 });
    // Each rate times one epoch of the 10 images inside the call: never slower than the call.
    const slowest = 10 / ((performance.now() - started) / 1000);
    t.match(result, { imageSize: { width: 128, height: 96 }, batchSize: 4, unit: 'images/s' });
    t.equal(result.images, 10, 'every synthetic image has a crack, so all are kept');
    for (const key of ['augmented', 'plain'] as const)
      t.ok(
        result[key] >= slowest && Number.isFinite(result[key]),
        `${key}: ${result[key]} images/s, the call as a whole ${slowest}`,
      );
  },
);
