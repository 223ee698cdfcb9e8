/**
 * CPU time (user + system, ms) that `work` costs this process, for tests that bound how much work
 * a function does: unlike the wall time, it does not grow when other processes share the CPU.
 * Only for single-threaded JS work (a native call on several threads would count each thread).
 */
export function cpuMilliseconds(work: () => void): number {
  const before = process.cpuUsage();
  work();
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1000;
}
