/**
 * Fault injection for the reliability tests (test/reliability/), through the environment:
 *   CRACKSEG_FAULT=kill@N    the process ends by SIGKILL at the Nth fault point;
 *   CRACKSEG_FAULT=enospc@N  the Nth file write fails as on a full disk (ENOSPC).
 * Fault points are the steps of the durable writes (ts/util/atomic.ts, the checkpoint set): after
 * a temporary file is written, after each rename or removal. Unset, nothing happens.
 */
const spec = /^(kill|enospc)@([1-9]\d*)$/.exec(process.env.CRACKSEG_FAULT ?? '');
const fault = spec ? { kind: spec[1] as 'kill' | 'enospc', at: Number(spec[2]) } : null;
let points = 0;
let writes = 0;

/** A durable step just finished: with `kill@N`, the Nth such point ends the process. */
export function faultPoint(): void {
  if (fault?.kind === 'kill' && ++points === fault.at) process.kill(process.pid, 'SIGKILL');
}

/** A file write is about to start: with `enospc@N`, the Nth one fails as on a full disk. */
export function faultBeforeWrite(): void {
  if (fault?.kind === 'enospc' && ++writes === fault.at)
    throw Object.assign(new Error('ENOSPC: no space left on device, write'), {
      code: 'ENOSPC',
      errno: -28,
      syscall: 'write',
    });
}
