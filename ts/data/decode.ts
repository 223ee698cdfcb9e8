/**
 * Decoding image and mask files to the in-memory types. sharp (libvips) reads JPEG, PNG, TIFF,
 * WebP and GIF; BMP goes through our own decoder. EXIF orientation is applied to both images and
 * masks, so they stay aligned however the camera stored them. A file above the pixel limit is
 * refused from its header, before its pixels are decoded.
 */
import sharp, { type Metadata, type Sharp } from 'sharp';
import type { BinaryMask, RgbImage } from '../image.js';
import { decodeBmp, isBmp } from './bmp.js';
import { assertPixelLimit, DEFAULT_MAX_PIXELS } from './pixel-limit.js';

/**
 * How a colour mask's channels make one foreground decision per pixel:
 * - `strict` (default): every channel must agree (all above the threshold or none); a pixel where
 *   they do not, e.g. a red (255, 0, 0) crack, is an error, because the rules below would read it
 *   differently and none is right for every dataset;
 * - `any`: foreground where any channel is above the threshold (coloured annotations);
 * - `all`: foreground where every channel is;
 * - `luma`: the grey level (libvips' sRGB → b-w luminance), as image tools convert.
 * Grey masks are read the same under every rule.
 */
export type MaskRule = 'strict' | 'any' | 'all' | 'luma';

export const MASK_RULES: readonly MaskRule[] = ['strict', 'any', 'all', 'luma'];

/** What decoding accepts: the pixel limit and the colour-mask rule. */
export interface DecodeOptions {
  /** Largest width × height decoded; default {@link DEFAULT_MAX_PIXELS}. */
  maxPixels?: number;
  /** Default `strict`. */
  maskRule?: MaskRule;
}

/** Grey levels above which a pixel is foreground: half the range, or 0 in a 0/1-coded mask. */
function thresholdFor(max: number, wide: boolean): number {
  return max === 1 ? 0 : wide ? 32767 : 127;
}

/**
 * A sharp pipeline over the file's pixels, upright (EXIF orientation applied), once its size is
 * within the limit; with the header's metadata (null for BMP).
 */
async function open(
  bytes: Uint8Array,
  maxPixels: number,
): Promise<{ pipeline: Sharp; metadata: Metadata | null }> {
  if (isBmp(bytes)) {
    const { width, height, data } = decodeBmp(bytes, maxPixels);
    return { pipeline: sharp(data, { raw: { width, height, channels: 3 } }), metadata: null };
  }
  const metadata = await sharp(bytes).metadata();
  if (metadata.width !== undefined && metadata.height !== undefined)
    assertPixelLimit(metadata.width, metadata.height, maxPixels);
  // sharp's own limit as well, for formats whose header does not give the size.
  const limitInputPixels = Number.isFinite(maxPixels) ? maxPixels : false;
  return { pipeline: sharp(bytes, { limitInputPixels }).autoOrient(), metadata };
}

/** Decodes an image file to 8-bit RGB: grey is replicated, alpha dropped, 16-bit scaled down. */
export async function decodeImage(
  bytes: Uint8Array,
  options: DecodeOptions = {},
): Promise<RgbImage> {
  const { pipeline } = await open(bytes, options.maxPixels ?? DEFAULT_MAX_PIXELS);
  const { data, info } = await pipeline
    .removeAlpha()
    .toColourspace('srgb')
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data: new Uint8Array(data) };
}

/**
 * Decodes a mask file to 0/1: foreground is a grey level above half the range (> 127 for 8-bit,
 * > 32767 for 16-bit), except that a mask whose maximum is 1 is taken as 0/1-coded (foreground > 0).
 * Colour masks are read by `maskRule` ({@link MaskRule}).
 */
export async function decodeMask(
  bytes: Uint8Array,
  options: DecodeOptions = {},
): Promise<BinaryMask> {
  const rule = options.maskRule ?? 'strict';
  if (!MASK_RULES.includes(rule))
    throw new RangeError(`maskRule must be one of ${MASK_RULES.join(', ')}, got '${rule}'`);
  const { pipeline, metadata } = await open(bytes, options.maxPixels ?? DEFAULT_MAX_PIXELS);
  const wide = metadata?.depth === 'ushort';
  const channels = metadata ? metadata.channels - (metadata.hasAlpha ? 1 : 0) : 3;
  const grey = channels === 1 || rule === 'luma';
  const { data, info } = await pipeline
    .removeAlpha()
    .toColourspace(grey ? (wide ? 'grey16' : 'b-w') : wide ? 'rgb16' : 'srgb')
    .raw({ depth: wide ? 'ushort' : 'uchar' })
    .toBuffer({ resolveWithObject: true });
  // Copied into a buffer of its own: aligned for word access, and the mask's to transfer.
  const copy = new Uint8Array(data);
  const levels = wide ? new Uint16Array(copy.buffer) : copy;
  const mask = grey
    ? wide
      ? binarise16(levels as Uint16Array)
      : binarise8(copy)
    : binariseColour(levels, info.width, wide, rule);
  return { width: info.width, height: info.height, data: mask };
}

/**
 * 8-bit grey to 0/1 in place: above 127, or above 0 when the maximum is 1 (a 0/1-coded mask).
 * Four pixels per step: the OR of all bytes is 1 exactly when the maximum is, and a byte is
 * above 127 exactly when its top bit is set.
 */
function binarise8(grey: Uint8Array): Uint8Array {
  const words = new Uint32Array(grey.buffer, 0, grey.length >> 2);
  let any = 0;
  for (let i = 0; i < words.length; i++) any |= words[i]!;
  for (let i = words.length << 2; i < grey.length; i++) any |= grey[i]!;
  const bytesOred = (any | (any >>> 8) | (any >>> 16) | (any >>> 24)) & 0xff;
  if (bytesOred === 1) return grey; // already 0/1
  for (let i = 0; i < words.length; i++) words[i] = (words[i]! >>> 7) & 0x01010101;
  for (let i = words.length << 2; i < grey.length; i++) grey[i] = grey[i]! >>> 7;
  return grey;
}

/** 16-bit grey to 0/1: above 32767, or above 0 when the maximum is 1 (a 0/1-coded mask). */
function binarise16(grey: Uint16Array): Uint8Array {
  let max = 0;
  for (let i = 0; i < grey.length; i++) if (grey[i]! > max) max = grey[i]!;
  const above = thresholdFor(max, true);
  const mask = new Uint8Array(grey.length);
  for (let i = 0; i < grey.length; i++) mask[i] = grey[i]! > above ? 1 : 0;
  return mask;
}

/**
 * RGB levels to 0/1 by `rule` (not `luma`): foreground where the highest channel (`any`) or the
 * lowest (`all`) is above the threshold of that plane, or, `strict`, where both agree on it.
 */
function binariseColour(
  rgb: Uint8Array | Uint16Array,
  width: number,
  wide: boolean,
  rule: Exclude<MaskRule, 'luma'>,
): Uint8Array {
  const count = rgb.length / 3;
  const high = new Uint16Array(count);
  const low = new Uint16Array(count);
  let maxHigh = 0;
  let maxLow = 0;
  for (let i = 0; i < count; i++) {
    const [r, g, b] = [rgb[3 * i]!, rgb[3 * i + 1]!, rgb[3 * i + 2]!];
    high[i] = Math.max(r, g, b);
    low[i] = Math.min(r, g, b);
    if (high[i]! > maxHigh) maxHigh = high[i]!;
    if (low[i]! > maxLow) maxLow = low[i]!;
  }
  const mask = new Uint8Array(count);
  if (rule === 'all') {
    const above = thresholdFor(maxLow, wide);
    for (let i = 0; i < count; i++) mask[i] = low[i]! > above ? 1 : 0;
    return mask;
  }
  const above = thresholdFor(maxHigh, wide);
  for (let i = 0; i < count; i++) {
    mask[i] = high[i]! > above ? 1 : 0;
    if (rule === 'strict' && mask[i] !== (low[i]! > above ? 1 : 0)) {
      const pixel = [rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]].join(', ');
      throw new Error(
        `its colour channels disagree: pixel (${i % width}, ${Math.floor(i / width)}) is ` +
          `(${pixel}), foreground in some channels only; choose how to read colour masks ` +
          `with --mask-rule (maskRule) ${MASK_RULES.filter((r) => r !== 'strict').join('|')}`,
      );
    }
  }
  return mask;
}

/**
 * How a mask file codes its crack pixels (what {@link decodeMask} makes of it): `0/255` (or
 * `0/65535`: the full range), `0/1`, `empty` (all 0), `grey levels` (other values: anti-aliased or
 * JPEG-compressed masks, cut at half the range) or `colour` (channels differ somewhere: read by
 * the colour-mask rule, {@link MaskRule}). Images above `maxPixels` are refused as in decoding.
 */
export type MaskCoding = '0/255' | '0/1' | 'empty' | 'grey levels' | 'colour';

export async function maskCoding(
  bytes: Uint8Array,
  maxPixels = DEFAULT_MAX_PIXELS,
): Promise<MaskCoding> {
  const { pipeline, metadata } = await open(bytes, maxPixels);
  const wide = metadata?.depth === 'ushort';
  const { data, info } = await pipeline
    .removeAlpha()
    .raw({ depth: wide ? 'ushort' : 'uchar' })
    .toBuffer({ resolveWithObject: true });
  const samples = wide
    ? new Uint16Array(new Uint8Array(data).buffer)
    : new Uint8Array(data.buffer, data.byteOffset, data.length);
  const channels = info.channels;
  const seen = new Set<number>();
  for (let i = 0; i < samples.length; i += channels) {
    for (let c = 1; c < channels; c++) if (samples[i + c] !== samples[i]) return 'colour';
    seen.add(samples[i]!);
  }
  const full = wide ? 65535 : 255;
  const values = [...seen];
  if (values.every((v) => v === 0)) return 'empty';
  if (values.every((v) => v === 0 || v === 1)) return '0/1';
  return values.every((v) => v === 0 || v === full) ? '0/255' : 'grey levels';
}
