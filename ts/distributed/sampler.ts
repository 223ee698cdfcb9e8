/**
 * Which samples a rank takes, as PyTorch's DistributedSampler: the epoch's shuffled order,
 * padded by repeating its start until it divides among the ranks, then every worldSize-th from
 * the rank's own position. Every rank gets the same count, and the first k of every rank together
 * are the first k × worldSize of the order (what lets a run resume with another world size).
 */

/** One rank's place among `worldSize`. */
export interface Shard {
  rank: number;
  worldSize: number;
}

/** Rank `shard.rank`'s part of `order` (padded: every rank the same length). */
export function shardOrder<T>(order: readonly T[], shard: Shard): T[] {
  const { rank, worldSize } = shard;
  if (worldSize === 1 || order.length === 0) return [...order];
  const perRank = Math.ceil(order.length / worldSize);
  const part: T[] = [];
  for (let k = 0; k < perRank; k++) part.push(order[(rank + k * worldSize) % order.length]!);
  return part;
}

/** Whether item `index` of a list is this rank's to evaluate (each item once, no padding). */
export function inShard(index: number, shard: Shard | undefined): boolean {
  return !shard || index % shard.worldSize === shard.rank;
}
