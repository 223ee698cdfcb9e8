import t from 'tap';
import { cpuMilliseconds } from './helpers/cpu-time.js';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readDataset, type Sample } from '../ts/data/dataset.js';
import { isCrackFree, synthesizeDataset, synthesizeSample } from '../ts/synth/synthesize.js';
import { connectedComponents } from '../ts/vision/components.js';

const options = { train: 12, val: 3, test: 2, width: 160, height: 96 };
let root: string;
t.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'crackseg-synth-'));
});
t.teardown(() => rm(root, { recursive: true, force: true }));

async function filesOf(dir: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) {
      const path = join(entry.parentPath, entry.name);
      files.set(path.slice(dir.length), await readFile(path));
    }
  }
  return files;
}

t.test(
  'Crack500 layout, and the same seed writes identical bytes; another seed differs',
  async (t) => {
    const [a, b, c] = ['a', 'b', 'c'].map((name) => join(root, name)) as [string, string, string];
    const summary = await synthesizeDataset({ ...options, out: a, seed: 42 });
    await synthesizeDataset({ ...options, out: b, seed: 42 });
    await synthesizeDataset({ ...options, out: c, seed: 43 });
    t.same(
      summary.splits.map((s) => [s.name, s.listFile, s.count, s.crackFree]),
      [
        ['train', 'train.txt', 12, 1],
        ['val', 'val.txt', 3, 0],
        ['test', 'test.txt', 2, 0],
      ],
    );
    const filesA = await filesOf(a);
    const filesB = await filesOf(b);
    const filesC = await filesOf(c);
    t.equal(filesA.size, 3 + 2 * (12 + 3 + 2));
    t.same([...filesA.keys()].sort(), [...filesB.keys()].sort());
    for (const [path, bytes] of filesA) t.ok(bytes.equals(filesB.get(path)!), `${path} identical`);
    const differing = [...filesA].filter(
      ([path, bytes]) => path.endsWith('.jpg') && !bytes.equals(filesC.get(path)!),
    );
    t.equal(differing.length, 12 + 3 + 2, 'every image differs under another seed');
    t.equal(
      await readFile(join(a, 'val.txt'), 'utf8'),
      'valcrop/val_0000.jpg valcrop/val_0000.png\nvalcrop/val_0001.jpg valcrop/val_0001.png\nvalcrop/val_0002.jpg valcrop/val_0002.png\n',
    );
  },
);

t.test('images look like cracked pavement and masks are the thin dark lines', async (t) => {
  const samples: Sample[] = [];
  for await (const s of readDataset({ root: join(root, 'a'), listFile: 'train.txt' }))
    samples.push(s);
  t.equal(samples.length, 12);
  for (const [k, { image, mask, id }] of samples.entries()) {
    const crackPixels = mask.data.reduce((sum, v) => sum + v, 0);
    if (isCrackFree(k, 0.125)) {
      t.equal(crackPixels, 0, `${id} is crack-free`);
      continue;
    }
    t.ok(crackPixels > 20, `${id}: mask has ${crackPixels} crack pixels`);
    t.ok(crackPixels < 0.15 * mask.data.length, `${id}: cracks are a small fraction`);
    let [crack, background] = [0, 0];
    for (let i = 0; i < mask.data.length; i++) {
      const grey = image.data[i * 3]! + image.data[i * 3 + 1]! + image.data[i * 3 + 2]!;
      if (mask.data[i]) crack += grey;
      else background += grey;
    }
    const [meanCrack, meanBackground] = [
      crack / crackPixels,
      background / (mask.data.length - crackPixels),
    ];
    t.ok(
      meanCrack < meanBackground,
      `${id}: cracks darker (${meanCrack / 3} vs ${meanBackground / 3})`,
    );
    // Thin: few crack pixels have all 8 neighbours... of an 8-px-wide crack only the interior does.
    const { stats } = connectedComponents(mask);
    for (const s of stats)
      t.ok(s.area < s.width * s.height, `${id}: component ${s.label} is not a filled block`);
  }
});

/** Erodes `steps` times with a 3x3 cross (the image border counts as background). */
function erode(mask: Uint8Array, width: number, height: number, steps: number): Uint8Array {
  let current = mask;
  for (let step = 0; step < steps; step++) {
    const next = new Uint8Array(current.length);
    for (let y = 1; y < height - 1; y++) {
      for (let x = 1; x < width - 1; x++) {
        const i = y * width + x;
        next[i] =
          current[i]! &
          current[i - 1]! &
          current[i + 1]! &
          current[i - width]! &
          current[i + width]!;
      }
    }
    current = next;
  }
  return current;
}

t.test('cracks are thin lines: at most 8 px wide except where they meet', async (t) => {
  // 4 erosions remove any line under 8 px wide; where a branch leaves its crack the two overlap for
  // a while, so a little may survive 4, but nothing survives 7.
  for (let seed = 0; seed < 10; seed++) {
    const { mask } = synthesizeSample(200, 120, seed, false);
    const count = (m: Uint8Array) => m.reduce((a, b) => a + b, 0);
    const area = count(mask.data);
    const survivors = count(erode(mask.data, 200, 120, 4));
    t.ok(
      survivors <= 0.1 * area,
      `seed ${seed}: ${survivors} of ${area} pixels survive 4 erosions`,
    );
    t.equal(count(erode(mask.data, 200, 120, 7)), 0, `seed ${seed}: none survive 7`);
  }
});

t.test('crack-free images are spread evenly through a split', async (t) => {
  t.same(
    Array.from({ length: 17 }, (_, k) => k).filter((k) => isCrackFree(k, 0.125)),
    [7, 15],
  );
});

t.test('a 640x360 sample is quick to draw', async (t) => {
  const perImage =
    cpuMilliseconds(() => {
      for (let seed = 0; seed < 5; seed++) synthesizeSample(640, 360, seed, false);
    }) / 5;
  t.ok(perImage < 250, `${perImage.toFixed(0)} CPU ms per image`);
});

t.test('a write failure rejects once, cleanly, and leaves no rejection unhandled', async (t) => {
  const out = join(root, 'blocked');
  await mkdir(out, { recursive: true });
  // The split folder is a file: every image write of the split fails.
  await writeFile(join(out, 'traincrop'), 'not a folder');
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  t.teardown(() => process.off('unhandledRejection', onUnhandled));
  await t.rejects(synthesizeDataset({ ...options, out }), { code: /EEXIST|ENOTDIR/ });
  // Give any stray rejection of the write window the time to surface.
  await new Promise((done) => setTimeout(done, 200));
  t.same(unhandled, [], 'no unhandled rejection');
});

t.test('an aborted signal stops between images with an AbortError', async (t) => {
  const controller = new AbortController();
  controller.abort();
  await t.rejects(
    synthesizeDataset({ ...options, out: join(root, 'aborted'), signal: controller.signal }),
    { name: 'AbortError' },
  );
  t.notOk(existsSync(join(root, 'aborted', 'train.txt')), 'no list file written');
});
