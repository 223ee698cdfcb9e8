/**
 * Zhang–Suen thinning, pixel-for-pixel the same as `skimage.morphology.skeletonize` (2D, its
 * default "zhang" method), which the Python seed project and the reference checks use. It runs
 * in the addon (native/skeleton.cc: the method, scikit-image's lookup table and how it departs
 * from the paper): skeletons are most of a scoring thread's work.
 */
import { binding, maskTensor } from '../binding.js';
import type { BinaryMask } from '../image.js';

/** The one-pixel-wide skeleton of `mask` (foreground = non-zero), same size, 0/1. */
export function zhangSuenSkeleton(mask: BinaryMask): BinaryMask {
  const { width, height } = mask;
  return { width, height, data: binding().zhangSuenSkeleton(maskTensor(mask)) };
}
