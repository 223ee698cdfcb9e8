/**
 * Sharded evaluation's merge: every rank's per-image records and skip records gathered (c10d's
 * allgather) and put in list order, so that rank 0 writes the reports one process would.
 */
import { deserialize, serialize } from 'node:v8';
import type { SkippedEntry } from '../data/dataset.js';
import type { ImageRecord } from '../report/writer.js';
import type { ProcessGroup } from './group.js';

/** What a rank hands over once its share is done. */
export interface ShardOutcome {
  /** Per prompt config (in the run's order): its images' records. */
  records: ImageRecord[][];
  /** Its dataset's skips and (re-scoring) its configs' missing predictions. */
  skipped: SkippedEntry[];
  /** Images written for at least one config. */
  images: number;
  aborted: boolean;
  /** Its first failure, if any. */
  error: { message: string; code: string | undefined } | null;
}

/** Every rank's outcome as one. */
export interface MergedOutcome {
  /** Per prompt config: every rank's records in list order. */
  records: ImageRecord[][];
  /** Every skip record once (each rank reports the list's own bad lines), by line. */
  skipped: SkippedEntry[];
  images: number;
  /** Whether any rank was stopped. */
  aborted: boolean;
  /** The failure of the lowest failing rank, as `rank R failed: …` with its code. */
  failure: Error | null;
}

/**
 * Gathers `mine` from every rank (each rank calls it once, at the end of its share) and merges
 * them; `listIndex` gives an image's position in the list. Serialised by V8 (structured clone),
 * so every number, typed array, NaN and -0 arrives exactly as computed.
 */
export async function mergeShards(
  group: ProcessGroup,
  mine: ShardOutcome,
  listIndex: (imageId: string) => number,
): Promise<MergedOutcome> {
  const parts = (await group.allgather(serialize(mine))).map(
    (bytes) => deserialize(bytes) as ShardOutcome,
  );
  const byList = (a: ImageRecord, b: ImageRecord) => listIndex(a.imageId) - listIndex(b.imageId);
  const records = mine.records.map((_, c) =>
    parts.flatMap((part) => part.records[c]!).sort(byList),
  );
  const unique = new Map<string, SkippedEntry>();
  for (const entry of parts.flatMap((part) => part.skipped))
    unique.set(JSON.stringify(entry), entry);
  const skipped = [...unique.values()].sort((a, b) => a.line - b.line);
  const failing = parts.findIndex((part) => part.error);
  const error = parts[failing]?.error;
  return {
    records,
    skipped,
    images: parts.reduce((sum, part) => sum + part.images, 0),
    aborted: parts.some((part) => part.aborted),
    failure: error
      ? Object.assign(new Error(`rank ${failing} failed: ${error.message}`), {
          ...(error.code ? { code: error.code } : {}),
        })
      : null,
  };
}
