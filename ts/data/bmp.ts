/**
 * A BMP decoder, because sharp's prebuilt libvips has no BMP loader. Covers the uncompressed
 * variants that image tools write: 1/4/8-bit palette, 16-bit (5-5-5 or bit fields), 24-bit and
 * 32-bit (BGRX or bit fields), bottom-up or top-down, with the core, info, V4 and V5 headers.
 * Run-length compressed files are rejected with a clear message.
 */
import type { RgbImage } from '../image.js';
import { assertPixelLimit } from './pixel-limit.js';

const BI_RGB = 0;
const BI_BITFIELDS = 3;
const BI_ALPHABITFIELDS = 6;

/** True when `bytes` starts with the BMP signature `BM`. */
export function isBmp(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x42 && bytes[1] === 0x4d;
}

/** Extracts one colour channel given by a bit mask, scaled to 0..255. */
function channelReader(mask: number): (pixel: number) => number {
  if (mask === 0) return () => 0;
  let shift = 0;
  while (((mask >>> shift) & 1) === 0) shift++;
  const max = (mask >>> shift) >>> 0;
  return (pixel) => Math.round((((pixel & mask) >>> shift) * 255) / max);
}

/**
 * Decodes a BMP file to RGB; alpha, if any, is dropped. Throws on a malformed or unsupported file,
 * and on one larger than `maxPixels` before its pixels are allocated.
 */
export function decodeBmp(bytes: Uint8Array, maxPixels = Infinity): RgbImage {
  if (!isBmp(bytes) || bytes.length < 26) throw new Error('not a BMP file');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const pixelOffset = view.getUint32(10, true);
  const headerSize = view.getUint32(14, true);
  const core = headerSize === 12;
  if (!core && headerSize < 40) throw new Error(`unsupported BMP header size ${headerSize}`);
  const width = core ? view.getUint16(18, true) : view.getInt32(18, true);
  const signedHeight = core ? view.getInt16(20, true) : view.getInt32(22, true);
  const bitCount = view.getUint16(core ? 24 : 28, true);
  const compression = core ? BI_RGB : view.getUint32(30, true);
  const height = Math.abs(signedHeight);
  const topDown = signedHeight < 0;
  if (width <= 0 || height === 0) throw new Error(`invalid BMP size ${width}x${height}`);
  assertPixelLimit(width, height, maxPixels);
  if (compression !== BI_RGB && compression !== BI_BITFIELDS && compression !== BI_ALPHABITFIELDS) {
    throw new Error(`unsupported BMP compression ${compression} (only uncompressed BMP is read)`);
  }

  // Bit-field masks live inside V2+ headers, or just after a 40-byte info header.
  let masks: [number, number, number] =
    bitCount === 16 ? [0x7c00, 0x03e0, 0x001f] : [0xff0000, 0x00ff00, 0x0000ff];
  let afterHeader = 14 + headerSize;
  if (compression !== BI_RGB) {
    masks = [view.getUint32(54, true), view.getUint32(58, true), view.getUint32(62, true)];
    if (headerSize === 40) afterHeader += compression === BI_ALPHABITFIELDS ? 16 : 12;
  }

  let palette: Uint8Array | undefined;
  if (bitCount <= 8) {
    const used = core ? 0 : view.getUint32(46, true);
    const count = used || 1 << bitCount;
    const entrySize = core ? 3 : 4;
    palette = new Uint8Array(count * 3);
    for (let i = 0; i < count; i++) {
      const at = afterHeader + i * entrySize;
      palette[i * 3] = bytes[at + 2] ?? 0;
      palette[i * 3 + 1] = bytes[at + 1] ?? 0;
      palette[i * 3 + 2] = bytes[at] ?? 0;
    }
  } else if (bitCount !== 16 && bitCount !== 24 && bitCount !== 32) {
    throw new Error(`unsupported BMP bit depth ${bitCount}`);
  }

  const stride = Math.ceil((bitCount * width) / 32) * 4;
  if (pixelOffset + stride * height > bytes.length) throw new Error('truncated BMP pixel data');
  const [red, green, blue] = masks.map(channelReader) as [
    (p: number) => number,
    (p: number) => number,
    (p: number) => number,
  ];
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const row = pixelOffset + (topDown ? y : height - 1 - y) * stride;
    for (let x = 0; x < width; x++) {
      const out = (y * width + x) * 3;
      if (palette) {
        const bit = x * bitCount;
        const byte = bytes[row + (bit >> 3)] ?? 0;
        const index = (byte >> (8 - bitCount - (bit & 7))) & ((1 << bitCount) - 1);
        if (index * 3 >= palette.length) throw new Error(`BMP palette index ${index} out of range`);
        data.set(palette.subarray(index * 3, index * 3 + 3), out);
      } else if (bitCount === 24) {
        data[out] = bytes[row + x * 3 + 2] ?? 0;
        data[out + 1] = bytes[row + x * 3 + 1] ?? 0;
        data[out + 2] = bytes[row + x * 3] ?? 0;
      } else {
        const pixel =
          bitCount === 16 ? view.getUint16(row + x * 2, true) : view.getUint32(row + x * 4, true);
        data[out] = red(pixel);
        data[out + 1] = green(pixel);
        data[out + 2] = blue(pixel);
      }
    }
  }
  return { width, height, data };
}
