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
  // Copied so the 16-bit view is aligned whatever the Buffer's offset.
  const grey = wide
    ? new Uint16Array(new Uint8Array(data).buffer)
    : new Uint8Array(data.buffer, data.byteOffset, data.length);
  return { width: info.width, height: info.height, data: binarise(grey, wide ? 32767 : 127) };
}

/** 1 where `grey` is above `threshold`, or above 0 when its maximum is 1 (a 0/1-coded mask). */
function binarise(grey: Uint8Array | Uint16Array, threshold: number): Uint8Array {
  let max = 0;
  for (let i = 0; i < grey.length; i++) max = Math.max(max, grey[i]!);
  const above = max === 1 ? 0 : threshold;
  const mask = new Uint8Array(grey.length);
  for (let i = 0; i < grey.length; i++) mask[i] = grey[i]! > above ? 1 : 0;
  return mask;
}
