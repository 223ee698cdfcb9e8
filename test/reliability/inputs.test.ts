/**
 * Bad inputs (issue 15, items 6, 8 and 13): colour masks whose channels disagree, images above the
 * pixel limit, safetensors files whose header lies, a list file that is a directory. Each row is
 * a bad input and the error it must give, naming the file.
 */
import t from 'tap';
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32, deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { parseMaskRule } from '../../ts/cli/options.js';
import { readDataset, type Sample } from '../../ts/data/dataset.js';
import type { DecodeOptions } from '../../ts/data/decode.js';
import { DEFAULT_MAX_PIXELS } from '../../ts/data/pixel-limit.js';
import { readSafetensors } from '../../ts/model/safetensors.js';

async function tempDir(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'crackseg-inputs-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A one-line dataset: `img/a.png` and the given mask file bytes as `mask/a.<ext>`. */
async function dataset(dir: string, image: Uint8Array, mask: Uint8Array, ext = 'png') {
  await mkdir(join(dir, 'img'), { recursive: true });
  await mkdir(join(dir, 'mask'), { recursive: true });
  await writeFile(join(dir, 'img', 'a.png'), image);
  await writeFile(join(dir, 'mask', `a.${ext}`), mask);
  await writeFile(join(dir, 'list.txt'), `# header\nimg/a.png mask/a.${ext}\n`);
}

async function readAll(dir: string, decode?: DecodeOptions): Promise<Sample[]> {
  const samples: Sample[] = [];
  for await (const s of readDataset({
    root: dir,
    listFile: 'list.txt',
    ...(decode ? { decode } : {}),
  }))
    samples.push(s);
  return samples;
}

const W = 4;
const H = 2;
const png = (channels: 1 | 3, data: number[]) =>
  sharp(Uint8Array.from(data), { raw: { width: W, height: H, channels } })
    .png()
    .toBuffer();
/** W×H RGB pixels: `crack` at the first three pixels of row 0, black elsewhere. */
const colourMask = (crack: [number, number, number]) =>
  png(3, Array.from({ length: W * H }, (_, i) => (i < 3 ? crack : [0, 0, 0])).flat());
const CRACK = [1, 1, 1, 0, 0, 0, 0, 0];
const NONE = [0, 0, 0, 0, 0, 0, 0, 0];

t.test('colour masks: channels that disagree are an error unless a rule is chosen', async (t) => {
  const image = await png(3, new Array<number>(W * H * 3).fill(90));
  // [crack colour, rule, expected mask or error]: any = max channel > 127, all = min channel
  // > 127, luma = grey level (red: 0.2126·255 ≈ 54 in Rec. 709, 76 in Rec. 601: both ≤ 127).
  const table: Array<[[number, number, number], DecodeOptions['maskRule'], number[] | RegExp]> = [
    [[255, 0, 0], undefined, /channels disagree: pixel \(0, 0\) is \(255, 0, 0\)/],
    [[255, 0, 0], 'strict', /choose how to read colour masks with --mask-rule/],
    [[255, 0, 0], 'any', CRACK],
    [[255, 0, 0], 'all', NONE],
    [[255, 0, 0], 'luma', NONE],
    [[200, 100, 0], undefined, /pixel \(0, 0\) is \(200, 100, 0\)/],
    [[200, 100, 0], 'any', CRACK],
    [[200, 200, 130], 'strict', CRACK], // every channel above 127: they agree
    [[255, 255, 255], undefined, CRACK],
    [[255, 255, 255], 'all', CRACK],
    [[1, 1, 1], undefined, CRACK], // 0/1-coded, stored as RGB
    [[1, 0, 0], undefined, /pixel \(0, 0\) is \(1, 0, 0\)/],
    [[1, 0, 0], 'any', CRACK],
  ];
  for (const [crack, rule, expected] of table) {
    const dir = await tempDir(t);
    await dataset(dir, image, await colourMask(crack));
    const decode = rule ? { maskRule: rule } : undefined;
    const label = `(${crack.join(', ')}) under ${rule ?? 'the default'}`;
    if (expected instanceof RegExp) {
      await t.rejects(
        readAll(dir, decode),
        {
          name: 'DatasetError',
          code: 'ERR_CRACKSEG_DATASET',
          message: /^list\.txt:2: cannot decode mask 'mask\/a\.png': /,
        },
        label,
      );
      await t.rejects(readAll(dir, decode), { message: expected }, label);
    } else {
      const [sample] = await readAll(dir, decode);
      t.same([...sample!.mask.data], expected, label);
    }
  }
});

t.test('--mask-rule: the four rules, anything else refused', async (t) => {
  for (const rule of ['strict', 'any', 'all', 'luma']) t.equal(parseMaskRule(rule), rule);
  for (const bad of ['', 'ANY', 'red', 'strict ']) {
    t.throws(() => parseMaskRule(bad), { message: 'expected strict, any, all, luma' }, bad);
  }
});

t.test('colour masks: an unknown rule is refused', async (t) => {
  const dir = await tempDir(t);
  await dataset(dir, await png(3, new Array<number>(24).fill(0)), await colourMask([255, 0, 0]));
  await t.rejects(readAll(dir, { maskRule: 'red' as 'any' }), {
    message: /maskRule must be one of strict, any, all, luma, got 'red'/,
  });
});

function pngChunk(type: string, data: Buffer): Buffer {
  const chunk = Buffer.alloc(12 + data.length);
  chunk.writeUInt32BE(data.length, 0);
  chunk.write(type, 4, 'latin1');
  data.copy(chunk, 8);
  chunk.writeUInt32BE(crc32(Buffer.concat([Buffer.from(type, 'latin1'), data])), 8 + data.length);
  return chunk;
}

/**
 * The start of an 8-bit grey PNG of width × height: its header and first row only (a full file
 * would be a few hundred KB of deflated zeros; the size check must not need more).
 */
function pngStart(width: number, height: number): Uint8Array {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 0, 0, 0, 0], 8); // 8-bit grey, deflate, no filter, no interlace
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', deflateSync(Buffer.alloc(width + 1))),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

/** An uncompressed 24-bit bottom-up BMP of `width` × `height` grey pixels. */
function bmp(width: number, height: number): Uint8Array {
  const stride = Math.ceil((width * 3) / 4) * 4;
  const bytes = new Uint8Array(54 + stride * height).fill(128);
  const view = new DataView(bytes.buffer);
  bytes.set([0x42, 0x4d]);
  view.setUint32(2, bytes.length, true);
  view.setUint32(10, 54, true);
  view.setUint32(14, 40, true);
  view.setInt32(18, width, true);
  view.setInt32(22, height, true);
  view.setUint16(26, 1, true);
  view.setUint16(28, 24, true);
  view.setUint32(30, 0, true);
  return bytes;
}

t.test('pixel limit: refused from the header, naming the file and its size', async (t) => {
  const small = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#777' } })
    .png()
    .toBuffer();
  const smallMask = await sharp({
    create: { width: 64, height: 64, channels: 3, background: '#000' },
  })
    .png()
    .toBuffer();
  const huge = pngStart(12000, 12000);
  t.ok(12000 * 12000 > DEFAULT_MAX_PIXELS, 'the default refuses 12000x12000');
  // [image, mask, options, error or null (accepted)]
  const table: Array<[string, Uint8Array, Uint8Array, DecodeOptions | undefined, RegExp | null]> = [
    [
      '12000x12000 PNG, default limit',
      huge,
      smallMask,
      undefined,
      /cannot decode image 'img\/a\.png': 12000x12000 is 144000000 pixels, above the limit of 67108864 \(raise it with --max-pixels/,
    ],
    ['64x64 within 4096', small, smallMask, { maxPixels: 4096 }, null],
    [
      '64x64 above 4095',
      small,
      smallMask,
      { maxPixels: 4095 },
      /cannot decode (image 'img\/a\.png'|mask 'mask\/a\.png'): 64x64 is 4096 pixels, above the limit of 4095/,
    ],
    [
      'mask above the limit',
      small,
      huge,
      undefined,
      /cannot decode mask 'mask\/a\.png': 12000x12000 is 144000000 pixels/,
    ],
    [
      'BMP above the limit',
      bmp(64, 64),
      smallMask,
      { maxPixels: 4000 },
      /cannot decode image 'img\/a\.png': 64x64 is 4096 pixels, above the limit of 4000/,
    ],
  ];
  for (const [label, image, mask, decode, error] of table) {
    const dir = await tempDir(t);
    await dataset(dir, image, mask);
    const before = process.memoryUsage().rss;
    if (error)
      await t.rejects(
        readAll(dir, decode),
        { code: 'ERR_CRACKSEG_DATASET', message: error },
        label,
      );
    else t.equal((await readAll(dir, decode))[0]!.image.width, 64, label);
    const grown = process.memoryUsage().rss - before;
    t.ok(grown < 64 * 2 ** 20, `${label}: RSS grew ${(grown / 2 ** 20).toFixed(1)} MiB`);
  }
});

t.test('a list file that is a directory: the error names it', async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, 'list.txt'));
  await t.rejects(readAll(dir), {
    code: 'EISDIR',
    message: new RegExp(`cannot read list file '${join(dir, 'list.txt')}': EISDIR`),
  });
});

/** A safetensors file: the header JSON, padded, then `dataBytes` bytes (sparse: never written). */
async function safetensorsFile(path: string, header: object, dataBytes: number): Promise<void> {
  const json = Buffer.from(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  const prefix = Buffer.alloc(8 + padded, 0x20);
  prefix.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(prefix, 8);
  const file = await open(path, 'w');
  await file.write(prefix, 0, prefix.length, 0);
  await file.truncate(prefix.length + dataBytes);
  await file.close();
}

t.test('safetensors: a header that lies is refused before the data is read', async (t) => {
  const dir = await tempDir(t);
  const one = { w: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } };
  const gib = 1.5 * 2 ** 30;
  // [case, header, data bytes, error]
  const table: Array<[string, object, number, RegExp]> = [
    [
      '1.5 GiB of data, header names 4 bytes',
      one,
      gib,
      /data section has 1610612736 bytes, the tensors cover 4/,
    ],
    [
      'header names more than the file holds',
      { w: { dtype: 'F32', shape: [2 ** 28], data_offsets: [0, 2 ** 30] } },
      4,
      /tensor 'w' ends at byte 1073741824 of a 4-byte data section \(truncated\?\)/,
    ],
    [
      'offsets that do not fit the shape',
      { w: { dtype: 'F32', shape: [2], data_offsets: [0, 4] } },
      4,
      /data_offsets \[0, 4\] hold 4 bytes, shape \[2\] of F32 needs 8/,
    ],
    [
      'dtype unknown',
      { w: { dtype: 'F31', shape: [1], data_offsets: [0, 4] } },
      4,
      /unsupported dtype "F31"/,
    ],
  ];
  for (const [label, header, dataBytes, error] of table) {
    const path = join(dir, `${label.replaceAll(/\W+/g, '_')}.safetensors`);
    await safetensorsFile(path, header, dataBytes);
    const before = process.memoryUsage().rss;
    await t.rejects(
      readSafetensors(path),
      {
        name: 'SafetensorsError',
        code: 'ERR_CRACKSEG_SAFETENSORS',
        message: new RegExp(`^${path}: not a valid safetensors file: `),
      },
      label,
    );
    await t.rejects(readSafetensors(path), { message: error }, label);
    const grown = process.memoryUsage().rss - before;
    t.ok(grown < 64 * 2 ** 20, `${label}: RSS grew ${(grown / 2 ** 20).toFixed(1)} MiB`);
  }
  // A header length beyond the file.
  const short = join(dir, 'short.safetensors');
  const bytes = Buffer.alloc(16);
  bytes.writeBigUInt64LE(1000n, 0);
  await writeFile(short, bytes);
  await t.rejects(readSafetensors(short), {
    message: /header length 1000 exceeds the file \(16 bytes\)/,
  });
  // A valid file still reads, only the named bytes.
  const good = join(dir, 'good.safetensors');
  await safetensorsFile(good, one, 4);
  const { tensors } = await readSafetensors(good);
  t.same([...(tensors.get('w')!.data as Float32Array)], [0]);
});
