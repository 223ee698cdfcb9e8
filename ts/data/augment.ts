/**
 * Training augmentation, seeded: flips and quarter turns (image and mask together, so they stay
 * aligned; a quarter turn swaps width and height), and brightness/contrast (image only).
 */
import type { BinaryMask, RgbImage } from '../image.js';
import type { Random } from '../util/random.js';

/** Which augmentations are drawn, and how strong the photometric ones are. */
export interface AugmentOptions {
  /** Horizontal and vertical flips, each with probability 1/2. */
  flips: boolean;
  /** Rotations by 0, 90, 180 or 270 degrees clockwise, equally likely. */
  quarterTurns: boolean;
  /** Brightness shift drawn uniformly in ±this fraction of the 0..255 range. */
  brightness: number;
  /** Contrast factor drawn uniformly in 1 ± this, around the image's mean grey. */
  contrast: number;
}

/** The augmentation of `train({augment: true})`. */
export const DEFAULT_AUGMENT: AugmentOptions = {
  flips: true,
  quarterTurns: true,
  brightness: 0.1,
  contrast: 0.2,
};

/** One drawn augmentation. Geometry is applied as: flips first, then the quarter turns. */
export interface Augmentation {
  flipHorizontal: boolean;
  flipVertical: boolean;
  /** Clockwise quarter turns, 0..3. */
  quarterTurns: 0 | 1 | 2 | 3;
  /** Added to every channel, in 0..255 units. */
  brightnessShift: number;
  /** Multiplies each channel's distance from the image's mean grey. */
  contrastFactor: number;
}

/** The augmentation that changes nothing. */
export const IDENTITY_AUGMENTATION: Augmentation = {
  flipHorizontal: false,
  flipVertical: false,
  quarterTurns: 0,
  brightnessShift: 0,
  contrastFactor: 1,
};

/** Draws one augmentation from `rng` (always the same number of draws, whatever is enabled). */
export function drawAugmentation(rng: Random, options: AugmentOptions): Augmentation {
  const [h, v, turns, b, c] = [rng.next(), rng.next(), rng.int(4), rng.next(), rng.next()];
  return {
    flipHorizontal: options.flips && h < 0.5,
    flipVertical: options.flips && v < 0.5,
    quarterTurns: (options.quarterTurns ? turns : 0) as Augmentation['quarterTurns'],
    brightnessShift: (2 * b - 1) * options.brightness * 255,
    contrastFactor: 1 + (2 * c - 1) * options.contrast,
  };
}

/**
 * Where output pixel (x, y) comes from, as a source pixel index: flips and quarter turns are
 * affine, so the index is `offset + x·stepX + y·stepY`, and image and mask share the mapping.
 */
function sourceMapping(width: number, height: number, aug: Augmentation) {
  const turned = aug.quarterTurns % 2 === 1;
  const [outWidth, outHeight] = turned ? [height, width] : [width, height];
  const sourceIndex = (x: number, y: number) => {
    // Undo the clockwise turn: output (x, y) of a W×H → H×W turn came from (y, H-1-x).
    let [sx, sy] = [x, y];
    if (aug.quarterTurns === 1) [sx, sy] = [y, height - 1 - x];
    else if (aug.quarterTurns === 2) [sx, sy] = [width - 1 - x, height - 1 - y];
    else if (aug.quarterTurns === 3) [sx, sy] = [width - 1 - y, x];
    // Then undo the flips, which were applied first.
    if (aug.flipHorizontal) sx = width - 1 - sx;
    if (aug.flipVertical) sy = height - 1 - sy;
    return sy * width + sx;
  };
  const offset = sourceIndex(0, 0);
  return {
    outWidth,
    outHeight,
    offset,
    stepX: sourceIndex(1, 0) - offset,
    stepY: sourceIndex(0, 1) - offset,
  };
}

/**
 * Applies `aug` to an image and its mask (which must have the image's size); the identity
 * returns them as they are.
 */
export function augmentSample(
  image: RgbImage,
  mask: BinaryMask,
  aug: Augmentation,
): { image: RgbImage; mask: BinaryMask } {
  const { width, height } = image;
  if (mask.width !== width || mask.height !== height)
    throw new Error(`mask is ${mask.width}x${mask.height} but the image is ${width}x${height}`);
  const unchanged = (Object.keys(IDENTITY_AUGMENTATION) as Array<keyof Augmentation>).every(
    (key) => aug[key] === IDENTITY_AUGMENTATION[key],
  );
  if (unchanged) return { image, mask };
  const { outWidth, outHeight, offset, stepX, stepY } = sourceMapping(width, height, aug);
  const pixels = new Uint8Array(image.data.length);
  const labels = new Uint8Array(mask.data.length);
  const [source, sourceLabels] = [image.data, mask.data];
  let i = 0;
  for (let y = 0; y < outHeight; y++) {
    let from = offset + y * stepY;
    for (let x = 0; x < outWidth; x++, i++, from += stepX) {
      labels[i] = sourceLabels[from]!;
      pixels[i * 3] = source[from * 3]!;
      pixels[i * 3 + 1] = source[from * 3 + 1]!;
      pixels[i * 3 + 2] = source[from * 3 + 2]!;
    }
  }
  adjustBrightnessContrast(pixels, aug.brightnessShift, aug.contrastFactor);
  return {
    image: { width: outWidth, height: outHeight, data: pixels },
    mask: { width: outWidth, height: outHeight, data: labels },
  };
}

/** In place: `v ← (v − mean)·contrast + mean + shift`, rounded and clamped to 0..255. */
function adjustBrightnessContrast(pixels: Uint8Array, shift: number, contrast: number): void {
  if (shift === 0 && contrast === 1) return;
  let sum = 0;
  for (let i = 0; i < pixels.length; i++) sum += pixels[i]!;
  const mean = pixels.length > 0 ? sum / pixels.length : 0;
  const lookup = new Uint8Array(256);
  for (let v = 0; v < 256; v++) {
    const out = Math.round((v - mean) * contrast + mean + shift);
    lookup[v] = out < 0 ? 0 : out > 255 ? 255 : out;
  }
  for (let i = 0; i < pixels.length; i++) pixels[i] = lookup[pixels[i]!]!;
}
