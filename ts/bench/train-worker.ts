/**
 * One training-benchmark measurement (see train.ts), in its own process: loads the model, makes
 * the LoRA factors trainable, repeats one synthetic batch through the native trainer, and sends
 * back images/s and the peak memory: the device allocator's on CUDA, the process's on the CPU.
 */
import { binding } from '../binding.js';
import { loadModel } from '../model/load.js';
import { deviceMemory } from '../runtime.js';
import { trainedParameterNames } from '../model/adapter.js';
import { launchAhead } from '../util/launch-ahead.js';
import { syntheticBatch } from './synthetic-batch.js';
import { nativeTrainerOptions, TRAIN_DEFAULTS } from '../train/options.js';
import type { TrainBenchJob, TrainBenchMeasurement } from './train.js';

/** CUDA: the allocator's allocated bytes now or at their peak; CPU: the process's peak resident
 * set either way (what it holds now is not tracked). MiB. */
function memoryMiB(device: string, which: 'allocated' | 'peak'): number {
  const memory = deviceMemory(device);
  if (!memory) return process.resourceUsage().maxRSS / 1024;
  return (which === 'peak' ? memory.peakAllocatedBytes : memory.allocatedBytes) / 2 ** 20;
}

async function measure(job: TrainBenchJob): Promise<TrainBenchMeasurement> {
  // fp32 on load: the trainer takes fp32 masters, then casts the module to the job's precision.
  const model = await loadModel({ path: job.model, device: job.device, precision: 'fp32' });
  const { module } = model;
  try {
    const trained = trainedParameterNames(module, []);
    await module.setRequiresGrad(/./, false);
    await module.native.setRequiresGrad(trained, true);
    const batch = syntheticBatch(job.batchSize, job.size, model.imageSize, 0, job.cache);
    const trainer = binding().createTrainer(
      module.native,
      nativeTrainerOptions({
        learningRate: TRAIN_DEFAULTS.learningRate,
        weightDecay: TRAIN_DEFAULTS.weightDecay,
        warmup: 0,
        totalSteps: job.warmupSteps + job.steps,
        gradientAccumulation: 1,
        skeletonLoss: false,
        seed: 0,
        precision: job.precision,
        embeddingCache: job.cache ? job.batchSize : 0,
      }),
    );
    try {
      // As train() does: one step queued ahead of the one being read back.
      const steps = (count: number) =>
        launchAhead(Array.from({ length: count }), {
          launch: () => trainer.step(batch),
          settle: async (step) => void (await step),
          abandon: (step) => step,
        });
      // The step's own memory: its peak above what the process held before the first step.
      const before = memoryMiB(model.device, 'allocated');
      await steps(job.warmupSteps);
      const started = performance.now();
      const cpuBefore = process.cpuUsage();
      await steps(job.steps);
      const seconds = (performance.now() - started) / 1000;
      const cpu = process.cpuUsage(cpuBefore);
      const peak = memoryMiB(model.device, 'peak');
      return {
        batchSize: job.batchSize,
        imagesPerSecond: (job.steps * job.batchSize) / seconds,
        secondsPerStep: seconds / job.steps,
        cpuSecondsPerStep: (cpu.user + cpu.system) / 1e6 / job.steps,
        peakMemoryMiB: peak,
        stepPeakMemoryMiB: peak - before,
        cachedImages: trainer.cachedImages,
        trainedTensors: trained.length,
        device: model.device,
      };
    } finally {
      trainer.dispose();
    }
  } finally {
    module.dispose();
  }
}

const job = JSON.parse(process.argv[2] ?? '{}') as TrainBenchJob;
measure(job).then(
  (result) => process.send!({ result }, () => process.exit(0)),
  (err: unknown) =>
    process.send!({ error: err instanceof Error ? err.message : String(err) }, () =>
      process.exit(1),
    ),
);
