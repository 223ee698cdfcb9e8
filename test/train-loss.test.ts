import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { binding } from '../ts/binding.js';
import { exportModel } from '../ts/model/export.js';
import { TorchModule } from '../ts/torch-module.js';
import { trainedParameterNames } from '../ts/model/adapter.js';
import { syntheticBatch } from '../ts/bench/synthetic-batch.js';
import { nativeTrainerOptions } from '../ts/train/options.js';
import { PRECISION_DTYPE } from '../ts/model/load.js';
import { deviceMemory, resetPeakDeviceMemory, runtimeInfo } from '../ts/runtime.js';

const dir = mkdtempSync(join(tmpdir(), 'crackseg-train-loss-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const cuda = runtimeInfo().cudaAvailable;
const cases = [
  { device: 'cpu', precision: 'fp32' },
  { device: 'cpu', precision: 'bf16' },
  // On CUDA (npm run test:gpu): also the allocator statistics; skipped without a GPU.
  { device: 'cuda', precision: 'bf16' },
] as const;

for (const { device, precision } of cases)
  t.test(
    `the loss falls over 30 steps on a synthetic batch (LoRA only, ${device}, ${precision})`,
    { skip: device === 'cuda' && !cuda ? 'no CUDA device' : false },
    async (t) => {
      const exported = await exportModel({
        config: 'test',
        lora: 'B',
        rank: 8,
        alpha: 16,
        dropout: 0,
        seed: 0,
        out: join(dir, `model-${device}-${precision}.pt`),
      });
      const module = await TorchModule.load(exported.out, { device });
      t.teardown(() => module.dispose());
      const trained = trainedParameterNames(module, []);
      await module.setRequiresGrad(/./, false);
      await module.native.setRequiresGrad(trained, true);
      const batch = syntheticBatch(2, 128, exported.metadata.image_size, 7);
      const steps = 30;
      resetPeakDeviceMemory(device);
      const trainer = binding().createTrainer(
        module.native,
        nativeTrainerOptions({
          learningRate: 5e-3,
          weightDecay: 0,
          warmup: 0,
          totalSteps: steps,
          gradientAccumulation: 1,
          skeletonLoss: false,
          seed: 0,
          precision,
        }),
      );
      t.teardown(() => trainer.dispose());
      t.equal(module.dtype, PRECISION_DTYPE[precision], 'the trainer cast the model');
      // All steps asked for at once: the trainer runs them in call order.
      const results = await Promise.all(Array.from({ length: steps }, () => trainer.step(batch)));
      t.same(
        results.map((r) => r.optimizerSteps),
        results.map((_, i) => i + 1),
        'steps resolved in order',
      );
      const losses = results.map((r) => r.loss);
      const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
      const [first, last] = [mean(losses.slice(0, 5)), mean(losses.slice(-5))];
      t.ok(losses.every(Number.isFinite), 'every loss is finite');
      t.ok(last < 0.8 * first, `mean loss of the last 5 steps ${last} < 0.8 × first 5 ${first}`);
      t.ok(losses.at(-1)! < losses[0]!, `loss ${losses[0]} → ${losses.at(-1)}`);
      const weights = await trainer.weights();
      t.equal(weights[trained[0]!]!.dtype, 'float32', 'the trained weights are fp32');
      if (device === 'cuda') {
        const memory = deviceMemory(device)!;
        t.ok(memory.peakAllocatedBytes > 0, `peak allocated ${memory.peakAllocatedBytes} bytes`);
        t.ok(memory.peakReservedBytes >= memory.peakAllocatedBytes, 'reserved ≥ allocated');
      }
    },
  );
