/**
 * Arrays kept in native memory between threads (the addon's tensor store): a sample thread holds
 * an image and its mask, `predictBatch({hold})` holds masks and probability maps, and the thread
 * that needs the pixels takes or reads them. The JS thread feeding the device only passes
 * handles, so it neither copies nor collects those pixels. Whoever ends up with a held array
 * takes or releases it.
 */
import { binding } from './binding.js';
import {
  isHeld,
  type BinaryMask,
  type HeldPlane,
  type ProbabilityMap,
  type RgbImage,
} from './image.js';

/** An image or mask held in native memory (copied there); its size travels with the handle. */
export function hold(array: RgbImage | BinaryMask, channels: 1 | 3): HeldPlane {
  const { width, height, data } = array;
  const shape = channels === 3 ? [height, width, 3] : [height, width];
  return { width, height, handle: binding().holdTensor({ data, shape, dtype: 'uint8' }) };
}

/** A mask as an array: a held one is taken (its handle spent) on the calling thread. */
export function takeHeld(plane: BinaryMask | HeldPlane): BinaryMask;
/** A probability map as an array: a held one is taken on the calling thread. */
export function takeHeld(plane: ProbabilityMap | HeldPlane): ProbabilityMap;
export function takeHeld(
  plane: BinaryMask | ProbabilityMap | HeldPlane,
): BinaryMask | ProbabilityMap {
  if (!isHeld(plane)) return plane;
  const { width, height } = plane;
  const data = binding().takeTensor(plane.handle).data as Uint8Array | Float32Array;
  return { width, height, data } as BinaryMask | ProbabilityMap;
}

/** A mask or an image as an array: a held one is copied, and stays held for other readers. */
export function readHeld<T extends BinaryMask | RgbImage>(plane: T | HeldPlane): T {
  if (!isHeld(plane)) return plane;
  const { width, height } = plane;
  return { width, height, data: binding().readTensor(plane.handle).data as Uint8Array } as T;
}

/** Drops what is still held of `planes` (taken ones and arrays are ignored). */
export function releaseHeld(planes: ReadonlyArray<object | undefined>): void {
  const handles = planes.flatMap((p) => (p && isHeld(p) ? [p.handle] : []));
  if (handles.length > 0) binding().releaseTensors(handles);
}
