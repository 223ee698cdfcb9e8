/**
 * A process group of c10d (PyTorch's distributed engine, in the addon): Gloo between CPU
 * processes, NCCL between GPUs. The collectives the JS side needs (sums of counts and flags, the
 * gathering of each rank's bytes, a barrier) run one at a time, in call order, so every rank
 * issues them in the same order.
 */
import { binding, type NativeProcessGroup } from '../binding.js';
import type { Device } from '../torch-module.js';
import type { DistributedEnv } from './env.js';

/** Joining and each collective fail after this long without the other ranks (torch's default). */
export const DEFAULT_TIMEOUT_SECONDS = 1800;

/** The device a rank computes on: its own GPU (`cuda:LOCAL_RANK`) when `device` is plain `cuda`. */
export function rankDevice(device: Device, env: DistributedEnv): Device {
  return device === 'cuda' ? `cuda:${env.localRank}` : device;
}

export class ProcessGroup {
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(readonly native: NativeProcessGroup) {}

  /**
   * Joins the group `env` describes once every rank has (rank 0 serves the store at
   * MASTER_ADDR:MASTER_PORT); NCCL when `device` is a GPU, else Gloo.
   */
  static async join(
    env: DistributedEnv,
    device: Device,
    timeoutSeconds: number = DEFAULT_TIMEOUT_SECONDS,
  ): Promise<ProcessGroup> {
    if (!(timeoutSeconds > 0))
      throw new RangeError(`timeout must be positive, got ${timeoutSeconds}`);
    const cuda = device.startsWith('cuda');
    const native = await binding().joinProcessGroup({
      rank: env.rank,
      worldSize: env.worldSize,
      masterAddr: env.masterAddr,
      masterPort: env.masterPort,
      backend: cuda ? 'nccl' : 'gloo',
      device: cuda ? device : 'cpu',
      timeoutMs: Math.round(timeoutSeconds * 1000),
    });
    return new ProcessGroup(native);
  }

  get rank(): number {
    return this.native.rank;
  }

  get worldSize(): number {
    return this.native.worldSize;
  }

  /** The element-wise sum of `values` over the ranks. */
  allreduceSum(values: ArrayLike<number>): Promise<Float64Array> {
    return this.inTurn(() => this.native.allreduceSum(Float64Array.from(values)));
  }

  /** Whether any rank says true. */
  async any(flag: boolean): Promise<boolean> {
    const [count] = await this.allreduceSum([flag ? 1 : 0]);
    return count! > 0;
  }

  /**
   * Every rank's `bytes`, by rank, on every rank: their lengths are summed over the ranks first,
   * then each rank's bytes padded to the longest are gathered (c10d's allgather).
   */
  async allgather(bytes: Uint8Array): Promise<Uint8Array[]> {
    const own = new Float64Array(this.worldSize);
    own[this.rank] = bytes.length;
    const lengths = await this.allreduceSum(own);
    const longest = Math.max(...lengths);
    const padded = new Uint8Array(longest);
    padded.set(bytes);
    const all = await this.inTurn(() => this.native.allgatherBytes(padded));
    return Array.from(lengths, (length, rank) =>
      all.subarray(rank * longest, rank * longest + length),
    );
  }

  barrier(): Promise<void> {
    return this.inTurn(() => this.native.barrier());
  }

  close(): void {
    this.native.close();
  }

  private inTurn<T>(collective: () => Promise<T>): Promise<T> {
    const result = this.queue.then(collective);
    this.queue = result.catch(() => undefined);
    return result;
  }
}
