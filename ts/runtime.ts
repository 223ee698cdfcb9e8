/** What libtorch the addon runs on, and its thread settings. */
import { binding, type RuntimeInfo } from './binding.js';

export type { RuntimeInfo };

export function runtimeInfo(): RuntimeInfo {
  return binding().runtimeInfo();
}

/** Sets libtorch's intra-op thread count (process-wide). */
export function setThreads(threads: number): void {
  binding().setThreads(threads);
}
