/**
 * Zhang–Suen thinning, pixel-for-pixel the same as `skimage.morphology.skeletonize` (2D, its
 * default "zhang" method), which the Python seed project and the reference checks use.
 *
 * The method is the parallel two-sub-iteration scheme of Zhang & Suen (CACM 27(3), 1984): in each
 * sub-iteration every foreground pixel whose 8-neighbourhood is "removable" is found on the image
 * as it stood, then all are removed at once; repeat until nothing changes. Which neighbourhoods are
 * removable comes from scikit-image's lookup table (BSD-3-Clause), copied below. It departs from the
 * paper's conditions in 25 of the 256 neighbourhoods — staircase corners (e.g. N and E set, NE
 * clear) are removable, and two-pixel end configurations are removed in only one of the two
 * sub-iterations, or never — so lines come out one pixel thin without the paper's staircases and
 * short end spurs do not erode away. Matching it keeps skeleton-based metrics comparable with
 * results computed in Python.
 */
import type { BinaryMask } from '../image.js';

/**
 * Indexed by the 8 neighbours packed as bits: NW=1, N=2, NE=4, E=8, SE=16, S=32, SW=64, W=128.
 * 1: removable in the first sub-iteration, 2: in the second, 3: in both, 0: never.
 */
const REMOVABLE = new Uint8Array([
  0, 0, 0, 1, 0, 0, 1, 3, 0, 0, 3, 1, 1, 0, 1, 3, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 2, 0, 3, 0, 3, 3, 0,
  0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 3, 0, 2, 2, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0,
  0, 0, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 3, 0, 2, 0, 0, 0, 3, 1,
  0, 0, 1, 3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 3, 1, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3, 1, 3, 0, 0,
  1, 3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3, 0, 1, 0, 0, 0,
  1, 0, 0, 0, 0, 0, 0, 0, 0, 3, 3, 0, 1, 0, 0, 0, 0, 2, 2, 0, 0, 2, 0, 0, 0,
]);

/** The one-pixel-wide skeleton of `mask` (foreground = non-zero), same size, 0/1. */
export function zhangSuenSkeleton(mask: BinaryMask): BinaryMask {
  const { width, height } = mask;
  // A one-pixel border of background spares every bounds check below.
  const stride = width + 2;
  const current = new Uint8Array(stride * (height + 2));
  // Only foreground pixels can be removed: each sub-iteration visits those still set, so thin
  // cracks cost their own size, not the image's, per sub-iteration.
  let foreground = new Int32Array(width * height);
  let count = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (!mask.data[y * width + x]) continue;
      const i = (y + 1) * stride + x + 1;
      current[i] = 1;
      foreground[count++] = i;
    }
  }
  foreground = foreground.subarray(0, count);
  const removable = new Int32Array(count);
  const at = (i: number) => current[i] as number;
  let removed = true;
  while (removed) {
    removed = false;
    for (const pass of [1, 2]) {
      // Decided on the image as it stood, then applied at once (the parallel scheme).
      let found = 0;
      for (let k = 0; k < count; k++) {
        const i = foreground[k]!;
        const code =
          at(i - stride - 1) |
          (at(i - stride) << 1) |
          (at(i - stride + 1) << 2) |
          (at(i + 1) << 3) |
          (at(i + stride + 1) << 4) |
          (at(i + stride) << 5) |
          (at(i + stride - 1) << 6) |
          (at(i - 1) << 7);
        if ((REMOVABLE[code] as number) & pass) removable[found++] = i;
      }
      if (found === 0) continue;
      removed = true;
      for (let k = 0; k < found; k++) current[removable[k]!] = 0;
      let kept = 0;
      for (let k = 0; k < count; k++)
        if (current[foreground[k]!]) foreground[kept++] = foreground[k]!;
      count = kept;
    }
  }
  const data = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    data.set(current.subarray((y + 1) * stride + 1, (y + 1) * stride + 1 + width), y * width);
  }
  return { width, height, data };
}
