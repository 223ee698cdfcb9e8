/**
 * Streaming reader of a dataset in the Crack500 layout: a list file of `image mask` pairs under a
 * data root. Samples are decoded concurrently, at most `concurrency` ahead of the consumer, and
 * yielded in list order, so memory holds a bounded window and never the whole dataset.
 */
import { readFile as fsReadFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { BinaryMask, RgbImage } from '../image.js';
import { decodeImage, decodeMask } from './decode.js';
import { DatasetError } from '../errors.js';
import { parseListFile, type ListEntry } from './list-file.js';

/** Its errors: re-exported for the callers that read datasets. */
export { DatasetError };

/** How many samples are decoded ahead of the consumer unless told otherwise. */
export const DEFAULT_CONCURRENCY = 4;

export interface DatasetOptions<S = Sample> {
  /** The data root; the list file's paths are relative to it. */
  root: string;
  /** The list file, e.g. `test.txt`; resolved against `root` when relative. Errors name it as given. */
  listFile: string;
  /** Samples decoded at once (and buffered ahead); default {@link DEFAULT_CONCURRENCY}. */
  concurrency?: number;
  /** Record bad lines and files in {@link Dataset.skipped} and go on, instead of throwing. */
  skipBad?: boolean;
  /** Reads a file's bytes; default `fs.readFile`. Lets tests observe or fake the file system. */
  readFile?: (path: string) => Promise<Uint8Array>;
  /**
   * Makes a list entry's sample (default {@link loadSample} with `readFile`), e.g. in worker
   * threads; it rejects a bad file with its {@link DatasetError}.
   */
  load?: (entry: ListEntry, index: number) => Promise<S>;
}

/** One decoded sample. */
export interface Sample {
  /** 0-based position among the list's well-formed lines (stable whether or not others are skipped). */
  index: number;
  /** The image file name without extension. */
  id: string;
  /** 1-based line in the list file. */
  line: number;
  /** As written in the list file (relative to the root). */
  imagePath: string;
  /** As written in the list file (relative to the root). */
  maskPath: string;
  image: RgbImage;
  /** Same size as `image`. */
  mask: BinaryMask;
}

/**
 * What went wrong with a list line, as a category (summaries count skips per category; the full
 * message is kept beside it). The last two are for re-scoring saved predictions.
 */
export type SkipCategory =
  | 'malformed line'
  | 'duplicate id'
  | 'missing file'
  | 'unreadable file'
  | 'cannot decode image'
  | 'cannot decode mask'
  | 'size mismatch'
  | 'missing prediction'
  | 'unusable prediction';

/** A list line or file left out under `skipBad`, for the caller's summary. */
export interface SkippedEntry {
  /** The list entry's id (image file name without extension); null for a malformed line. */
  id: string | null;
  listFile: string;
  line: number;
  /** The offending path, or the line's text when the line itself is malformed. */
  path: string;
  category: SkipCategory;
  /** The full message. */
  reason: string;
  /** Re-scoring only: the prompt config whose saved prediction was unusable. */
  promptConfig?: string;
}

/** An async iterable of samples in list order; `skipped` fills in as iteration proceeds. */
export interface Dataset<S = Sample> extends AsyncIterable<S> {
  readonly skipped: SkippedEntry[];
}

/** Reads and parses a list file, for callers that want the entries (e.g. a count) up front. */
export async function readList(
  root: string,
  listFile: string,
  readFile: (path: string) => Promise<Uint8Array> = fsReadFile,
): Promise<ReturnType<typeof parseListFile>> {
  const bytes = await readFile(resolve(root, listFile));
  return parseListFile(new TextDecoder('utf-8').decode(bytes));
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Reads and decodes one list entry; a failure is a {@link DatasetError} naming the list file, the
 * line and what failed (read or decode, image or mask).
 */
export async function loadSample(
  entry: ListEntry,
  index: number,
  options: Pick<DatasetOptions, 'root' | 'listFile' | 'readFile'>,
): Promise<Sample> {
  const { root, listFile, readFile = fsReadFile } = options;
  const fail = (path: string, reason: string, category: SkipCategory) =>
    new DatasetError(listFile, entry.line, path, reason, category, entry.id);
  const load = async <T>(
    kind: 'image' | 'mask',
    path: string,
    decode: (b: Uint8Array) => Promise<T>,
  ) => {
    let bytes: Uint8Array;
    try {
      bytes = await readFile(resolve(root, path));
    } catch (err) {
      const missing = (err as NodeJS.ErrnoException | null)?.code === 'ENOENT';
      throw fail(
        path,
        `cannot read ${kind} '${path}': ${describe(err)}`,
        missing ? 'missing file' : 'unreadable file',
      );
    }
    try {
      return await decode(bytes);
    } catch (err) {
      throw fail(
        path,
        `cannot decode ${kind} '${path}': ${describe(err)}`,
        `cannot decode ${kind}`,
      );
    }
  };
  const [image, mask] = await Promise.all([
    load('image', entry.imagePath, decodeImage),
    load('mask', entry.maskPath, decodeMask),
  ]);
  if (image.width !== mask.width || image.height !== mask.height) {
    throw fail(
      entry.maskPath,
      `mask '${entry.maskPath}' is ${mask.width}x${mask.height} but image '${entry.imagePath}' is ${image.width}x${image.height}`,
      'size mismatch',
    );
  }
  return {
    index,
    id: entry.id,
    line: entry.line,
    imagePath: entry.imagePath,
    maskPath: entry.maskPath,
    image,
    mask,
  };
}

/**
 * Streams the samples of a list file in order. Without `skipBad`, a malformed line fails before
 * anything is yielded and a bad file fails when its turn comes, with a {@link DatasetError}; with
 * it, both are recorded in `skipped`. A missing list file always throws.
 */
export function readDataset<S = Sample>(options: DatasetOptions<S>): Dataset<S> {
  const { root, listFile, skipBad = false, readFile = fsReadFile } = options;
  const load =
    options.load ??
    // Without `load` the samples are plain ones: S is Sample.
    ((entry: ListEntry, index: number) =>
      loadSample(entry, index, { root, listFile, readFile }) as Promise<S>);
  const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError(`concurrency must be a positive integer, got ${concurrency}`);
  }
  const skipped: SkippedEntry[] = [];
  const skipOrThrow = (err: DatasetError) => {
    if (!skipBad) throw err;
    skipped.push(err.toSkipped());
  };

  async function* samples(): AsyncGenerator<S> {
    const { entries, problems } = await readList(root, listFile, readFile);
    for (const p of problems) {
      skipOrThrow(new DatasetError(listFile, p.line, p.text, p.reason, p.kind));
    }
    // Each slot settles to a sample or its error, so a failure further ahead is never unhandled.
    type Settled = { sample: S } | { error: unknown };
    const window: Promise<Settled>[] = [];
    let next = 0;
    const refill = () => {
      while (window.length < concurrency && next < entries.length) {
        const index = next++;
        window.push(
          load(entries[index] as ListEntry, index).then(
            (sample) => ({ sample }),
            (error: unknown) => ({ error }),
          ),
        );
      }
    };
    refill();
    for (let slot = window.shift(); slot; slot = window.shift()) {
      const settled = await slot;
      refill();
      if ('sample' in settled) yield settled.sample;
      else if (settled.error instanceof DatasetError) skipOrThrow(settled.error);
      else throw settled.error;
    }
  }

  return { skipped, [Symbol.asyncIterator]: samples };
}
