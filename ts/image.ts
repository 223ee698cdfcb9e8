/**
 * The in-memory image types that flow between stages: files → tensors → model → masks → metrics.
 * Pixels are row-major, top-left origin; `data[y * width + x]`.
 */

/** An 8-bit RGB image, channels interleaved: `data.length === width * height * 3`. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** A binary mask, one byte per pixel holding 0 or 1: `data.length === width * height`. */
export interface BinaryMask {
  width: number;
  height: number;
  data: Uint8Array;
}

/** A per-pixel probability map in [0, 1]: `data.length === width * height`. */
export interface ProbabilityMap {
  width: number;
  height: number;
  data: Float32Array;
}
