/**
 * What data-parallel training adds to train(): the gradient bucket size, agreement on stopping,
 * sums over ranks, and where a run saved by one world size resumes in another.
 */
import type { ListEntry } from '../data/list-file.js';
import { epochBatches } from '../train/batches.js';
import type { ProcessGroup } from './group.js';
import type { Shard } from './sampler.js';

/** Gradient bytes per all-reduce bucket after the first (c10d's DDP default, 25 MiB). */
export const GRADIENT_BUCKET_BYTES = 25 * 2 ** 20;

/**
 * Whether to stop at this optimizer-step boundary: `signal` aborted here, or (with a group) on
 * any rank, so that all ranks stop after the same step. Every rank calls it at the same steps.
 */
export async function agreeToStop(
  group: ProcessGroup | undefined,
  signal: AbortSignal | undefined,
): Promise<boolean> {
  const here = signal?.aborted ?? false;
  return group ? group.any(here) : here;
}

/** Each field summed over the ranks (all ranks pass objects with the same keys). */
export async function sumAcrossRanks<T extends { [K in keyof T]: number }>(
  group: ProcessGroup,
  values: T,
): Promise<T> {
  const keys = (Object.keys(values) as Array<keyof T & string>).sort();
  const sums = await group.allreduceSum(keys.map((key) => values[key]));
  return Object.fromEntries(keys.map((key, i) => [key, sums[i]!])) as T;
}

/**
 * The micro-batch, in this run's world size, where an unfinished epoch saved by `saved.worldSize`
 * ranks continues. The first k batches of every rank are together the first k × ranks × batch
 * samples of the epoch's order (distributed/sampler.ts), so the same samples are done when the
 * counts convert exactly into whole optimizer steps; otherwise this throws.
 */
export function resumedBatchInEpoch(
  saved: { epoch: number; batchInEpoch: number; worldSize?: number },
  entries: readonly ListEntry[],
  plan: { batchSize: number; gradientAccumulation: number; seed: number },
  shard: Shard | undefined,
): number {
  const before = saved.worldSize ?? 1;
  const now = shard?.worldSize ?? 1;
  if (before === now || saved.batchInEpoch === 0) return saved.batchInEpoch;
  const batchesOf = (worldSize: number) =>
    epochBatches(entries, { ...plan, shard: { rank: 0, worldSize } }, saved.epoch).length;
  // The epoch's training was done (stopped while validating): so it is now.
  if (saved.batchInEpoch === batchesOf(before)) return batchesOf(now);
  const samples = saved.batchInEpoch * plan.batchSize * before;
  const batches = samples / (plan.batchSize * now);
  if (!Number.isInteger(batches) || batches % plan.gradientAccumulation !== 0)
    throw new Error(
      `cannot resume epoch ${saved.epoch + 1} mid-way with ${now} rank(s): the ${samples} samples ` +
        `${before} rank(s) trained on are not whole optimizer steps of ${now} rank(s) ` +
        `(batch ${plan.batchSize} × accumulation ${plan.gradientAccumulation}); resume with ${before} rank(s)`,
    );
  return batches;
}
