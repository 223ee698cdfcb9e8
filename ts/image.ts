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

/**
 * An image-sized map kept in native memory (a prediction's mask or probabilities, see
 * `predictBatch`'s `hold`), where no JS thread has copied it yet.
 */
export interface HeldPlane {
  width: number;
  height: number;
  /** The addon's handle of the map's tensor. */
  handle: number;
}

/** Whether `plane` is held in native memory rather than a JS array. */
export function isHeld(plane: object): plane is HeldPlane {
  return 'handle' in plane;
}
