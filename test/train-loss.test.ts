import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { binding } from '../ts/binding.js';
import { exportModel } from '../ts/model/export.js';
import { TorchModule } from '../ts/torch-module.js';
import { trainedParameterNames } from '../ts/train/adapter.js';
import { syntheticBatch } from '../ts/train/batches.js';
import { nativeTrainerOptions } from '../ts/train/train.js';

const dir = mkdtempSync(join(tmpdir(), 'crackseg-train-loss-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

for (const precision of ['fp32', 'bf16'] as const)
  t.test(
    `the loss falls over 30 steps on a synthetic batch (LoRA only, ${precision})`,
    async (t) => {
      const exported = await exportModel({
        config: 'test',
        lora: 'B',
        rank: 8,
        alpha: 16,
        dropout: 0,
        seed: 0,
        out: join(dir, `model-${precision}.pt`),
      });
      const module = await TorchModule.load(exported.out);
      t.teardown(() => module.dispose());
      const trained = trainedParameterNames(module, []);
      module.setRequiresGrad(/./, false);
      module.native.setRequiresGrad(trained, true);
      const batch = syntheticBatch(2, 128, exported.metadata.image_size, 7);
      const steps = 30;
      const trainer = binding().createTrainer(
        module.native,
        nativeTrainerOptions({
          lr: 5e-3,
          weightDecay: 0,
          warmup: 0,
          totalSteps: steps,
          gradAccum: 1,
          skeletonLoss: false,
          seed: 0,
          precision,
        }),
      );
      t.teardown(() => trainer.dispose());
      const losses: number[] = [];
      for (let i = 0; i < steps; i++) losses.push((await trainer.step(batch)).loss);
      const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
      const [first, last] = [mean(losses.slice(0, 5)), mean(losses.slice(-5))];
      t.ok(losses.every(Number.isFinite), 'every loss is finite');
      t.ok(last < 0.8 * first, `mean loss of the last 5 steps ${last} < 0.8 × first 5 ${first}`);
      t.ok(losses.at(-1)! < losses[0]!, `loss ${losses[0]} → ${losses.at(-1)}`);
    },
  );
