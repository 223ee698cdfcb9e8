/**
 * The distributed environment a process was started in, as torchrun (and `crackseg train
 * --nproc-per-node`) set it: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT. Slurm and
 * Kubernetes job specs set the same five (docs/distributed.md).
 */

export interface DistributedEnv {
  /** 0..worldSize-1, unique across machines. */
  rank: number;
  worldSize: number;
  /** The rank among this machine's processes: the GPU it uses (`cuda:localRank`). */
  localRank: number;
  /** Host of rank 0, which serves the rendezvous store. */
  masterAddr: string;
  masterPort: number;
}

/**
 * The environment's distributed settings; null when WORLD_SIZE is unset or 1 (one process: no
 * group). A missing or malformed variable is an error naming it.
 */
export function distributedEnv(env: NodeJS.ProcessEnv = process.env): DistributedEnv | null {
  if (env.WORLD_SIZE === undefined) return null;
  const integer = (name: string, min: number, max: number, fallback?: number): number => {
    const text = env[name];
    if (text === undefined || text === '') {
      if (fallback !== undefined) return fallback;
      throw new Error(`${name} must be set when WORLD_SIZE is (torchrun's environment)`);
    }
    const value = Number(text);
    if (!/^\d+$/.test(text.trim()) || value < min || value > max)
      throw new Error(`${name} must be an integer from ${min} to ${max}, got '${text}'`);
    return value;
  };
  const worldSize = integer('WORLD_SIZE', 1, 1 << 20);
  if (worldSize === 1) return null;
  const masterAddr = env.MASTER_ADDR;
  if (!masterAddr)
    throw new Error('MASTER_ADDR must be set when WORLD_SIZE is (the host of rank 0)');
  return {
    rank: integer('RANK', 0, worldSize - 1),
    worldSize,
    localRank: integer('LOCAL_RANK', 0, 1 << 20, 0),
    masterAddr,
    masterPort: integer('MASTER_PORT', 1, 65535),
  };
}

/** The variables that put a worker process at `rank` of a job (what the launcher sets). */
export function workerEnv(env: DistributedEnv): Record<string, string> {
  return {
    RANK: String(env.rank),
    WORLD_SIZE: String(env.worldSize),
    LOCAL_RANK: String(env.localRank),
    MASTER_ADDR: env.masterAddr,
    MASTER_PORT: String(env.masterPort),
  };
}
