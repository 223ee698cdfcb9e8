/**
 * The flags `train` and `evaluate` share for running across processes: torchrun's launcher flags
 * (`--nproc-per-node` makes this process the launcher of this machine's workers) and the group
 * timeout. A worker finds its place in the environment (distributed/env.ts).
 */
import type { Command } from 'commander';
import { distributedEnv, type DistributedEnv } from '../distributed/env.js';
import { DEFAULT_TIMEOUT_SECONDS, ProcessGroup, rankDevice } from '../distributed/group.js';
import { launchWorkers } from '../distributed/launch.js';
import type { Device } from '../torch-module.js';
import {
  parseNonNegativeInteger,
  parseNonNegativeNumber,
  parsePositiveInteger,
} from './options.js';

export interface DistributedFlags {
  nprocPerNode?: number;
  nnodes: number;
  nodeRank: number;
  masterAddr?: string;
  masterPort?: number;
  distTimeout: number;
}

/** The launcher's flags, which its workers do not get. */
const LAUNCHER_FLAGS = [
  '--nproc-per-node',
  '--nnodes',
  '--node-rank',
  '--master-addr',
  '--master-port',
];

export function addDistributedOptions(command: Command): Command {
  return command
    .option(
      '--nproc-per-node <n>',
      'start n worker processes on this machine (one per GPU) and train/evaluate data-parallel',
      parsePositiveInteger,
    )
    .option('--nnodes <n>', 'machines in the job (with --nproc-per-node)', parsePositiveInteger, 1)
    .option('--node-rank <i>', "this machine's index, 0..nnodes-1", parseNonNegativeInteger, 0)
    .option('--master-addr <host>', 'host of rank 0 (default 127.0.0.1 on one machine)')
    .option('--master-port <port>', 'port of the rendezvous on rank 0', parsePositiveInteger)
    .option(
      '--dist-timeout <seconds>',
      'a rank waiting longer than this for the others fails',
      parseNonNegativeNumber,
      DEFAULT_TIMEOUT_SECONDS,
    );
}

/** `argv` without the launcher's flags and their values. */
export function workerArguments(argv: readonly string[]): string[] {
  const kept: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (LAUNCHER_FLAGS.includes(arg)) i++;
    else if (!LAUNCHER_FLAGS.some((flag) => arg.startsWith(`${flag}=`))) kept.push(arg);
  }
  return kept;
}

/**
 * With `--nproc-per-node`: runs this machine's workers (this same command line without the
 * launcher's flags) to their end, sets the exit code and returns true; else false.
 */
export async function launchIfAsked(flags: DistributedFlags): Promise<boolean> {
  if (flags.nprocPerNode === undefined) return false;
  if (distributedEnv())
    throw new Error(
      '--nproc-per-node inside a distributed job (WORLD_SIZE is set): use one or the other',
    );
  const result = await launchWorkers({
    nprocPerNode: flags.nprocPerNode,
    nnodes: flags.nnodes,
    nodeRank: flags.nodeRank,
    ...(flags.masterAddr ? { masterAddr: flags.masterAddr } : {}),
    ...(flags.masterPort ? { masterPort: flags.masterPort } : {}),
    command: process.execPath,
    args: [...process.execArgv, ...workerArguments(process.argv.slice(1))],
  });
  if (result.failure) console.error(`crackseg: ${result.failure}; the other ranks were stopped`);
  if (result.exitCode !== 0) process.exitCode = result.exitCode;
  return true;
}

/** This process's group and device, when its environment puts it in a distributed job. */
export async function joinFromEnv(
  device: Device,
  flags: DistributedFlags,
): Promise<{ group: ProcessGroup | null; device: Device; env: DistributedEnv | null }> {
  const env = distributedEnv();
  if (!env) return { group: null, device, env };
  const own = rankDevice(device, env);
  return { group: await ProcessGroup.join(env, own, flags.distTimeout), device: own, env };
}
