/**
 * `crackseg check-data` on a hand-made dataset with injected faults: a missing mask, a colour
 * mask, a 0/1 mask, an empty mask, a size mismatch and a malformed line; the counts, codings and
 * component areas worked out by hand, the table, --json and the exit status.
 */
import t from 'tap';
import { Command } from 'commander';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { formatCheck, register } from '../ts/cli/check-data.js';
import { checkData, type DataCheck } from '../ts/data/check.js';

const dir = await mkdtemp(join(tmpdir(), 'crackseg-check-data-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));
const root = join(dir, 'data');
await mkdir(join(root, 'crops'), { recursive: true });

const W = 20;
const H = 10;
/** A grey PNG of `W × H` (or another size) whose pixel values `value(x, y)` gives. */
async function grey(name: string, value: (x: number, y: number) => number, w = W, h = H) {
  const pixels = Uint8Array.from({ length: w * h }, (_, i) => value(i % w, Math.floor(i / w)));
  await sharp(pixels, { raw: { width: w, height: h, channels: 1 } })
    .toColourspace('b-w')
    .png()
    .toFile(join(root, 'crops', name));
}
const inRect = (x: number, y: number, x0: number, y0: number, x1: number, y1: number) =>
  x >= x0 && x <= x1 && y >= y0 && y <= y1;
// Two cracks: 4 × 3 = 12 pixels and 2 × 2 = 4 pixels (below the prompt minimum of 10).
const twoCracks = (x: number, y: number) =>
  inRect(x, y, 1, 1, 4, 3) || inRect(x, y, 10, 6, 11, 7) ? 255 : 0;

for (const id of ['a', 'b', 'c', 'd', 'e', 'f']) await grey(`${id}.png.jpg`, () => 128);
await grey('a.png', twoCracks); // 0/255, two components
await grey('c.png', (x, y) => (inRect(x, y, 0, 0, 19, 1) ? 1 : 0)); // 0/1: one 20 × 2 crack
await grey('d.png', () => 0); // empty
await grey('f.png', twoCracks, 10, 10); // 10 × 10: not the image's size
// e: red cracks on black, a colour mask.
const rgb = Uint8Array.from({ length: W * H * 3 }, (_, i) =>
  i % 3 === 0 && twoCracks(Math.floor(i / 3) % W, Math.floor(i / 3 / W)) ? 255 : 0,
);
await sharp(rgb, { raw: { width: W, height: H, channels: 3 } })
  .png()
  .toFile(join(root, 'crops', 'e.png'));
// b's mask is missing.
const list = join(root, 'test.txt');
await writeFile(
  list,
  [
    'crops/a.png.jpg crops/a.png',
    'crops/b.png.jpg crops/b.png',
    'crops/c.png.jpg crops/c.png',
    'crops/d.png.jpg crops/d.png',
    'crops/e.png.jpg crops/e.png',
    'crops/f.png.jpg crops/f.png',
    'one field only',
    '',
  ].join('\n'),
);

t.test('the report, by hand', async (t) => {
  const check = await checkData(root, [list]);
  const [report] = check.lists;
  t.match(report, {
    entries: 6,
    pairs: 4, // a, c, d, e (the colour mask decodes; it is an error all the same)
    missingImages: 0,
    missingMasks: 1,
    unreadable: 0,
    sizeMismatches: 1,
    sizes: { '20x10': 4 },
    maskCoding: { '0/255': 2, '0/1': 1, empty: 1, colour: 1 },
    emptyMasks: 2, // d, and e decoded (red 255 → grey 76, under half)
  });
  // a: 12 and 4 pixels; c: 40; e (its grey level: red 255 → 76, under half): no crack.
  t.same(report!.components, {
    total: 3,
    perImage: { min: 0, median: 0, max: 2 },
    area: { min: 4, median: 12, max: 40 },
    belowMinArea: 1,
  });
  const lines = (severity: string) =>
    check.findings.filter((f) => f.severity === severity).map((f) => [f.line, f.message]);
  t.same(lines('error'), [
    [7, "malformed line: expected 'image_path mask_path', found 3 field(s)"],
    [2, "missing mask 'crops/b.png'"],
    [
      5,
      "mask 'crops/e.png' is in colour (its channels disagree): training and evaluation refuse it " +
        'unless --mask-rule says how to read it; counted here by its grey level',
    ],
    [6, 'image 20x10 but mask 10x10'],
  ]);
  t.same(lines('warning'), [[3, "mask 'crops/c.png' is coded 0/1"]]);
  t.equal(check.errors, 4);
  t.equal(check.warnings, 1);
  t.ok(check.findings.every((f) => f.listFile === list));

  const text = formatCheck(check);
  t.match(text, /^pairs found\s+4$/m);
  t.match(text, /^missing masks\s+1$/m);
  t.match(text, /^mask coding\s+0\/255 ×2, 0\/1 ×1, empty ×1, colour ×1$/m);
  t.match(text, /^area px \(min\/median\/max\)\s+4 \/ 12 \/ 40$/m);
  t.match(text, new RegExp(`${list}:2: missing mask 'crops/b.png'`));
  t.match(text, /4 error\(s\): fix them before a run/);
});

async function cli(...args: string[]): Promise<{ output: string; exitCode: number }> {
  const program = new Command().exitOverride();
  register(program);
  const lines: string[] = [];
  const log = console.log;
  console.log = (...m: unknown[]) => void lines.push(m.join(' '));
  const before = process.exitCode;
  process.exitCode = 0;
  try {
    await program.parseAsync(['node', 'crackseg', 'check-data', ...args]);
    return { output: lines.join('\n'), exitCode: Number(process.exitCode ?? 0) };
  } finally {
    console.log = log;
    process.exitCode = before;
  }
}

t.test('the command: exit 1 on errors, 0 without; --json; default lists', async (t) => {
  const bad = await cli('--data-root', root, '--json');
  t.equal(bad.exitCode, 1);
  const parsed = JSON.parse(bad.output) as DataCheck;
  t.equal(parsed.errors, 4);
  t.equal(parsed.lists[0]!.listFile, list, 'test.txt found in the data root');

  const good = join(root, 'good.txt');
  await writeFile(good, 'crops/a.png.jpg crops/a.png\ncrops/c.png.jpg crops/c.png\n');
  const fine = await cli('--data-root', root, '--list', good);
  t.equal(fine.exitCode, 0, 'a warning is no error');
  t.match(fine.output, /no errors/);

  const empty = join(dir, 'nothing');
  await mkdir(empty);
  await t.rejects(cli('--data-root', empty), /has none of train.txt, val.txt, test.txt/);
});
