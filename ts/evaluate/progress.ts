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
  private written = 0;
  private skips = 0;
  /** Seconds from the start to the first image written, and the images written then. */
  private first: { seconds: number; images: number } | null = null;

  /** `started`: when the run began (`performance.now()`), by default now. */
  constructor(
    readonly total: number,
    private readonly onProgress?: (progress: EvaluationProgress) => void,
    private readonly started = performance.now(),
  ) {}

  /** Images written so far. */
  get count(): number {
    return this.written;
  }

  /**
   * Images/s from the first written batch until now (null before a second batch): the
   * pipeline's pace without its start-up.
   */
  steadyRate(): number | null {
    const images = this.written - (this.first?.images ?? this.written);
    const seconds = (performance.now() - this.started) / 1000;
    return this.first && images > 0 ? images / (seconds - this.first.seconds) : null;
  }

  /** Seconds from the start to the first image written; null before. */
  get firstImageSeconds(): number | null {
    return this.first?.seconds ?? null;
  }

  done(images: number): void {
    this.written += images;
    if (!this.first && images > 0)
      this.first = { seconds: (performance.now() - this.started) / 1000, images };
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
