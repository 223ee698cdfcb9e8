/**
 * Four mask pixels at a time: byte-wise operations on 32-bit words, for the per-pixel loops that
 * run on every 1024² prediction (docs/benchmarks.md, "Measurements behind code choices").
 */

/** Each byte of `word` becomes 1 if it was non-zero, else 0. */
export function nonZeroBytes(word: number): number {
  let x = word | (word >>> 1);
  x |= x >>> 2;
  x |= x >>> 4;
  return x & 0x01010101;
}

/** Sum of the four bytes of `word` when each is 0 or 1. */
export function sumBytes(word: number): number {
  return Math.imul(word, 0x01010101) >>> 24;
}

/** `bytes` as 32-bit words over the same memory, or null when its offset is not 4-aligned. */
export function wordsOf(bytes: Uint8Array): Uint32Array | null {
  return bytes.byteOffset % 4 === 0
    ? new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length >> 2)
    : null;
}
