/**
 * The largest image crackseg decodes. A compressed file can be tiny and still decode to gigabytes
 * (a 420 KB PNG of 12000 × 12000 pixels), so the size is checked from the file's header before
 * any pixel is decoded.
 */

/**
 * Default limit: 8192 × 8192 pixels (64 Mi pixels). Above every camera and drone photo in common
 * use (a 45-megapixel frame is 8192 × 5460) and 290 times a Crack500 image, while keeping one
 * decoded image with its mask, prompts and prediction buffers within a few GB. Raise it with
 * `maxPixels` (`--max-pixels`).
 */
export const DEFAULT_MAX_PIXELS = 8192 * 8192;

/** Throws a RangeError stating the size and the limit when width × height exceeds `maxPixels`. */
export function assertPixelLimit(width: number, height: number, maxPixels: number): void {
  if (width * height > maxPixels) {
    throw new RangeError(
      `${width}x${height} is ${width * height} pixels, above the limit of ${maxPixels} ` +
        '(raise it with --max-pixels / maxPixels)',
    );
  }
}
