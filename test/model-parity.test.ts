// Issue 3.6: the exported model run from Node equals the Python eager model. The reference
// script (scripts/crackseg_sam2/tests/parity_reference.py) exports the `test` config with LoRA C
// and random non-zero lora_B, and writes the eager model's outputs for encode_image, decode
// (boxes, points, box + negative point; multimask true/false; with and without mask_input) and
// forward. Node runs the same calls through TorchModule.run and compares each output:
// max|a − b| ≤ 1e-5 · max(1, max|b|), b being the Python eager output.
import t from 'tap';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Dtype, Tensor, Value } from '../ts/binding.js';
import { TorchModule } from '../ts/torch-module.js';
import { runPython } from './helpers/python.js';

const TOLERANCE = 1e-5;

interface TensorSpec {
  file: string;
  dtype: Dtype;
  shape: number[];
}
type Input = TensorSpec | boolean | null;
interface Case {
  name: string;
  method: string;
  inputs: Input[];
  outputs: TensorSpec[];
}
interface Manifest {
  model: string;
  export: { config: string; lora: string };
  decision_margins: { stability: number; iou_top2: number };
  cases: Case[];
}

const dir = await mkdtemp(join(tmpdir(), 'crackseg-parity-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));
await runPython(
  new URL('../scripts/crackseg_sam2/tests/parity_reference.py', import.meta.url).pathname,
  [dir],
);
const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as Manifest;

async function load(spec: TensorSpec): Promise<Tensor> {
  const bytes = await readFile(join(dir, spec.file));
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  switch (spec.dtype) {
    case 'float32':
      return { data: new Float32Array(buffer), shape: spec.shape, dtype: 'float32' };
    case 'int64':
      return { data: new BigInt64Array(buffer), shape: spec.shape, dtype: 'int64' };
    case 'uint8':
      return { data: new Uint8Array(buffer), shape: spec.shape, dtype: 'uint8' };
    default:
      throw new Error(`unexpected dtype ${spec.dtype}`);
  }
}

async function inputs(c: Case): Promise<Value[]> {
  return Promise.all(c.inputs.map((v) => (v === null || typeof v === 'boolean' ? v : load(v))));
}

/** max|a − b| / max(1, max|b|). */
function relDiff(a: Float32Array, b: Float32Array): number {
  let diff = 0;
  let scale = 1;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return diff / scale;
}

async function compare(t: Tap.Test, c: Case, got: Value): Promise<number> {
  const outs = (c.outputs.length === 1 ? [got] : got) as Tensor[];
  t.equal(outs.length, c.outputs.length, `${c.name}: number of outputs`);
  let worst = 0;
  for (const [i, spec] of c.outputs.entries()) {
    const want = await load(spec);
    const out = outs[i]!;
    t.same(out.shape, spec.shape, `${c.name}: output ${i} shape`);
    t.equal(out.dtype, 'float32');
    worst = Math.max(worst, relDiff(out.data as Float32Array, want.data as Float32Array));
  }
  return worst;
}

const module = await TorchModule.load(join(dir, manifest.model));
t.teardown(() => module.dispose());

t.test('the reference is LoRA C with decisions far from their thresholds', async (t) => {
  t.equal(manifest.export.config, 'test');
  t.equal(manifest.export.lora, 'C');
  const lora = module.parameters().filter((p) => p.name.endsWith('lora_B'));
  t.equal(lora.length, 70);
  const b = (await module.getParameter(lora[0]!.name)).data as Float32Array;
  t.ok(
    b.some((v) => v !== 0),
    'lora_B is non-zero',
  );
  t.ok(manifest.decision_margins.stability > 1e-3 && manifest.decision_margins.iou_top2 > 1e-3);
  const methods = new Set(manifest.cases.map((c) => c.method));
  t.same([...methods].sort(), ['decode', 'encode_image', 'forward']);
  t.equal(manifest.cases.filter((c) => c.method === 'decode').length, 12);
});

t.test('Node outputs equal Python eager outputs (≤ 1e-5 relative)', async (t) => {
  for (const c of manifest.cases) {
    const got = await module.run(c.method, await inputs(c));
    const diff = await compare(t, c, got);
    t.ok(diff <= TOLERANCE, `${c.name}: relative difference ${diff.toExponential(2)}`);
  }
});

t.test('after merge_lora, decode still equals the unmerged eager model', async (t) => {
  await module.run('merge_lora', []);
  for (const c of manifest.cases.filter((c) => c.method === 'decode')) {
    const diff = await compare(t, c, await module.run(c.method, await inputs(c)));
    t.ok(diff <= TOLERANCE, `merged, ${c.name}: relative difference ${diff.toExponential(2)}`);
  }
  await module.run('unmerge_lora', []);
});
