import t from 'tap';
import { runTrainBenchmark } from '../ts/bench/train.js';

t.test('the training benchmark measures each strategy and the embedding cache', async (t) => {
  const started = performance.now();
  const result = await runTrainBenchmark({
    device: 'cpu',
    config: 'test',
    size: 64,
    batchSize: 2,
    warmupSteps: 1,
    steps: 2,
    strategies: ['A'],
  });
  // Every timed stretch lies inside the call: none can be faster than the call as a whole.
  const callSeconds = (performance.now() - started) / 1000;
  t.match(result, { device: 'cpu', config: 'test', batchSize: 2, steps: 2, unit: 'images/s' });
  t.same(Object.keys(result.strategies), ['A']);
  for (const m of Object.values(result.strategies)) {
    t.ok(m.imagesPerSecond >= (2 * 2) / callSeconds, `${m.imagesPerSecond} images/s`);
    t.ok(m.secondsPerStep * 2 <= callSeconds, `${m.secondsPerStep} s per step`);
    t.ok(Math.abs(m.imagesPerSecond * m.secondsPerStep - 2) < 1e-9, 'a step is a batch of 2');
    t.ok(m.peakMemoryMiB! > 50, `peak RSS ${m.peakMemoryMiB} MiB`);
    t.equal(m.cachedImages, 0);
  }
  const cache = result.embeddingCache!;
  t.equal(cache.off, result.strategies.A, 'the uncached run is strategy A’s');
  t.equal(cache.on.cachedImages, 2, 'both images cached');
  // Steps of the same batch: the speed-up is the ratio of the times per step.
  t.ok(
    Math.abs(cache.speedUp - cache.off.secondsPerStep / cache.on.secondsPerStep) < 1e-9,
    `speed-up ${cache.speedUp}`,
  );
  t.ok(cache.on.secondsPerStep * 2 <= callSeconds);
});
