/**
 * The synthetic crack dataset: pavement textures with thin branching cracks, written in the
 * Crack500 layout (see docs/data.md). It is the built-in data of the demo and the tests, so it is
 * deterministic (identical bytes for a seed) and quick (a 640x360 image in tens of milliseconds).
 */
import sharp from 'sharp';
import { join } from 'node:path';
import type { BinaryMask, RgbImage } from '../image.js';
import { writeFileAtomic } from '../util/atomic.js';
import { drawCracks } from './cracks.js';
import { applyLighting, forEachInEllipse, pavementTexture } from './pavement.js';
import { createRandom, deriveSeed, type Random } from '../util/random.js';

/** Defaults of {@link synthesizeDataset} and the `crackseg synth` command. */
export const SYNTH_DEFAULTS = {
  train: 60,
  val: 20,
  test: 20,
  width: 640,
  height: 360,
  seed: 0,
  /** Every n-th image of a split has no crack, for n = 1 / this. */
  crackFreeFraction: 0.125,
} as const;

/** The splits, with Crack500's list-file and folder names. */
export const SPLITS = [
  { name: 'train', listFile: 'train.txt', folder: 'traincrop' },
  { name: 'val', listFile: 'val.txt', folder: 'valcrop' },
  { name: 'test', listFile: 'test.txt', folder: 'testcrop' },
] as const;

export type SplitName = (typeof SPLITS)[number]['name'];

export interface SynthOptions {
  /** The data root to write. */
  out: string;
  /** Images per split. */
  train?: number;
  val?: number;
  test?: number;
  width?: number;
  height?: number;
  seed?: number;
  crackFreeFraction?: number;
  /** Stops between images (after the writes in flight finish) with an `AbortError`. */
  signal?: AbortSignal;
}

/** One synthetic sample before encoding. */
export interface SynthSample {
  image: RgbImage;
  mask: BinaryMask;
  /** The JPEG quality the image is saved at: its compression artefacts are part of the texture. */
  jpegQuality: number;
}

/** What was written, per split. */
export interface SynthSummary {
  root: string;
  splits: Array<{ name: SplitName; listFile: string; count: number; crackFree: number }>;
}

/** Covers parts of the cracks with debris (gravel, dirt); covered pixels leave the mask. */
function occlude(
  field: Float32Array,
  darkness: Float32Array,
  mask: Uint8Array,
  width: number,
  height: number,
  rng: Random,
): void {
  const crackPixels: number[] = [];
  for (let i = 0; i < mask.length; i++) if (mask[i]) crackPixels.push(i);
  if (crackPixels.length === 0) return;
  for (let k = 1 + rng.int(3); k > 0; k--) {
    const centre = crackPixels[rng.int(crackPixels.length)]!;
    const [cx, cy] = [centre % width, Math.floor(centre / width)];
    const [rx, ry] = [rng.uniform(3, 9), rng.uniform(3, 9)];
    const level = rng.uniform(90, 190);
    forEachInEllipse(width, height, { cx, cy, rx, ry }, (i) => {
      field[i] = level + rng.uniform(-25, 25);
      darkness[i] = 0;
      mask[i] = 0;
    });
  }
}

/** One image and its mask, fully determined by `seed`. */
export function synthesizeSample(
  width: number,
  height: number,
  seed: number,
  crackFree: boolean,
): SynthSample {
  const rng = createRandom(seed);
  const field = pavementTexture(width, height, rng);
  const mask = new Uint8Array(width * height);
  if (!crackFree) {
    const cracks = drawCracks(width, height, rng);
    if (rng.chance(0.3)) occlude(field.data, cracks.darkness, cracks.mask, width, height, rng);
    for (let i = 0; i < field.data.length; i++) field.data[i]! *= 1 - cracks.darkness[i]!;
    mask.set(cracks.mask);
  }
  applyLighting(field, rng);
  // A slight colour cast (warm or cool grey) and per-channel grain.
  const tint = [0, 1, 2].map(() => 1 + rng.uniform(-0.04, 0.04));
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < field.data.length; i++) {
    for (let c = 0; c < 3; c++) {
      const value = field.data[i]! * tint[c]! + (rng.next() - 0.5) * 4;
      data[i * 3 + c] = value < 0 ? 0 : value > 255 ? 255 : Math.round(value);
    }
  }
  return {
    image: { width, height, data },
    mask: { width, height, data: mask },
    jpegQuality: 60 + rng.int(33),
  };
}

/** Whether image `index` of a split is crack-free: spread evenly, `floor(n * fraction)` of n. */
export function isCrackFree(index: number, fraction: number): boolean {
  return Math.floor((index + 1) * fraction) > Math.floor(index * fraction);
}

/** Encodes and writes one sample: JPEG image, PNG mask with 0/255. */
async function writeSample(
  sample: SynthSample,
  imagePath: string,
  maskPath: string,
): Promise<void> {
  const { image, mask, jpegQuality } = sample;
  const jpeg = sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
    .jpeg({ quality: jpegQuality })
    .toBuffer();
  const png = sharp(
    Uint8Array.from(mask.data, (v) => v * 255),
    {
      raw: { width: mask.width, height: mask.height, channels: 1 },
    },
  )
    .png()
    .toBuffer();
  const [jpegBytes, pngBytes] = await Promise.all([jpeg, png]);
  await Promise.all([writeFileAtomic(imagePath, jpegBytes), writeFileAtomic(maskPath, pngBytes)]);
}

/**
 * Writes a synthetic dataset under `options.out`: `traincrop/`, `valcrop/`, `testcrop/` with
 * `<split>_<nnnn>.jpg` images beside same-named `.png` masks, and `train.txt`, `val.txt`,
 * `test.txt` listing them. Image k of a split depends only on (seed, split, k, size).
 */
export async function synthesizeDataset(options: SynthOptions): Promise<SynthSummary> {
  const settings = { ...SYNTH_DEFAULTS, ...options };
  const { out, width, height, seed, crackFreeFraction } = settings;
  for (const [name, value] of Object.entries({
    width,
    height,
    train: settings.train,
    val: settings.val,
    test: settings.test,
  })) {
    const least = name === 'width' || name === 'height' ? 1 : 0;
    if (!Number.isInteger(value) || value < least)
      throw new RangeError(`${name} must be an integer ≥ ${least}, got ${value}`);
  }
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be an integer, got ${seed}`);
  const summary: SynthSummary = { root: out, splits: [] };
  // Encoding runs on libuv threads while the next image is drawn; the window bounds memory. Each
  // write is awaited in turn; a failure is held until the others settle, so none rejects unseen.
  const pending: Promise<void>[] = [];
  try {
    await writeSplits();
  } catch (err) {
    await Promise.allSettled(pending);
    throw err;
  }
  return summary;

  async function writeSplits(): Promise<void> {
    for (const split of SPLITS) {
      const count = settings[split.name];
      const digits = Math.max(4, String(count - 1).length);
      const lines: string[] = [];
      let crackFree = 0;
      for (let index = 0; index < count; index++) {
        const id = `${split.name}_${String(index).padStart(digits, '0')}`;
        const free = isCrackFree(index, crackFreeFraction);
        crackFree += free ? 1 : 0;
        const sample = synthesizeSample(width, height, deriveSeed(seed, split.name, index), free);
        const [image, mask] = [`${split.folder}/${id}.jpg`, `${split.folder}/${id}.png`];
        lines.push(`${image} ${mask}`);
        const write = writeSample(sample, join(out, image), join(out, mask));
        write.catch(() => undefined); // handled where it is awaited, below or in the catch above
        pending.push(write);
        if (pending.length >= 4) await pending.shift();
        if (options.signal?.aborted) {
          const error = new Error('synthesis aborted');
          error.name = 'AbortError';
          throw error;
        }
      }
      while (pending.length > 0) await pending.shift();
      await writeFileAtomic(join(out, split.listFile), lines.map((l) => `${l}\n`).join(''));
      summary.splits.push({ name: split.name, listFile: split.listFile, count, crackFree });
    }
  }
}
