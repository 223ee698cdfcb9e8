import t from 'tap';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { readDataset, type Sample } from '../ts/data/dataset.js';
import { parseListFile } from '../ts/data/list-file.js';
import { coded } from './helpers/errors.js';

t.test('list files: BOM, CRLF, comments, blank lines, tabs and runs of spaces', async (t) => {
  const text =
    '\uFEFF# Crack500 test split\r\na/1.jpg b/1.png\r\n\r\n  a/2.jpg \t  b/2.png  \r\n\t# indented comment\na/3.jpg\tb/3.png';
  const { entries, problems } = parseListFile(text);
  t.same(problems, []);
  t.same(entries, [
    { line: 2, id: '1', imagePath: 'a/1.jpg', maskPath: 'b/1.png' },
    { line: 4, id: '2', imagePath: 'a/2.jpg', maskPath: 'b/2.png' },
    { line: 6, id: '3', imagePath: 'a/3.jpg', maskPath: 'b/3.png' },
  ]);
});

t.test(
  'list files: wrong field counts and repeated ids are problems with their line',
  async (t) => {
    const { entries, problems } = parseListFile(
      'x/1.jpg x/1.png\nonly_one.jpg\na b c\ny/1.jpg y/1.png\n',
    );
    t.same(
      entries.map((e) => e.line),
      [1],
    );
    t.same(problems, [
      {
        line: 2,
        text: 'only_one.jpg',
        kind: 'malformed line',
        reason: "expected 'image_path mask_path', found 1 field(s)",
      },
      {
        line: 3,
        text: 'a b c',
        kind: 'malformed line',
        reason: "expected 'image_path mask_path', found 3 field(s)",
      },
      {
        line: 4,
        text: 'y/1.jpg y/1.png',
        kind: 'duplicate id',
        reason: "duplicate id '1' (first on line 1)",
      },
    ]);
  },
);

const rgb = (w: number, h: number, value: number) =>
  sharp(new Uint8Array(w * h * 3).fill(value), { raw: { width: w, height: h, channels: 3 } });
const grey = (w: number, h: number, data: Uint8Array) =>
  sharp(data, { raw: { width: w, height: h, channels: 1 } })
    .png()
    .toBuffer();

let root: string;
t.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'crackseg-data-'));
  // Crack500 keeps images and masks side by side; other sets use sibling folders. Both resolve as written.
  await mkdir(join(root, 'testcrop'));
  await mkdir(join(root, 'masks'));
  for (let k = 0; k < 6; k++) {
    await writeFile(
      join(root, 'testcrop', `s${k}.jpg`),
      await rgb(4, 3, 40 * k)
        .jpeg()
        .toBuffer(),
    );
    await writeFile(
      join(root, 'testcrop', `s${k}.png`),
      await grey(4, 3, new Uint8Array(12).fill(k % 2 ? 255 : 0)),
    );
  }
  await writeFile(join(root, 'masks', 'small.png'), await grey(3, 3, new Uint8Array(9)));
  await writeFile(join(root, 'testcrop', 'corrupt.jpg'), 'not a jpeg');
  const line = (k: number) => `testcrop/s${k}.jpg testcrop/s${k}.png`;
  await writeFile(join(root, 'good.txt'), [0, 1, 2, 3, 4, 5].map(line).join('\n'));
  await writeFile(
    join(root, 'bad.txt'),
    [
      line(0),
      'testcrop/s1.jpg masks/small.png',
      'testcrop/missing.jpg testcrop/s2.png',
      'testcrop/corrupt.jpg testcrop/s3.png',
      'testcrop/s4.jpg',
      line(5),
    ].join('\n'),
  );
});
t.teardown(() => rm(root, { recursive: true, force: true }));

async function collect(iterable: AsyncIterable<Sample>): Promise<Sample[]> {
  const samples: Sample[] = [];
  for await (const sample of iterable) samples.push(sample);
  return samples;
}

t.test('reads every sample in list order, images RGB and masks 0/1', async (t) => {
  const dataset = readDataset({ root, listFile: 'good.txt', concurrency: 3 });
  const samples = await collect(dataset);
  t.same(
    samples.map((s) => [s.index, s.id, s.line, s.imagePath, s.maskPath]),
    [
      [0, 's0', 1, 'testcrop/s0.jpg', 'testcrop/s0.png'],
      [1, 's1', 2, 'testcrop/s1.jpg', 'testcrop/s1.png'],
      [2, 's2', 3, 'testcrop/s2.jpg', 'testcrop/s2.png'],
      [3, 's3', 4, 'testcrop/s3.jpg', 'testcrop/s3.png'],
      [4, 's4', 5, 'testcrop/s4.jpg', 'testcrop/s4.png'],
      [5, 's5', 6, 'testcrop/s5.jpg', 'testcrop/s5.png'],
    ],
  );
  const sample = samples[3]!;
  t.same([sample.image.width, sample.image.height, sample.image.data.length], [4, 3, 36]);
  t.ok(Math.abs(sample.image.data[0]! - 120) <= 2);
  t.same([...sample.mask.data], new Array(12).fill(1));
  t.same([...samples[2]!.mask.data], new Array(12).fill(0));
  t.same(dataset.skipped, []);
});

t.test('without skipBad, a malformed line fails up front naming file and line', async (t) => {
  await t.rejects(collect(readDataset({ root, listFile: 'bad.txt' })), {
    ...coded('dataset'),
    message: "bad.txt:5: expected 'image_path mask_path', found 1 field(s)",
  });
});

t.test('without skipBad, bad files fail in turn naming file, line and path', async (t) => {
  await writeFile(
    join(root, 'size.txt'),
    'testcrop/s0.jpg testcrop/s0.png\ntestcrop/s1.jpg masks/small.png\n',
  );
  await t.rejects(collect(readDataset({ root, listFile: 'size.txt' })), {
    ...coded('dataset'),
    message: "size.txt:2: mask 'masks/small.png' is 3x3 but image 'testcrop/s1.jpg' is 4x3",
  });
  await writeFile(join(root, 'missing.txt'), 'testcrop/missing.jpg testcrop/s2.png\n');
  await t.rejects(collect(readDataset({ root, listFile: 'missing.txt' })), {
    ...coded('dataset'),
    message: /^missing\.txt:1: cannot read image 'testcrop\/missing\.jpg': .*ENOENT/,
  });
  await writeFile(join(root, 'corrupt.txt'), '\n# header\ntestcrop/corrupt.jpg testcrop/s3.png\n');
  await t.rejects(collect(readDataset({ root, listFile: 'corrupt.txt' })), {
    ...coded('dataset'),
    message: /^corrupt\.txt:3: cannot decode image 'testcrop\/corrupt\.jpg': /,
  });
  await t.rejects(collect(readDataset({ root, listFile: 'absent.txt' })), { code: 'ENOENT' });
});

t.test('with skipBad, bad lines and files are recorded and the rest is read', async (t) => {
  const dataset = readDataset({ root, listFile: 'bad.txt', skipBad: true, concurrency: 2 });
  const samples = await collect(dataset);
  t.same(
    samples.map((s) => [s.index, s.id]),
    [
      [0, 's0'],
      [4, 's5'],
    ],
  );
  t.same(
    dataset.skipped.map((s) => [s.listFile, s.line, s.path, s.id, s.category]),
    [
      ['bad.txt', 5, 'testcrop/s4.jpg', null, 'malformed line'],
      ['bad.txt', 2, 'masks/small.png', 's1', 'size mismatch'],
      ['bad.txt', 3, 'testcrop/missing.jpg', 'missing', 'missing file'],
      ['bad.txt', 4, 'testcrop/corrupt.jpg', 'corrupt', 'cannot decode image'],
    ],
  );
  t.match(dataset.skipped[1]!.reason, /is 3x3 but image/);
  t.match(dataset.skipped[2]!.reason, /^cannot read image/);
  t.match(dataset.skipped[3]!.reason, /^cannot decode image/);
});

t.test('concurrency is bounded, reads run ahead only by the window, order is kept', async (t) => {
  // Ids must be unique, so each line names its own image; the fake reader maps it to a real file.
  const list = Array.from(
    { length: 20 },
    (_, k) => `testcrop/s${k % 6}_${k}.jpg testcrop/s${k % 6}.png`,
  );
  const text = list.join('\n');
  let inFlight = 0;
  let maxInFlight = 0;
  let started = 0;
  const delays = [5, 1, 9, 3, 0, 7, 2];
  const fakeRead = async (path: string) => {
    if (path.endsWith('list.txt')) return new TextEncoder().encode(text);
    started++;
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    await new Promise((resolve) => setTimeout(resolve, delays[started % delays.length]));
    inFlight--;
    return readFile(path.replace(/_\d+\.jpg$/, '.jpg'));
  };
  const concurrency = 3;
  const iterator = readDataset({ root, listFile: 'list.txt', concurrency, readFile: fakeRead })[
    Symbol.asyncIterator
  ]();
  const first = await iterator.next();
  t.equal(first.done, false);
  await new Promise((resolve) => setTimeout(resolve, 50));
  // One sample held by the consumer plus `concurrency` prefetched, two files each.
  t.ok(started <= 2 * (concurrency + 1), `started ${started} reads while the consumer waits`);
  const ids = [(first.value as Sample).imagePath];
  for (let r = await iterator.next(); !r.done; r = await iterator.next())
    ids.push(r.value.imagePath);
  t.same(
    ids,
    list.map((l) => l.split(' ')[0]),
  );
  t.ok(maxInFlight <= 2 * concurrency, `at most ${maxInFlight} reads in flight`);
  t.ok(maxInFlight > 2, 'reads do overlap');
});
