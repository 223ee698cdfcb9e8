/**
 * Decoding image and mask files to the in-memory types. sharp (libvips) reads JPEG, PNG, TIFF,
 * WebP and GIF; BMP goes through our own decoder. EXIF orientation is applied to both images and
 * masks, so they stay aligned however the camera stored them.
 */
import sharp, { type Sharp } from 'sharp';
import type { BinaryMask, RgbImage } from '../image.js';
import { decodeBmp, isBmp } from './bmp.js';

/** A sharp pipeline over the file's pixels, upright (EXIF orientation applied). */
function open(bytes: Uint8Array): Sharp {
  if (isBmp(bytes)) {
    const { width, height, data } = decodeBmp(bytes);
    return sharp(data, { raw: { width, height, channels: 3 } });
  }
  return sharp(bytes).autoOrient();
}

/** Decodes an image file to 8-bit RGB: grey is replicated, alpha dropped, 16-bit scaled down. */
export async function decodeImage(bytes: Uint8Array): Promise<RgbImage> {
  const { data, info } = await open(bytes)
    .removeAlpha()
    .toColourspace('srgb')
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data: new Uint8Array(data) };
}

/**
 * Decodes a mask file to 0/1: foreground is a grey level above half the range (> 127 for 8-bit,
 * > 32767 for 16-bit), except that a mask whose maximum is 1 is taken as 0/1-coded (foreground > 0).
 * Colour masks are converted to grey first.
 */
export async function decodeMask(bytes: Uint8Array): Promise<BinaryMask> {
  const wide = !isBmp(bytes) && (await sharp(bytes).metadata()).depth === 'ushort';
  const { data, info } = await open(bytes)
    .removeAlpha()
    .toColourspace(wide ? 'grey16' : 'b-w')
    .raw({ depth: wide ? 'ushort' : 'uchar' })
    .toBuffer({ resolveWithObject: true });
  // Copied into a buffer of its own: aligned for word access, and the mask's to transfer.
  const copy = new Uint8Array(data);
  const mask = wide ? binarise16(new Uint16Array(copy.buffer)) : binarise8(copy);
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
  const above = max === 1 ? 0 : 32767;
  const mask = new Uint8Array(grey.length);
  for (let i = 0; i < grey.length; i++) mask[i] = grey[i]! > above ? 1 : 0;
  return mask;
}

/**
 * How a mask file codes its crack pixels (what {@link decodeMask} makes of it): `0/255` (or
 * `0/65535`: the full range), `0/1`, `empty` (all 0), `grey levels` (other values: anti-aliased or
 * JPEG-compressed masks, cut at half the range) or `colour` (channels differ somewhere: decoded
 * through its grey level, likely not a mask).
 */
export type MaskCoding = '0/255' | '0/1' | 'empty' | 'grey levels' | 'colour';

export async function maskCoding(bytes: Uint8Array): Promise<MaskCoding> {
  const wide = !isBmp(bytes) && (await sharp(bytes).metadata()).depth === 'ushort';
  const { data, info } = await open(bytes)
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
