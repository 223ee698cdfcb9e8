/**
 * The device loop of evaluation, validation and training: each batch is launched (handed to the
 * device, which runs jobs in call order) before the previous one is settled (its results read
 * back and handled on this thread), so the device never waits for the host between batches.
 */

export interface LaunchAheadSteps<T, L> {
  /** Starts an item's work and returns a handle to it; must not leave a rejection unhandled. */
  launch: (item: T) => L;
  /** Reads back and handles a launched item; items are settled in launch order. */
  settle: (launched: L) => Promise<void>;
  /**
   * Called before each item is launched: false ends the loop there (the item is not launched;
   * the one in flight is still settled). Default: always true.
   */
  proceed?: (item: T) => boolean;
  /**
   * When the loop fails (the items, `launch` or `settle` threw), waits for the item still in
   * flight, so nothing runs on the device once the error leaves; its own failure is ignored.
   */
  abandon: (launched: L) => Promise<unknown>;
}

/**
 * Launches each item of `items`, settling each one after launching the next; the last is settled
 * at the end. Resolves with `stopped: true` when `proceed` ended the loop.
 */
export async function launchAhead<T, L>(
  items: AsyncIterable<T> | Iterable<T>,
  steps: LaunchAheadSteps<T, L>,
): Promise<{ stopped: boolean }> {
  let inFlight: { launched: L } | null = null;
  let stopped = false;
  try {
    for await (const item of items) {
      if (steps.proceed && !steps.proceed(item)) {
        stopped = true;
        break;
      }
      const previous: { launched: L } | null = inFlight;
      // If launch throws, the previous item is the one in flight; if settle does, this one is.
      inFlight = { launched: steps.launch(item) };
      if (previous) await steps.settle(previous.launched);
    }
  } catch (error) {
    if (inFlight) await steps.abandon(inFlight.launched).catch(() => undefined);
    throw error;
  }
  if (inFlight) await steps.settle(inFlight.launched);
  return { stopped };
}
