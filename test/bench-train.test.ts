import t from 'tap';
import { runTrainBenchmark } from '../ts/bench/train.js';

t.test('the training benchmark measures each strategy and the embedding cache', async (t) => {
  const started = performance.now();
  const result = await runTrainBenchmark({
    device: 'cpu',
    config: 'test',
    size: 64,
    batchSizes: [2],
    warmupSteps: 1,
    steps: 2,
    strategies: ['A'],
  });
  // Every timed stretch lies inside the call: none can be faster than the call as a whole.
  const callSeconds = (performance.now() - started) / 1000;
  t.match(result, { device: 'cpu', config: 'test', batchSizes: [2], steps: 2, unit: 'images/s' });
  t.same(Object.keys(result.strategies), ['A']);
  for (const m of Object.values(result.strategies).flat()) {
    t.equal(m.batchSize, 2);
    t.ok(m.imagesPerSecond >= (2 * 2) / callSeconds, `${m.imagesPerSecond} images/s`);
    t.ok(m.secondsPerStep * 2 <= callSeconds, `${m.secondsPerStep} s per step`);
    t.ok(Math.abs(m.imagesPerSecond * m.secondsPerStep - 2) < 1e-9, 'a step is a batch of 2');
    t.ok(m.peakMemoryMiB > 50, `peak RSS ${m.peakMemoryMiB} MiB`);
    t.ok(m.stepPeakMemoryMiB > 0 && m.stepPeakMemoryMiB < m.peakMemoryMiB, 'the steps’ share');
    t.equal(m.cachedImages, 0);
  }
  const cache = result.embeddingCache!;
  t.equal(cache.off, result.strategies.A![0], 'the uncached run is strategy A’s');
  t.equal(cache.on.cachedImages, 2, 'both images cached');
  // Steps of the same batch: the speed-up is the ratio of the times per step.
  t.ok(
    Math.abs(cache.speedUp - cache.off.secondsPerStep / cache.on.secondsPerStep) < 1e-9,
    `speed-up ${cache.speedUp}`,
  );
  t.ok(cache.on.secondsPerStep * 2 <= callSeconds);
});

// How far a strategy-B step of the `test` model at 256 px, batch 4, fp32, raises the peak resident
// set, over three steps (the TorchScript executor optimizes a method after its first, profiled,
// run): 251 MiB while the trainer ran the optimized differentiable graphs, 135 MiB op by op
// (docs/benchmarks.md, "Training memory"). The bound sits between the two.
const STEP_PEAK_BOUND_MIB = 180;

t.test(
  'a training step keeps no more of the forward for backward than eager PyTorch',
  async (t) => {
    // Every block of 64 KiB or more mapped on its own and unmapped when freed, so that the
    // resident set follows the bytes in use (glibc otherwise keeps freed blocks in per-thread
    // arenas, and the peak depends on which pool thread ran which step). The measuring process
    // inherits it.
    process.env.MALLOC_MMAP_THRESHOLD_ = String(64 * 1024);
    t.teardown(() => void delete process.env.MALLOC_MMAP_THRESHOLD_);
    const result = await runTrainBenchmark({
      device: 'cpu',
      config: 'test',
      batchSizes: [1, 4],
      warmupSteps: 2,
      steps: 1,
      strategies: ['B'],
      cache: false,
    });
    const [one, four] = result.strategies.B!;
    t.same([one!.batchSize, four!.batchSize], [1, 4], 'one measurement per batch size');
    t.ok(one!.stepPeakMemoryMiB < four!.stepPeakMemoryMiB, 'a larger batch needs more');
    t.ok(
      four!.stepPeakMemoryMiB <= STEP_PEAK_BOUND_MIB,
      `the steps raised the peak RSS by ${four!.stepPeakMemoryMiB.toFixed(0)} MiB <= ${STEP_PEAK_BOUND_MIB} MiB`,
    );
  },
);
