import t from 'tap';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Tensor } from '../ts/binding.js';
import {
  decodeSafetensors,
  encodeSafetensors,
  readSafetensors,
  SafetensorsError,
  writeSafetensors,
} from '../ts/model/safetensors.js';
import { coded } from './helpers/errors.js';
import { runPython } from './helpers/python.js';

const dir = mkdtempSync(join(tmpdir(), 'crackseg-safetensors-'));
const reference = fileURLToPath(new URL('./reference/safetensors_reference.py', import.meta.url));

interface PythonView {
  metadata: Record<string, string>;
  tensors: Record<string, { dtype: string; shape: number[]; values: number[] }>;
}

// One tensor of every dtype; 16-bit floats as their bit patterns, worked out by hand.
const tensors: Record<string, Tensor> = {
  'sam_mask_decoder.transformer.layers.0.self_attn.q_proj.lora_A': {
    dtype: 'float32',
    shape: [2, 3],
    data: Float32Array.from([0.25, -1.5, 3, 1e-8, -0, 1e20]),
  },
  f64: { dtype: 'float64', shape: [2], data: Float64Array.from([Math.PI, -1e-300]) },
  // 0.5, -1, 65504 (largest half)
  f16: { dtype: 'float16', shape: [3], data: Uint16Array.from([0x3800, 0xbc00, 0x7bff]) },
  // 1, -2.5, 3.140625
  bf16: { dtype: 'bfloat16', shape: [3, 1], data: Uint16Array.from([0x3f80, 0xc020, 0x4049]) },
  i64: { dtype: 'int64', shape: [2], data: BigInt64Array.from([-(2n ** 40n), 7n]) },
  i32: { dtype: 'int32', shape: [1, 2], data: Int32Array.from([-3, 2 ** 31 - 1]) },
  u8: { dtype: 'uint8', shape: [4], data: Uint8Array.from([0, 1, 128, 255]) },
  flag: { dtype: 'bool', shape: [2], data: Uint8Array.from([1, 0]) },
  empty: { dtype: 'float32', shape: [0, 4], data: new Float32Array(0) },
};
const metadata = { format: 'crackseg-lora', metrics: '{"iou":0.5}' };

t.test('round trip in TS keeps dtype, shape, values and metadata', async (t) => {
  const path = join(dir, 'round.safetensors');
  await writeSafetensors(path, tensors, metadata);
  const back = await readSafetensors(path);
  t.same(back.metadata, metadata);
  t.same([...back.tensors.keys()].sort(), Object.keys(tensors).sort());
  for (const [name, tensor] of Object.entries(tensors)) {
    const read = back.tensors.get(name)!;
    t.equal(read.dtype, tensor.dtype, `${name} dtype`);
    t.same(read.shape, tensor.shape, `${name} shape`);
    t.same([...read.data], [...tensor.data], `${name} values`);
  }
  // The data section starts 8-byte aligned (header padded with spaces).
  const bytes = readFileSync(path);
  t.equal(Number(bytes.readBigUInt64LE(0)) % 8, 0);
});

t.test('Python (struct + numpy) reads what TS wrote', async (t) => {
  const path = join(dir, 'ts-written.safetensors');
  await writeSafetensors(path, tensors, metadata);
  const view = JSON.parse(await runPython(reference, ['read', path])) as PythonView;
  t.same(view.metadata, metadata);
  const dtypes = Object.fromEntries(Object.entries(view.tensors).map(([k, v]) => [k, v.dtype]));
  t.same(dtypes, {
    'sam_mask_decoder.transformer.layers.0.self_attn.q_proj.lora_A': 'F32',
    f64: 'F64',
    f16: 'F16',
    bf16: 'BF16',
    i64: 'I64',
    i32: 'I32',
    u8: 'U8',
    flag: 'BOOL',
    empty: 'F32',
  });
  t.same(view.tensors.f16!.values, [0.5, -1, 65504]);
  t.same(view.tensors.bf16!.values, [1, -2.5, 3.140625]);
  t.same(view.tensors.bf16!.shape, [3, 1]);
  t.same(view.tensors.i64!.values, [-(2 ** 40), 7]);
  t.same(view.tensors.i32!.values, [-3, 2 ** 31 - 1]);
  t.same(view.tensors.f64!.values, [Math.PI, -1e-300]);
  t.same(view.tensors.empty!.shape, [0, 4]);
  const f32 = view.tensors['sam_mask_decoder.transformer.layers.0.self_attn.q_proj.lora_A']!;
  t.same(f32.values, [
    ...tensors['sam_mask_decoder.transformer.layers.0.self_attn.q_proj.lora_A']!.data,
  ]);
});

t.test('TS reads what Python wrote (tensors out of name order)', async (t) => {
  const path = join(dir, 'py-written.safetensors');
  const expected = JSON.parse(await runPython(reference, ['write', path])) as PythonView;
  const read = await readSafetensors(path);
  t.same(read.metadata, { format: 'pt', note: 'written by numpy' });
  t.same([...read.tensors.keys()].sort(), Object.keys(expected.tensors).sort());
  t.same([...read.tensors.get('z.lora_B')!.data], [-1, -0.5, 0, 0.5, 1, 1.5]);
  t.equal(read.tensors.get('a.lora_A')!.dtype, 'float16');
  t.same([...read.tensors.get('a.lora_A')!.data], [0x3800, 0xbc00, 0x7bff]);
  t.same([...read.tensors.get('m.bf16')!.data], [0x3f80, 0xc020, 0x4049]);
  t.same([...read.tensors.get('i64')!.data], [-(2n ** 40n), 7n]);
  t.same([...read.tensors.get('flag')!.data], [1, 0]);
  t.equal(read.tensors.get('flag')!.dtype, 'bool');
  t.same(read.tensors.get('empty')!.shape, [0, 4]);
});

t.test('bad files are refused with errors naming the file', async (t) => {
  const good = encodeSafetensors(tensors, metadata);
  const write = (name: string, bytes: Uint8Array) => {
    const path = join(dir, name);
    writeFileSync(path, bytes);
    return path;
  };
  const truncated = write('truncated.safetensors', good.subarray(0, good.length - 3));
  await t.rejects(readSafetensors(truncated), {
    name: 'SafetensorsError',
    ...coded('safetensors'),
    message: new RegExp(`^${truncated.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: .*truncated`),
  });
  const tiny = write('tiny.safetensors', good.subarray(0, 5));
  await t.rejects(readSafetensors(tiny), {
    ...coded('safetensors'),
    message: /tiny\.safetensors: .*shorter/,
  });

  const hugeLength = Uint8Array.from(good);
  new DataView(hugeLength.buffer).setBigUint64(0, 1n << 40n, true);
  await t.rejects(readSafetensors(write('huge.safetensors', hugeLength)), {
    ...coded('safetensors'),
    message: /huge\.safetensors: .*header length/,
  });

  const garbled = Uint8Array.from(good);
  garbled[8] = 0x7b + 1; // '{' → '|'
  await t.rejects(readSafetensors(write('garbled.safetensors', garbled)), {
    ...coded('safetensors'),
    message: /garbled\.safetensors: .*JSON/,
  });

  const withHeader = (header: object, data = new Uint8Array(0)) => {
    const json = new TextEncoder().encode(JSON.stringify(header));
    const out = new Uint8Array(8 + json.length + data.length);
    new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
    out.set(json, 8);
    out.set(data, 8 + json.length);
    return out;
  };
  t.throws(
    () =>
      decodeSafetensors(withHeader({ x: { dtype: 'F8', shape: [1], data_offsets: [0, 1] } }), 'f8'),
    { ...coded('safetensors'), message: /^f8: .*unsupported dtype "F8"/ },
  );
  t.throws(
    () =>
      decodeSafetensors(
        withHeader({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 4] } }, new Uint8Array(4)),
        'short',
      ),
    { ...coded('safetensors'), message: /short: .*needs 8/ },
  );
  t.throws(
    () =>
      decodeSafetensors(
        withHeader(
          {
            x: { dtype: 'U8', shape: [2], data_offsets: [0, 2] },
            y: { dtype: 'U8', shape: [2], data_offsets: [1, 3] },
          },
          new Uint8Array(3),
        ),
        'overlap',
      ),
    { ...coded('safetensors'), message: /overlap: .*overlaps/ },
  );
  t.throws(
    () =>
      decodeSafetensors(
        withHeader({ x: { dtype: 'U8', shape: [2], data_offsets: [0, 2] } }, new Uint8Array(5)),
        'slack',
      ),
    { ...coded('safetensors'), message: /slack: .*5 bytes/ },
  );
  t.throws(() => decodeSafetensors(withHeader([1, 2]), 'array'), SafetensorsError);
  t.throws(() => decodeSafetensors(withHeader({ __metadata__: { a: 1 } }), 'meta'), {
    ...coded('safetensors'),
    message: /meta: .*__metadata__\.a/,
  });
  await t.rejects(readSafetensors(join(dir, 'missing.safetensors')), {
    message: /cannot read safetensors file '.*missing\.safetensors'/,
  });
});

t.test('the writer refuses inconsistent tensors', async (t) => {
  t.throws(
    () => encodeSafetensors({ x: { dtype: 'float32', shape: [3], data: new Float32Array(2) } }),
    { message: /'x': 2 elements for shape \[3\]/ },
  );
  t.throws(() => encodeSafetensors({}, { n: 3 as unknown as string }), {
    message: /metadata 'n' must be a string/,
  });
});
