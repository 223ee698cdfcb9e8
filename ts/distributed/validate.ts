/** Sharded validation: every rank's per-image metrics, gathered to every rank. */
import { readList } from '../data/dataset.js';
import type { ProcessGroup } from './group.js';

/** One validation image's metrics, by its position in the list. */
export interface ImageMetrics {
  index: number;
  iou: number;
  dice: number;
  f1: number;
}

/**
 * All ranks' metrics, in list order, on every rank; null on every rank when `signal` stopped any.
 * One sum over ranks of vectors that each rank fills at its own images' positions only: adding
 * zeros changes no value, so the gathered metrics are exactly the ones computed.
 */
export async function gatherImageMetrics(
  group: ProcessGroup,
  root: string,
  listFile: string,
  mine: readonly ImageMetrics[],
  signal: AbortSignal | undefined,
): Promise<ImageMetrics[] | null> {
  const { entries } = await readList(root, listFile);
  const n = entries.length;
  const packed = new Float64Array(1 + 4 * n);
  packed[0] = signal?.aborted ? 1 : 0;
  for (const m of mine) {
    packed[1 + m.index] = 1;
    packed[1 + n + m.index] = m.iou;
    packed[1 + 2 * n + m.index] = m.dice;
    packed[1 + 3 * n + m.index] = m.f1;
  }
  const sum = await group.allreduceSum(packed);
  if (sum[0]! > 0) return null;
  const all: ImageMetrics[] = [];
  for (let i = 0; i < n; i++)
    if (sum[1 + i]! > 0)
      all.push({
        index: i,
        iou: sum[1 + n + i]!,
        dice: sum[1 + 2 * n + i]!,
        f1: sum[1 + 3 * n + i]!,
      });
  return all;
}
