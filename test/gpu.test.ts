/**
 * CUDA checks (`npm run test:gpu` on a machine with a GPU; skipped where libtorch sees none):
 * bf16-weight predictions against fp32 on the CPU, the bf16 trainer with fp32 masters, and the
 * device memory statistics. The CPU suite checks the same code paths against PyTorch.
 */
import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { binding } from '../ts/binding.js';
import { exportModel } from '../ts/model/export.js';
import { loadModel } from '../ts/model/load.js';
import { predict } from '../ts/predict.js';
import { deviceMemory, resetPeakDeviceMemory, runtimeInfo } from '../ts/runtime.js';
import { synthesizeSample } from '../ts/synth/synthesize.js';
import { trainedParameterNames } from '../ts/train/adapter.js';
import { syntheticBatch } from '../ts/train/batches.js';
import { groundTruthBoxes } from '../ts/train/box-prompt.js';
import { nativeTrainerOptions } from '../ts/train/train.js';

const cuda = runtimeInfo().cudaAvailable;
if (!cuda) t.comment('no CUDA device: the GPU checks are skipped');
const skip = cuda ? false : 'no CUDA device';

const dir = await mkdtemp(join(tmpdir(), 'crackseg-gpu-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));

t.test('bf16 weights on CUDA predict nearly the masks of fp32 on the CPU', { skip }, async (t) => {
  const exported = await exportModel({ config: 'test', seed: 3, out: join(dir, 'p.pt') });
  const [gpu, cpu] = await Promise.all([
    loadModel({ path: exported.out, device: 'cuda' }),
    loadModel({ path: exported.out, device: 'cpu' }),
  ]);
  t.teardown(() => [gpu, cpu].forEach((m) => m.module.dispose()));
  t.equal(gpu.precision, 'bf16', 'bf16 by default on CUDA');
  t.equal(gpu.module.dtype, 'bfloat16');
  const samples = [0, 1, 2, 3].map((k) => synthesizeSample(320, 240, 40 + k, false));
  const images = samples.map((s) => s.image);
  const prompts = samples.map((s) => groundTruthBoxes(s.mask));
  const [onGpu, onCpu] = await Promise.all([
    predict(gpu, images, prompts, { probabilities: true }),
    predict(cpu, images, prompts),
  ]);
  let agree = 0;
  let total = 0;
  onGpu.forEach((p, i) => {
    total += p.mask.data.length;
    agree += p.mask.data.filter((v, k) => v === onCpu[i]!.mask.data[k]).length;
  });
  t.ok(agree / total >= 0.95, `masks agree on ${((100 * agree) / total).toFixed(2)}%`);
});

t.test(
  'the bf16 trainer on CUDA: loss falls, masters fp32, memory reported',
  { skip },
  async (t) => {
    const exported = await exportModel({ config: 'test', lora: 'B', out: join(dir, 't.pt') });
    const model = await loadModel({ path: exported.out, device: 'cuda', precision: 'fp32' });
    t.teardown(() => model.module.dispose());
    const { module } = model;
    const trained = trainedParameterNames(module, []);
    module.setRequiresGrad(/./, false);
    module.native.setRequiresGrad(trained, true);
    resetPeakDeviceMemory(model.device);
    const steps = 30;
    const trainer = binding().createTrainer(
      module.native,
      nativeTrainerOptions({
        lr: 5e-3,
        weightDecay: 0,
        warmup: 0,
        totalSteps: steps,
        gradAccum: 1,
        skeletonLoss: true,
        seed: 0,
        precision: 'bf16',
      }),
    );
    t.teardown(() => trainer.dispose());
    t.equal(module.dtype, 'bfloat16', 'the trainer cast the model');
    const batch = syntheticBatch(2, 128, model.imageSize, 7);
    // All steps queued at once: the trainer runs them in order.
    const results = await Promise.all(Array.from({ length: steps }, () => trainer.step(batch)));
    const losses = results.map((r) => r.loss);
    t.ok(losses.every(Number.isFinite), 'every loss is finite');
    t.ok(losses.at(-1)! < 0.8 * losses[0]!, `loss ${losses[0]} → ${losses.at(-1)}`);
    t.same(
      results.map((r) => r.optimizerSteps),
      results.map((_, i) => i + 1),
      'steps resolved in order',
    );
    const weights = await trainer.weights();
    t.equal(weights[trained[0]!]!.dtype, 'float32', 'masters are fp32');
    const memory = deviceMemory(model.device)!;
    t.ok(memory.peakAllocatedBytes > 0, `peak allocated ${memory.peakAllocatedBytes} bytes`);
    t.ok(memory.peakReservedBytes >= memory.peakAllocatedBytes, 'reserved ≥ allocated');
    t.equal(deviceMemory('cpu'), null, 'no device statistics for the CPU');
  },
);
