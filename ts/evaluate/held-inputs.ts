/**
 * The native memory an evaluation holds: each sample's image and mask from when its thread
 * loaded them, and each saved-only prediction. One owner releases every plane, on every path:
 * when the work reading it settles (succeeded or not), or, for what the run never reached, at
 * {@link HeldInputs.close}.
 */
import type { HeldSample } from '../data/sample-pool.js';
import { releaseHeld } from '../held.js';

export class HeldInputs {
  /** Loaded, not yet handed to the device. */
  private readonly unlaunched = new Set<HeldSample>();
  private readonly loads = new Set<Promise<unknown>>();
  private readonly releases = new Set<Promise<unknown>>();

  /** A sample being loaded: once loaded, its planes are held here until launched. */
  track(load: Promise<HeldSample>): Promise<HeldSample> {
    const tracked = load.then((sample) => (this.unlaunched.add(sample), sample));
    this.loads.add(tracked);
    void tracked.catch(() => undefined).finally(() => this.loads.delete(tracked));
    return tracked;
  }

  /** The batch goes to the device: its planes are released through {@link releaseAfter}. */
  launched(batch: readonly HeldSample[]): void {
    for (const sample of batch) this.unlaunched.delete(sample);
  }

  /** Releases `planes` once `work` settles, whichever way. Released twice is harmless. */
  releaseAfter(work: Promise<unknown>, planes: ReadonlyArray<object | undefined>): void {
    const release = work.then(
      () => releaseHeld(planes),
      () => releaseHeld(planes),
    );
    this.releases.add(release);
    void release.then(() => this.releases.delete(release));
  }

  /** Resolves once every release asked for so far is done. */
  async released(): Promise<void> {
    await Promise.all(this.releases);
  }

  /**
   * Waits for the loads in flight and releases every sample never launched (read ahead but not
   * batched, or batched but not launched).
   */
  async close(): Promise<void> {
    await Promise.allSettled([...this.loads]);
    const left = [...this.unlaunched];
    this.unlaunched.clear();
    releaseHeld(left.flatMap((sample) => [sample.image, sample.mask]));
  }
}
