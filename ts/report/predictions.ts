/**
 * Saved predictions: where they live under a prompt config's folder and how they are encoded.
 * The report writer saves through here and re-scoring from saved predictions reads through here,
 * so both sides agree on paths and encodings.
 *
 * - Masks: 8-bit greyscale PNG, crack 255, background 0; read back as crack where value ≥ 128.
 * - Probability maps: greyscale PNG, p clamped to [0, 1] and stored as round(p · 255) (8-bit) or
 *   round(p · 65535) (16-bit); read back as value / 255 or value / 65535. Re-scoring ODS/OIS from
 *   them can move a pixel lying within half a quantisation step of a grid threshold.
 */
import { join } from 'node:path';
import sharp from 'sharp';
import { binding, probabilityArg } from '../binding.js';
import type { BinaryMask, HeldPlane, ProbabilityMap } from '../image.js';
import { writeFileAtomic } from '../util/atomic.js';
import { nonZeroBytes, wordsOf } from '../util/bytes.js';

/** Folder of prediction masks inside a prompt config's output folder. */
export const PREDICTIONS_DIR = 'predictions';
/** Folder of probability maps inside a prompt config's output folder. */
export const PROBABILITIES_DIR = 'probabilities';

/** Bits per sample of a saved probability map. */
export type ProbabilityBitDepth = 8 | 16;

/**
 * zlib level of the prediction and probability PNGs: 1, as OpenCV's `imwrite` writes them by
 * default; twice as fast as libvips' 6, for files about a third larger.
 */
const PNG_COMPRESSION = 1;

/**
 * Throws unless `name` is usable as a folder name as is (letters, digits, `_`, `-`, `.`; not
 * starting with `.`), so a config folder can never escape the output folder. Image ids are not
 * checked but mapped ({@link imageFileStem}).
 */
export function assertSafeName(name: string, what: string): void {
  if (!/^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/.test(name)) {
    throw new Error(`${what} "${name}" is not a safe file name (use letters, digits, _ - .)`);
  }
}

/**
 * The file-name stem of an image id: the id itself when it is a safe name, else percent-encoded.
 * Every character outside `A-Z a-z 0-9 _ - .` (and a leading `.`) becomes `%XX` per UTF-8 byte,
 * so `crack(1)` → `crack%281%29` and `../x` → `%2E.%2Fx`. The mapping is
 * injective (an unencoded `%` never occurs), so two ids never share a file, and every result is a
 * plain name inside its folder.
 */
export function imageFileStem(imageId: string): string {
  if (imageId === '') throw new Error('Image id is empty');
  let stem = '';
  for (const byte of new TextEncoder().encode(imageId)) {
    const c = String.fromCharCode(byte);
    const plain = /[A-Za-z0-9_-]/.test(c) || (c === '.' && stem !== '');
    stem += plain ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return stem;
}

/** `predictions/<stem>.png`, relative to a prompt config's folder (the CSV's prediction_path). */
export function relativePredictionPath(imageId: string): string {
  return join(PREDICTIONS_DIR, `${imageFileStem(imageId)}.png`);
}

/** `<configDir>/predictions/<stem>.png` ({@link imageFileStem}). */
export function predictionPath(configDir: string, imageId: string): string {
  return join(configDir, relativePredictionPath(imageId));
}

/** `<configDir>/probabilities/<stem>.png` ({@link imageFileStem}). */
export function probabilityPath(configDir: string, imageId: string): string {
  return join(configDir, PROBABILITIES_DIR, `${imageFileStem(imageId)}.png`);
}

/** The mask as an 8-bit greyscale PNG (0 / 255). */
export async function encodeMaskPng(mask: BinaryMask): Promise<Buffer> {
  const pixels = new Uint8Array(mask.data.length);
  const from = wordsOf(mask.data);
  const to = new Uint32Array(pixels.buffer, 0, pixels.length >> 2);
  const start = from ? to.length << 2 : 0;
  if (from) for (let i = 0; i < to.length; i++) to[i] = Math.imul(nonZeroBytes(from[i]!), 255);
  for (let i = start; i < pixels.length; i++) pixels[i] = mask.data[i] ? 255 : 0;
  // Without an explicit colour space libvips stores single-channel input as RGB.
  return sharp(pixels, { raw: { width: mask.width, height: mask.height, channels: 1 } })
    .toColourspace('b-w')
    .png({ compressionLevel: PNG_COMPRESSION })
    .toBuffer();
}

/** Writes the mask as a 0/255 PNG, atomically. */
export async function writeMaskPng(path: string, mask: BinaryMask): Promise<void> {
  await writeFileAtomic(path, await encodeMaskPng(mask));
}

/** Reads a mask PNG (any channel count; the first channel decides): crack where value ≥ 128. */
export async function readMaskPng(path: string): Promise<BinaryMask> {
  const { data, info } = await sharp(path)
    .extractChannel(0)
    .raw()
    .toBuffer({ resolveWithObject: true });
  const mask = new Uint8Array(info.width * info.height);
  for (let i = 0; i < mask.length; i++) mask[i] = data[i]! >= 128 ? 1 : 0;
  return { width: info.width, height: info.height, data: mask };
}

/** Writes a probability map as an 8- or 16-bit greyscale PNG, atomically. */
export async function writeProbabilityPng(
  path: string,
  map: ProbabilityMap | HeldPlane,
  bitDepth: ProbabilityBitDepth = 16,
): Promise<void> {
  await writeFileAtomic(path, await encodeProbabilityPng(map, bitDepth));
}

/**
 * A probability map (held or not) as an 8- or 16-bit greyscale PNG: p clamped to [0, 1], scaled,
 * rounded half up (in the addon, reading the map in place).
 */
export async function encodeProbabilityPng(
  map: ProbabilityMap | HeldPlane,
  bitDepth: ProbabilityBitDepth = 16,
): Promise<Buffer> {
  const pixels = binding().quantizeProbabilities(probabilityArg(map), bitDepth);
  // sharp takes the sample depth from the typed array: Uint16Array → 16-bit.
  return sharp(pixels, { raw: { width: map.width, height: map.height, channels: 1 } })
    .toColourspace(bitDepth === 16 ? 'grey16' : 'b-w')
    .png({ compressionLevel: PNG_COMPRESSION })
    .toBuffer();
}

/** Reads a probability map PNG written by {@link writeProbabilityPng} (8- or 16-bit). */
export async function readProbabilityPng(path: string): Promise<ProbabilityMap> {
  const { depth } = await sharp(path).metadata();
  const sixteen = depth === 'ushort';
  const { data, info } = await (
    sixteen
      ? sharp(path).toColourspace('grey16').raw({ depth: 'ushort' })
      : sharp(path).extractChannel(0).raw()
  ).toBuffer({ resolveWithObject: true });
  // A Uint16Array view needs an even byte offset; copy in the rare case it is odd.
  const bytes = data.byteOffset % 2 === 0 ? data : new Uint8Array(data);
  const samples = sixteen
    ? new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.length / 2)
    : new Uint8Array(data.buffer, data.byteOffset, data.length);
  const scale = sixteen ? 65535 : 255;
  const probabilities = new Float32Array(info.width * info.height);
  for (let i = 0; i < probabilities.length; i++) probabilities[i] = samples[i]! / scale;
  return { width: info.width, height: info.height, data: probabilities };
}
