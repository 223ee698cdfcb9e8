/**
 * The launcher of `--nproc-per-node N`, as torchrun's: starts this machine's N workers of the
 * job (the same command, with RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT set),
 * forwards SIGINT and SIGTERM to them, and once one fails stops the others and fails the job with
 * that rank's error. The workers run in their own process group, so a Ctrl-C at the terminal
 * reaches them once, through the launcher (a second one quits them at once).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { workerEnv } from './env.js';

/** MASTER_PORT of a job over several machines unless told (torchrun's). */
export const DEFAULT_MASTER_PORT = 29500;
/** Seconds the other workers get to exit once one failed, before SIGKILL. */
export const STOP_GRACE_SECONDS = 10;

export interface LaunchOptions {
  nprocPerNode: number;
  /** Machines in the job (default 1). */
  nnodes?: number;
  /** This machine's index, 0..nnodes-1 (default 0); machine 0 hosts rank 0. */
  nodeRank?: number;
  /** Host of rank 0 (default 127.0.0.1; required with several machines). */
  masterAddr?: string;
  /** Default: a free port on one machine, {@link DEFAULT_MASTER_PORT} on several. */
  masterPort?: number;
  /** The executable and arguments every worker runs. */
  command: string;
  args: readonly string[];
  env?: NodeJS.ProcessEnv;
  /** Where the workers' output goes, a line at a time (default: this process's streams). */
  write?: (stream: 'stdout' | 'stderr', line: string) => void;
}

export interface LaunchResult {
  /**
   * 0 when every worker succeeded; else the failing rank's code (128 + n for signal n); after a
   * forwarded SIGINT or SIGTERM that the workers obeyed (each exiting 128 + n), 128 + n.
   */
  exitCode: number;
  /** `rank R (pid P) …: its last error line`; null on success. */
  failure: string | null;
}

const SIGNAL_NUMBERS: Record<string, number> = { SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };

/** A TCP port free on this machine now. */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address
          ? resolvePort(address.port)
          : reject(new Error('no port')),
      );
    });
  });
}

/** Runs this machine's workers of the job to their end. */
export async function launchWorkers(options: LaunchOptions): Promise<LaunchResult> {
  const nnodes = options.nnodes ?? 1;
  const nodeRank = options.nodeRank ?? 0;
  const perNode = options.nprocPerNode;
  for (const [name, value, min] of [
    ['--nproc-per-node', perNode, 1],
    ['--nnodes', nnodes, 1],
    ['--node-rank', nodeRank, 0],
  ] as const)
    if (!Number.isInteger(value) || value < min)
      throw new RangeError(`${name} must be an integer ≥ ${min}, got ${value}`);
  if (nodeRank >= nnodes)
    throw new RangeError(`--node-rank ${nodeRank} is not below --nnodes ${nnodes}`);
  if (nnodes > 1 && !options.masterAddr)
    throw new Error('--master-addr (the host of node 0) is needed with several machines');
  const masterAddr = options.masterAddr ?? '127.0.0.1';
  const masterPort = options.masterPort ?? (nnodes === 1 ? await freePort() : DEFAULT_MASTER_PORT);
  const write =
    options.write ??
    ((stream, line) => (stream === 'stdout' ? process.stdout : process.stderr).write(`${line}\n`));

  let failure: { rank: number; text: string; exitCode: number } | null = null;
  // The stop signal forwarded to the workers: a worker that exits with its code did as asked.
  let forwarded: NodeJS.Signals | null = null;
  const lastError = new Map<number, string>();
  const workers: Array<{ rank: number; child: ChildProcess; done: Promise<void> }> = [];
  const stopOthers = () => {
    for (const { child } of workers)
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const killer = setTimeout(() => {
      for (const { child } of workers)
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }, STOP_GRACE_SECONDS * 1000);
    killer.unref();
  };
  for (let local = 0; local < perNode; local++) {
    const rank = nodeRank * perNode + local;
    const child = spawn(options.command, [...options.args], {
      env: {
        ...(options.env ?? process.env),
        ...workerEnv({
          rank,
          worldSize: nnodes * perNode,
          localRank: local,
          masterAddr,
          masterPort,
        }),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    // Rank 0's standard output reads as one process's; everything else says whose it is.
    createInterface({ input: child.stdout }).on('line', (line) =>
      write('stdout', rank === 0 ? line : `[rank ${rank}] ${line}`),
    );
    createInterface({ input: child.stderr }).on('line', (line) => {
      if (line.trim()) lastError.set(rank, line);
      write('stderr', `[rank ${rank}] ${line}`);
    });
    const done = new Promise<void>((resolveDone) => {
      child.on('error', (error) => {
        failure ??= { rank, text: `rank ${rank} could not start: ${error.message}`, exitCode: 1 };
        stopOthers();
        resolveDone();
      });
      child.on('close', (code, signal) => {
        const obeyed = forwarded !== null && code === 128 + SIGNAL_NUMBERS[forwarded]!;
        if ((code !== 0 || signal) && !obeyed && !failure) {
          const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
          const last = lastError.get(rank);
          failure = {
            rank,
            text: `rank ${rank} (pid ${child.pid}) ${how}${last ? `: ${last}` : ''}`,
            exitCode: signal ? 128 + (SIGNAL_NUMBERS[signal] ?? 1) : code || 1,
          };
          stopOthers();
        }
        resolveDone();
      });
    });
    workers.push({ rank, child, done });
  }
  const forward = (signal: NodeJS.Signals) => () => {
    forwarded ??= signal;
    for (const { child } of workers) if (child.exitCode === null) child.kill(signal);
  };
  const onInterrupt = forward('SIGINT');
  const onTerminate = forward('SIGTERM');
  process.on('SIGINT', onInterrupt);
  process.on('SIGTERM', onTerminate);
  try {
    await Promise.all(workers.map((w) => w.done));
  } finally {
    process.off('SIGINT', onInterrupt);
    process.off('SIGTERM', onTerminate);
  }
  const failed = failure as { rank: number; text: string; exitCode: number } | null;
  const stopped = forwarded as NodeJS.Signals | null;
  if (failed) return { exitCode: failed.exitCode, failure: failed.text };
  return { exitCode: stopped ? 128 + SIGNAL_NUMBERS[stopped]! : 0, failure: null };
}
