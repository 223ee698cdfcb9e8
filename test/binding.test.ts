import { execFileSync } from 'node:child_process';
import t, { type Test } from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Dtype, DtypeArrays, Tensor } from '../ts/binding.js';
import { deviceMemory, resetPeakDeviceMemory, runtimeInfo, setThreads } from '../ts/runtime.js';
import { TorchModule } from '../ts/torch-module.js';
import { coded } from './helpers/errors.js';
import { runPython } from './helpers/python.js';

const dir = mkdtempSync(join(tmpdir(), 'crackseg-binding-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
await runPython(new URL('./fixtures/make_module.py', import.meta.url).pathname, [dir]);
const modulePath = join(dir, 'module.pt');
const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as {
  x: number[];
  forward: number[];
  pair: [number[], number[]];
  maybe_scale: number[];
  stack: [number[], number[]];
  weight: number[];
  metadata: unknown;
};
const x: Tensor<'float32'> = {
  data: Float32Array.from(expected.x),
  shape: [2, 3],
  dtype: 'float32',
};

function closeTo(t: Test, actual: ArrayLike<number>, wanted: number[], message: string): void {
  t.equal(actual.length, wanted.length, `${message}: length`);
  const worst = Math.max(0, ...wanted.map((w, i) => Math.abs(w - actual[i]!)));
  t.ok(worst <= 1e-6, `${message}: max |diff| ${worst} <= 1e-6`);
}

t.test('runtime info', async (t) => {
  const info = runtimeInfo();
  t.match(info.torchVersion, /^\d+\.\d+\.\d+/);
  t.ok(info.flavour === 'cpu' || info.flavour === 'cuda');
  t.equal(info.cudaDevices.length, info.cudaDeviceCount);
  const before = info.threads;
  setThreads(2);
  t.equal(runtimeInfo().threads, 2);
  setThreads(before);
  t.throws(() => setThreads(0), coded('range'));
  t.throws(() => setThreads(1.5), coded('range'));
  t.throws(() => setThreads('2' as never), coded('argument'));
  t.equal(deviceMemory('cpu'), null, 'no allocator statistics for the CPU');
  resetPeakDeviceMemory('cpu');
  t.throws(() => deviceMemory('gpu'), coded('range'));
  if (!info.cudaAvailable) t.throws(() => deviceMemory('cuda'), coded('device'));
});

t.test('libtorch allocates host memory through the caching allocator', async (t) => {
  // How this process runs TypeScript (tap's loader), for the processes it starts.
  const tsLoader = process.execArgv.filter((arg) => arg.includes('typescript'));
  const runtime = new URL('../ts/runtime.ts', import.meta.url).href;
  const binding = new URL('../ts/binding.ts', import.meta.url).href;
  // In a child, since the allocator is chosen at load: `body` runs with `host()` (the counts)
  // and `tensor(bytes)` (holds a float32 tensor of that many bytes, returns its handle).
  const child = (cacheMiB: string | undefined, body: string) => {
    const script = `
      const { runtimeInfo } = await import('${runtime}');
      const { binding } = await import('${binding}');
      const host = () => runtimeInfo().hostMemory;
      const tensor = (bytes) => binding().holdTensor(
        { data: new Float32Array(bytes / 4), shape: [bytes / 4], dtype: 'float32' });
      const release = (handle) => binding().releaseTensors([handle]);
      ${body}`;
    const env = { ...process.env };
    delete env.CRACKSEG_HOST_CACHE_MIB;
    if (cacheMiB !== undefined) env.CRACKSEG_HOST_CACHE_MIB = cacheMiB;
    return execFileSync(process.execPath, [...tsLoader, '--input-type=module', '-e', script], {
      env,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  };
  const counts = (cacheMiB: string | undefined, body: string) =>
    JSON.parse(child(cacheMiB, `${body}\nconsole.log(JSON.stringify(host()));`)) as {
      allocator: string;
      liveBytes: number;
      cachedBytes: number;
      cacheLimitBytes: number;
    };
  const MiB = 2 ** 20;
  t.same(
    counts(undefined, 'const kept = tensor(8 * 2 ** 20);'),
    { allocator: 'caching', liveBytes: 8 * MiB, cachedBytes: 0, cacheLimitBytes: 1024 * MiB },
    'a block of 64 KiB or more is mapped, the default limit 1 GiB',
  );
  t.same(
    counts(undefined, 'tensor(60 * 1024); tensor(1000);').liveBytes,
    0,
    'smaller blocks stay with malloc',
  );
  t.match(
    counts(undefined, 'release(tensor(8 * 2 ** 20)); const again = tensor(8 * 2 ** 20);'),
    { liveBytes: 8 * MiB, cachedBytes: 0 },
    'a freed block is reused by the next of its size',
  );
  t.match(
    counts('12', 'const a = tensor(8 * 2 ** 20), b = tensor(6 * 2 ** 20); release(a); release(b);'),
    { liveBytes: 0, cachedBytes: 8 * MiB, cacheLimitBytes: 12 * MiB },
    'beyond the limit a freed block is unmapped',
  );
  t.match(
    counts(
      undefined,
      'const [a, b, c] = [8, 8, 8].map((m) => tensor(m * 2 ** 20)); release(a); release(b);' +
        'const d = tensor(4 * 2 ** 20);',
    ),
    { liveBytes: 12 * MiB, cachedBytes: 8 * MiB },
    'a new block evicts cached ones until all stay within the most ever live (24 MiB)',
  );
  t.match(
    counts('system', 'tensor(8 * 2 ** 20);'),
    { allocator: 'system', liveBytes: 0 },
    "CRACKSEG_HOST_CACHE_MIB=system leaves libtorch's allocator in place",
  );
  t.throws(
    () => child('12MiB', 'host();'),
    /CRACKSEG_HOST_CACHE_MIB must be a whole number of MiB .* got '12MiB'/,
  );
});

t.test('convertTo casts floating parameters only, in place', async (t) => {
  const module = await TorchModule.load(modulePath);
  t.teardown(() => module.dispose());
  t.equal(module.dtype, 'float32');
  const before = (await module.getParameter('weight')).data as Float32Array;
  await module.convertTo('bfloat16');
  t.equal(module.dtype, 'bfloat16');
  t.same(
    module.parameters().map((p) => p.dtype),
    ['bfloat16', 'bfloat16', 'int64'],
  );
  // Each weight is its float32 value rounded to the nearest bf16 (ties to even).
  const rounded = [...before].map((v) => {
    const bits = new Uint32Array(Float32Array.of(v).buffer)[0]!;
    return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
  });
  t.same([...((await module.getParameter('weight')).data as Uint16Array)], rounded);
  await t.rejects(module.run('forward', [x]), coded('torch'), 'a float32 input is refused');
  await module.convertTo('float32');
  t.equal(module.dtype, 'float32');
  await t.rejects(module.convertTo('int8' as never), coded('dtype'));
});

t.test('loads methods and extra files; outputs equal Python', async (t) => {
  const module = await TorchModule.load(modulePath);
  t.teardown(() => module.dispose());
  t.same(module.methodNames.sort(), ['echo', 'forward', 'maybe_scale', 'pair', 'stack']);
  t.same(module.extraJson('metadata.json'), expected.metadata);
  t.equal(module.device, 'cpu');

  const forward = (await module.run('forward', [x])) as Tensor;
  t.same(forward.shape, [2, 4]);
  closeTo(t, forward.data as Float32Array, expected.forward, 'forward');

  const [scaled, sums] = (await module.run('pair', [x, 3, 0.5])) as [Tensor, Tensor];
  closeTo(t, scaled.data as Float32Array, expected.pair[0], 'pair[0]');
  closeTo(t, sums.data as Float32Array, expected.pair[1], 'pair[1]');

  const factor: Tensor<'float32'> = {
    data: new Float32Array([2, 2, 2]),
    shape: [3],
    dtype: 'float32',
  };
  const flipped = (await module.run('maybe_scale', [x, factor, true])) as Tensor;
  closeTo(t, flipped.data as Float32Array, expected.maybe_scale, 'Optional tensor + bool');
  const unscaled = (await module.run('maybe_scale', [x, null, false])) as Tensor;
  closeTo(t, unscaled.data as Float32Array, expected.x, 'None for an Optional');

  const doubled = { ...x, data: x.data.map((v) => v * 2) };
  const [stacked, mean] = (await module.run('stack', [[x, doubled]])) as Tensor[];
  t.same(stacked!.shape, [2, 2, 3]);
  closeTo(t, stacked!.data as Float32Array, expected.stack[0], 'List[Tensor] in and out');
  closeTo(t, mean!.data as Float32Array, expected.stack[1], 'list mean');
});

t.test('every dtype round-trips', async (t) => {
  const module = await TorchModule.load(modulePath);
  t.teardown(() => module.dispose());
  const samples: { [D in Dtype]: DtypeArrays[D] } = {
    float32: new Float32Array([1.5, -2.25, 3e-8, 6e7]),
    float64: new Float64Array([1 / 3, -1e300, 0, 5]),
    float16: new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0001]),
    bfloat16: new Uint16Array([0x3f80, 0xc040, 0x7f7f, 0x0080]),
    int32: new Int32Array([-2147483648, 0, 7, 2147483647]),
    int64: new BigInt64Array([-(2n ** 63n), 0n, 2n ** 53n + 1n, 2n ** 63n - 1n]),
    uint8: new Uint8Array([0, 1, 128, 255]),
    bool: new Uint8Array([1, 0, 0, 1]),
  };
  for (const dtype of Object.keys(samples) as Dtype[]) {
    const input = { data: samples[dtype], shape: [2, 2], dtype } as Tensor;
    const output = (await module.run('echo', [input])) as Tensor;
    t.equal(output.dtype, dtype, `${dtype}: dtype`);
    t.same(output.shape, [2, 2], `${dtype}: shape`);
    t.same(
      Array.from(output.data as ArrayLike<unknown>),
      Array.from(input.data as ArrayLike<unknown>),
      `${dtype}: values`,
    );
  }
});

t.test('parameters: list, read, write, requiresGrad by pattern', async (t) => {
  const module = await TorchModule.load(modulePath);
  t.teardown(() => module.dispose());
  t.same(
    module.parameters().map((p) => [p.name, p.shape, p.dtype]),
    [
      ['weight', [4, 3], 'float32'],
      ['bias', [4], 'float32'],
      ['counts', [3], 'int64'],
    ],
  );
  closeTo(
    t,
    (await module.getParameter('weight')).data as Float32Array,
    expected.weight,
    'weight read',
  );
  const zeros: Tensor<'float32'> = { data: new Float32Array(12), shape: [4, 3], dtype: 'float32' };
  await module.setParameter('weight', zeros);
  const out = (await module.run('forward', [x])) as Tensor;
  const bias = (await module.getParameter('bias')).data as Float32Array;
  closeTo(t, out.data as Float32Array, [...bias, ...bias].map(Math.tanh), 'forward after write');
  await t.rejects(module.setParameter('weight', { ...zeros, shape: [3, 4] }), coded('shape'));
  await t.rejects(module.setParameter('nope', zeros), coded('notFound'));
  await t.rejects(
    module.setParameter('weight', {
      data: new Float64Array(12),
      shape: [4, 3],
      dtype: 'float64',
    }),
    coded('dtype'),
  );
  await t.rejects(module.setRequiresGrad('counts', true), coded('dtype'));

  t.same(await module.setRequiresGrad(/^w/, false), ['weight']);
  t.same(
    module.parameters().map((p) => p.requiresGrad),
    [false, true, false],
  );
});

t.test('bad input is a clear error, never a crash', async (t) => {
  await t.rejects(
    TorchModule.load(join(dir, 'missing.pt')),
    /cannot read TorchScript file '.*missing\.pt'/,
  );
  const junk = join(dir, 'junk.pt');
  writeFileSync(junk, 'not a zip archive');
  await t.rejects(TorchModule.load(junk), {
    ...coded('torch'),
    message: /cannot load TorchScript file '.*junk\.pt'/,
  });
  await t.rejects(TorchModule.load(modulePath, { device: 'gpu' as 'cpu' }), coded('range'));
  if (!runtimeInfo().cudaAvailable) {
    await t.rejects(TorchModule.load(modulePath, { device: 'cuda:0' }), coded('device'));
  }

  const module = await TorchModule.load(modulePath);
  t.throws(() => module.run('nope', [x]), coded('notFound'));
  t.throws(
    () => module.run('forward', [{ ...x, dtype: 'int32' } as unknown as Tensor]),
    coded('argument'),
  );
  t.throws(() => module.run('forward', [{ ...x, shape: [4, 3] }]), coded('shape'));
  t.throws(
    () => module.run('forward', [{ ...x, dtype: 'complex64' } as unknown as Tensor]),
    coded('dtype'),
  );
  t.throws(() => module.run('forward', [3]), coded('argument'));
  t.throws(() => module.run('forward', [x, x]), coded('range'));
  t.throws(() => module.run('forward', []), coded('argument'));
  t.throws(() => module.run('pair', [x, 1.5, 0.5]), coded('range'));
  await t.rejects(module.run('forward', [{ ...x, shape: [6] }]), coded('torch'));
  await t.rejects(
    module
      .run('forward', [{ ...x, shape: [1, 2, 3] }])
      .then(() =>
        module.run('forward', [{ data: new Float32Array(4), shape: [2, 2], dtype: 'float32' }]),
      ),
    coded('torch'),
  );
  // Shapes whose element count overflows, or is absurd, are refused before any allocation.
  t.throws(
    () =>
      module.run('forward', [
        { data: new Float32Array(0), shape: [2 ** 32, 2 ** 32], dtype: 'float32' },
      ]),
    coded('shape'),
  );
  t.throws(
    () =>
      module.run('forward', [
        {
          data: new Float32Array(2),
          shape: [3n, 0x5555555555555556n] as unknown as number[],
          dtype: 'float32',
        },
      ]),
    coded('shape'),
  );
  t.throws(() => module.run('forward', [{ ...x, shape: [Number.NaN, 3] }]), coded('range'));
  t.throws(() => module.run('forward', [{ ...x, shape: [2 ** 64, 3] }]), coded('range'));
  const running = module.run('forward', [x]);
  module.dispose();
  await running; // a run in flight finishes after dispose
  t.throws(() => module.run('forward', [x]), coded('disposed'));
  t.throws(() => module.parameters(), coded('disposed'));
  t.throws(() => module.methodNames, coded('disposed'));
});

t.test('8 concurrent runs all return their own results', async (t) => {
  const module = await TorchModule.load(modulePath);
  t.teardown(() => module.dispose());
  const runs = Array.from({ length: 8 }, (_, k) =>
    module.run('pair', [x, k, 1]).then((out) => ({ k, out: out as Tensor[] })),
  );
  for (const { k, out } of await Promise.all(runs)) {
    closeTo(
      t,
      out[0]!.data as Float32Array,
      expected.x.map((v) => v * k),
      `run ${k}`,
    );
  }
});

t.test('memory stays flat over 5,000 runs', async (t) => {
  const module = await TorchModule.load(modulePath);
  t.teardown(() => module.dispose());
  const big: Tensor<'float32'> = {
    data: new Float32Array(64 * 3).fill(0.5),
    shape: [64, 3],
    dtype: 'float32',
  };
  for (let i = 0; i < 500; i++) await module.run('forward', [big]); // warm-up: allocator pools
  global.gc?.();
  const before = process.memoryUsage().rss;
  for (let i = 0; i < 5000; i++) await module.run('forward', [big]);
  global.gc?.();
  const after = process.memoryUsage().rss;
  t.ok(after < before * 1.1, `RSS ${before} → ${after} grows < 10%`);
});
