import t from 'tap';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findPrebuilds, loadBinding, torchTag } from '../ts/binding.js';

const platformDir = `${process.platform}-${process.arch}`;
const scratch = mkdtempSync(join(tmpdir(), 'crackseg-loader-'));
t.teardown(() => rmSync(scratch, { recursive: true, force: true }));

function fakePackage(files: string[]): string {
  const root = mkdtempSync(join(scratch, 'package-'));
  mkdirSync(join(root, 'prebuilds', platformDir), { recursive: true });
  for (const file of files)
    writeFileSync(join(root, 'prebuilds', platformDir, file), 'not an ELF file');
  return root;
}

t.test('the torch tag spells flavour and version without dots', async (t) => {
  t.equal(torchTag('cuda', '2.11.0+cu130'), 'torch-cuda-2_11_0_cu130');
  t.equal(torchTag('cpu', '1.13.0'), 'torch-cpu-1_13_0');
});

t.test('prebuilds are read from their tags, CUDA first unless told otherwise', async (t) => {
  const root = fakePackage([
    'crackseg.napi.glibc.torch-cpu-1_13_0.node',
    'crackseg.napi.glibc.torch-cuda-2_11_0.node',
    'crackseg.napi.glibc.node', // untagged: no libtorch named, never loaded
    'crackseg.abi1.torch-cpu-1_13_0.node', // another Node ABI
  ]);
  const found = findPrebuilds(root, {});
  t.same(
    found.map((p) => [p.flavour, p.torchVersion]),
    [
      ['cuda', '2.11.0'],
      ['cpu', '1.13.0'],
    ],
  );
  t.same(
    findPrebuilds(root, { CRACKSEG_TORCH_FLAVOUR: 'cpu' }).map((p) => p.flavour),
    ['cpu', 'cuda'],
  );
});

t.test('a prebuild that cannot load: the error names its libtorch and how to build', async (t) => {
  const root = fakePackage(['crackseg.napi.glibc.torch-cuda-2_11_0.node']);
  t.throws(
    () => loadBinding(root),
    /crackseg\.napi\.glibc\.torch-cuda-2_11_0\.node needs libtorch 2\.11\.0 \(cuda\)[^]*npm run build:native/,
  );
});

t.test('nothing to load: says so', async (t) => {
  const root = mkdtempSync(join(scratch, 'empty-'));
  t.throws(() => loadBinding(root), /no build\/Release\/crackseg\.node and no prebuild/);
});

t.test('a prebuild whose binary reports another libtorch than its tag is refused', async (t) => {
  const root = fakePackage([]);
  const built = new URL('../build/Release/crackseg.node', import.meta.url).pathname;
  copyFileSync(
    built,
    join(root, 'prebuilds', platformDir, 'crackseg.napi.glibc.torch-cuda-9_9_9.node'),
  );
  t.throws(() => loadBinding(root), /needs libtorch 9\.9\.9 \(cuda\)[^]*it reports libtorch \d/);
});
