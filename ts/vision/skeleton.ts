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
  const image = new Uint8Array(stride * (height + 2));
  // Both scans below skip four background pixels at a time: thin cracks leave most words zero.
  const source = mask.data;
  const sourceWords =
    source.byteOffset % 4 === 0
      ? new Uint32Array(source.buffer, source.byteOffset, source.length >> 2)
      : null;
  for (let i = 0; i < source.length; i++) {
    if (sourceWords && (i & 3) === 0 && i + 4 <= source.length && sourceWords[i >> 2] === 0) {
      i += 3;
      continue;
    }
    // Pixel i = y·width + x lands at (y + 1)·stride + x + 1 = i + 2y + stride + 1.
    if (source[i]) image[i + 2 * ((i / width) | 0) + stride + 1] = 1;
  }
  // Work lists, one per sub-iteration: the pixels whose neighbourhood changed since that
  // sub-iteration last found them not removable. Removability depends only on the neighbourhood,
  // so the others need no second look: a solid blob costs its area once, not once per layer, and
  // the finished parts of a skeleton are not visited again while the rest thins.
  const work = new WorkLists(image.length);
  const imageWords = new Uint32Array(image.buffer, 0, image.length >> 2);
  for (let i = 0; i < image.length; i++) {
    if ((i & 3) === 0 && i + 4 <= image.length && imageWords[i >> 2] === 0) {
      i += 3;
      continue;
    }
    // Only a pixel with a background neighbour can be removable (REMOVABLE[255] is 0).
    if (image[i] && neighbourhood(image, i, stride) !== 255) work.add(i);
  }
  const around = [-stride - 1, -stride, -stride + 1, -1, 1, stride - 1, stride, stride + 1];
  let removable = new Int32Array(0);
  let removedInIteration = true;
  while (removedInIteration) {
    removedInIteration = false;
    for (const pass of [1, 2] as const) {
      const list = work.take(pass);
      if (removable.length < list.length) removable = new Int32Array(list.length);
      // Decided on the image as it stood, then applied at once (the parallel scheme).
      let found = 0;
      for (let k = 0; k < list.length; k++) {
        const i = list[k]!;
        if (image[i] && (REMOVABLE[neighbourhood(image, i, stride)] as number) & pass) {
          removable[found++] = i;
        }
      }
      if (found === 0) continue;
      removedInIteration = true;
      for (let k = 0; k < found; k++) image[removable[k]!] = 0;
      for (let k = 0; k < found; k++) {
        const i = removable[k]!;
        for (let n = 0; n < 8; n++) {
          const j = i + around[n]!;
          if (image[j]) work.add(j);
        }
      }
    }
  }
  const data = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    data.set(image.subarray((y + 1) * stride + 1, (y + 1) * stride + 1 + width), y * width);
  }
  return { width, height, data };
}

/** The 8 neighbours of pixel `i` packed as REMOVABLE's index. */
function neighbourhood(image: Uint8Array, i: number, stride: number): number {
  return (
    (image[i - stride - 1] as number) |
    ((image[i - stride] as number) << 1) |
    ((image[i - stride + 1] as number) << 2) |
    ((image[i + 1] as number) << 3) |
    ((image[i + stride + 1] as number) << 4) |
    ((image[i + stride] as number) << 5) |
    ((image[i + stride - 1] as number) << 6) |
    ((image[i - 1] as number) << 7)
  );
}

/**
 * The two sub-iterations' work lists: pixel indices, each at most once per list, with membership
 * as one bit per list in a byte per pixel (one look-up adds a pixel to both).
 */
class WorkLists {
  private readonly lists = [new Int32Array(1024), new Int32Array(1024)];
  private readonly lengths = [0, 0];
  private readonly member: Uint8Array;

  constructor(pixels: number) {
    this.member = new Uint8Array(pixels);
  }

  /** Puts pixel `i` on both lists (where it is not yet). */
  add(i: number): void {
    const bits = this.member[i]!;
    if (bits === 3) return;
    this.member[i] = 3;
    if (!(bits & 1)) this.push(0, i);
    if (!(bits & 2)) this.push(1, i);
  }

  /** Empties sub-iteration `pass`'s list and returns what it held. */
  take(pass: 1 | 2): Int32Array {
    const list = pass - 1;
    const items = this.lists[list]!.subarray(0, this.lengths[list]);
    const clear = ~pass;
    for (let k = 0; k < items.length; k++) this.member[items[k]!]! &= clear;
    this.lengths[list] = 0;
    // The next pushes go to a fresh array, so the items returned stay as they are.
    this.lists[list] = new Int32Array(Math.max(1024, items.length));
    return items;
  }

  private push(list: number, i: number): void {
    let items = this.lists[list]!;
    if (this.lengths[list] === items.length) {
      items = new Int32Array(2 * items.length);
      items.set(this.lists[list]!);
      this.lists[list] = items;
    }
    items[this.lengths[list]!++] = i;
  }
}
