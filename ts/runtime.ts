/** What libtorch the addon runs on, its thread settings, and device memory. */
import { binding, type DeviceMemory, type RuntimeInfo } from './binding.js';

export type { DeviceMemory, RuntimeInfo };

export function runtimeInfo(): RuntimeInfo {
  return binding().runtimeInfo();
}

/** Bytes held by libtorch's CUDA caching allocator on `device` ('cuda', 'cuda:N'); null for 'cpu'. */
export function deviceMemory(device: string): DeviceMemory | null {
  return binding().deviceMemory(device);
}

/** Starts the peaks of {@link deviceMemory} afresh (as torch.cuda.reset_peak_memory_stats). */
export function resetPeakDeviceMemory(device: string): void {
  binding().resetPeakDeviceMemory(device);
}

/** Sets libtorch's intra-op thread count (process-wide). */
export function setThreads(threads: number): void {
  binding().setThreads(threads);
}
