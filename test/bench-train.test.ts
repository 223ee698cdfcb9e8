import t from 'tap';
import { runTrainBenchmark } from '../ts/bench/train.js';

t.test('the training benchmark measures each strategy and the embedding cache', async (t) => {
  const result = await runTrainBenchmark({
    device: 'cpu',
    config: 'test',
    size: 64,
    batchSize: 2,
    warmupSteps: 1,
    steps: 2,
    strategies: ['A'],
  });
  t.match(result, { device: 'cpu', config: 'test', batchSize: 2, steps: 2, unit: 'images/s' });
  t.same(Object.keys(result.strategies), ['A']);
  for (const m of Object.values(result.strategies)) {
    t.ok(m.imagesPerSecond > 0, `${m.imagesPerSecond} images/s`);
    t.ok(m.peakMemoryMiB! > 50, `peak RSS ${m.peakMemoryMiB} MiB`);
    t.equal(m.cachedImages, 0);
  }
  const cache = result.embeddingCache!;
  t.equal(cache.off, result.strategies.A, 'the uncached run is strategy A’s');
  t.equal(cache.on.cachedImages, 2, 'both images cached');
  t.equal(cache.speedUp, cache.on.imagesPerSecond / cache.off.imagesPerSecond);
});
