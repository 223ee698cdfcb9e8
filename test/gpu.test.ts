/**
 * CUDA checks (`npm run test:gpu` on a machine with a GPU; skipped where libtorch sees none):
 * bf16-weight predictions against fp32 on the CPU. The CUDA trainer case lives in
 * train-loss.test.ts; the CPU suite checks the same code paths against PyTorch.
 */
import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportModel } from '../ts/model/export.js';
import { loadModel } from '../ts/model/load.js';
import { predict } from '../ts/predict.js';
import { runtimeInfo } from '../ts/runtime.js';
import { synthesizeSample } from '../ts/synth/synthesize.js';
import { groundTruthBoxes } from '../ts/train/box-prompt.js';

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
