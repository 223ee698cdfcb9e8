/** Progress of an evaluation for API users and the CLI: images done, rate and time left. */

export interface EvaluationProgress {
  /** Images finished (written, or skipped as bad). */
  done: number;
  /** Images in the list file. */
  total: number;
  /** Finished images per second since the start. */
  imagesPerSecond: number;
  /** At the current rate; null before the first image. */
  etaSeconds: number | null;
}

/** Counts finished images and reports each change to `onProgress`. */
export class ProgressMeter {
  private readonly started = performance.now();
  private written = 0;
  private skips = 0;

  constructor(
    readonly total: number,
    private readonly onProgress?: (progress: EvaluationProgress) => void,
  ) {}

  /** Images written so far. */
  get count(): number {
    return this.written;
  }

  done(images: number): void {
    this.written += images;
    this.report();
  }

  skipped(): void {
    this.skips++;
    this.report();
  }

  private report(): void {
    if (!this.onProgress) return;
    const done = this.written + this.skips;
    const seconds = (performance.now() - this.started) / 1000;
    const imagesPerSecond = seconds > 0 ? done / seconds : 0;
    this.onProgress({
      done,
      total: this.total,
      imagesPerSecond,
      etaSeconds: imagesPerSecond > 0 ? Math.max(0, this.total - done) / imagesPerSecond : null,
    });
  }
}
