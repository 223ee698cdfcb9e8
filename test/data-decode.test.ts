import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { decodeBmp } from '../ts/data/bmp.js';
import { decodeImage, decodeMask } from '../ts/data/decode.js';
import { findPython } from '../ts/python.js';

const width = 7;
const height = 5;
/** Distinct values per pixel and channel, so any transposition or channel swap shows. */
const pattern = Uint8Array.from({ length: width * height * 3 }, (_, i) => (i * 37 + 11) % 256);
const raw = (channels: 1 | 3 | 4, data: Uint8Array) =>
  sharp(data, { raw: { width, height, channels } });

let dir: string;
t.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'crackseg-decode-'));
  const { executable } = await findPython();
  const script = fileURLToPath(new URL('reference/write_images.py', import.meta.url));
  await new Promise<void>((resolve, reject) => {
    const child = execFile(
      executable,
      [script, dir, String(width), String(height)],
      (err, _o, stderr) => (err ? reject(new Error(stderr || err.message)) : resolve()),
    );
    child.stdin?.end(pattern);
  });
});
t.teardown(() => rm(dir, { recursive: true, force: true }));

const same = (
  t: Test,
  image: { width: number; height: number; data: Uint8Array },
  expected: Uint8Array,
) => {
  t.equal(image.width, width);
  t.equal(image.height, height);
  t.same([...image.data], [...expected]);
};

t.test('lossless formats decode exactly: PNG, TIFF, WebP', async (t) => {
  same(t, await decodeImage(await raw(3, pattern).png().toBuffer()), pattern);
  same(
    t,
    await decodeImage(await raw(3, pattern).tiff({ compression: 'lzw' }).toBuffer()),
    pattern,
  );
  same(t, await decodeImage(await raw(3, pattern).webp({ lossless: true }).toBuffer()), pattern);
});

t.test('JPEG decodes close to the original', async (t) => {
  const image = await decodeImage(
    await raw(3, pattern).jpeg({ quality: 100, chromaSubsampling: '4:4:4' }).toBuffer(),
  );
  let error = 0;
  for (let i = 0; i < pattern.length; i++) error += Math.abs(image.data[i]! - pattern[i]!);
  t.ok(error / pattern.length < 4, `mean abs error ${error / pattern.length}`);
});

t.test('grey is replicated to RGB, alpha is dropped', async (t) => {
  const grey = pattern.subarray(0, width * height);
  same(
    t,
    await decodeImage(await raw(1, grey).png().toBuffer()),
    Uint8Array.from([...grey].flatMap((g) => [g, g, g])),
  );
  const rgba = Uint8Array.from({ length: width * height * 4 }, (_, i) =>
    i % 4 === 3 ? 128 : pattern[i - (i >> 2)]!,
  );
  same(t, await decodeImage(await raw(4, rgba).png().toBuffer()), pattern);
});

t.test('16-bit PNG and TIFF (written by OpenCV) scale to 8 bits', async (t) => {
  same(t, await decodeImage(await readFile(join(dir, 'rgb16.png'))), pattern);
  same(t, await decodeImage(await readFile(join(dir, 'rgb16.tif'))), pattern);
  const red = Uint8Array.from({ length: width * height }, (_, i) => pattern[i * 3]!);
  same(
    t,
    await decodeImage(await readFile(join(dir, 'grey16.png'))),
    Uint8Array.from([...red].flatMap((g) => [g, g, g])),
  );
});

t.test('EXIF orientation is applied', async (t) => {
  // 32x16 stored: left half dark, right half light; orientation 6 shows it rotated 90° clockwise.
  const stored = new Uint8Array(32 * 16 * 3);
  for (let y = 0; y < 16; y++)
    for (let x = 16; x < 32; x++) stored.fill(250, (y * 32 + x) * 3, (y * 32 + x) * 3 + 3);
  const jpeg = await sharp(stored, { raw: { width: 32, height: 16, channels: 3 } })
    .jpeg({ quality: 95 })
    .withMetadata({ orientation: 6 })
    .toBuffer();
  const image = await decodeImage(jpeg);
  t.same([image.width, image.height], [16, 32]);
  // Clockwise: the stored left (dark) half becomes the top, the right (light) half the bottom.
  t.ok(image.data[(4 * 16 + 8) * 3]! < 30, 'top is dark');
  t.ok(image.data[(28 * 16 + 8) * 3]! > 220, 'bottom is light');
});

t.test('BMP: Pillow 1-bit, 8-bit grey and palette, 24-bit, 32-bit', async (t) => {
  for (const mode of ['1', 'L', 'P', 'RGB', 'RGBA']) {
    const expected = await readFile(join(dir, `${mode}.rgb`));
    t.test(mode, async (t) =>
      same(t, await decodeImage(await readFile(join(dir, `${mode}.bmp`))), expected),
    );
  }
});

/** A 2x2 top-down 16-bit BMP with 5-6-5 bit fields, built by hand. */
function bmp565(compression = 3): Uint8Array {
  const bytes = new Uint8Array(54 + 12 + 8);
  const view = new DataView(bytes.buffer);
  bytes.set([0x42, 0x4d]);
  view.setUint32(2, bytes.length, true);
  view.setUint32(10, 66, true);
  view.setUint32(14, 40, true);
  view.setInt32(18, 2, true);
  view.setInt32(22, -2, true);
  view.setUint16(26, 1, true);
  view.setUint16(28, 16, true);
  view.setUint32(30, compression, true);
  view.setUint32(54, 0xf800, true);
  view.setUint32(58, 0x07e0, true);
  view.setUint32(62, 0x001f, true);
  // Row 0: pure red, pure green; row 1: pure blue, half-grey (16, 32, 16 of 31, 63, 31).
  [0xf800, 0x07e0, 0x001f, (16 << 11) | (32 << 5) | 16].forEach((p, i) =>
    view.setUint16(66 + i * 2, p, true),
  );
  return bytes;
}

t.test('BMP: hand-built top-down 16-bit 5-6-5 bit fields', async (t) => {
  const image = decodeBmp(bmp565());
  t.same([image.width, image.height], [2, 2]);
  t.same([...image.data], [255, 0, 0, 0, 255, 0, 0, 0, 255, 132, 130, 132]);
});

t.test('BMP: run-length compression is refused by name', async (t) => {
  t.throws(() => decodeBmp(bmp565(1)), /unsupported BMP compression 1/);
});

t.test('masks: 0/255 grey, 0/1-coded, colour, with alpha, threshold at 127', async (t) => {
  const grey = Uint8Array.from({ length: width * height }, (_, i) => [0, 255, 127, 128, 0][i % 5]!);
  const expected = [...grey].map((g) => (g > 127 ? 1 : 0));
  const m = await decodeMask(await raw(1, grey).png().toBuffer());
  t.same([m.width, m.height], [width, height]);
  t.same([...m.data], expected);
  const coded = Uint8Array.from(grey, (g) => (g > 127 ? 1 : 0));
  t.same([...(await decodeMask(await raw(1, coded).png().toBuffer())).data], expected);
  const colour = Uint8Array.from([...grey].flatMap((g) => [g, g, g]));
  t.same([...(await decodeMask(await raw(3, colour).png().toBuffer())).data], expected);
  const withAlpha = Uint8Array.from([...grey].flatMap((g) => [g, g, g, 255]));
  t.same([...(await decodeMask(await raw(4, withAlpha).png().toBuffer())).data], expected);
  const empty = await decodeMask(
    await raw(1, new Uint8Array(width * height))
      .png()
      .toBuffer(),
  );
  t.equal(
    empty.data.reduce((a, b) => a + b, 0),
    0,
  );
});

t.test('masks: 16-bit 0/65535 and 0/1-coded (written by OpenCV), BMP', async (t) => {
  const expected = Array.from({ length: width * height }, (_, i) =>
    pattern[i * 3]! > 127 ? 1 : 0,
  );
  t.same([...(await decodeMask(await readFile(join(dir, 'mask16.png')))).data], expected);
  t.same([...(await decodeMask(await readFile(join(dir, 'mask16_01.png')))).data], expected);
  const bmpGrey = [...(await readFile(join(dir, 'L.rgb')))].filter((_, i) => i % 3 === 0);
  t.same(
    [...(await decodeMask(await readFile(join(dir, 'L.bmp')))).data],
    bmpGrey.map((g) => (g > 127 ? 1 : 0)),
  );
});

t.test('undecodable bytes are rejected', async (t) => {
  await t.rejects(decodeImage(Buffer.from('not an image')));
  await t.rejects(decodeMask(Buffer.from('not an image')));
  const truncated = (await raw(3, pattern).png().toBuffer()).subarray(0, 40);
  await t.rejects(decodeImage(truncated));
});
