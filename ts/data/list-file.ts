/**
 * Crack500-style list files (`train.txt`, `val.txt`, `test.txt`): one `image_path mask_path` pair
 * a line, both relative to the data root. See docs/data.md for the exact format.
 */
import { basename, extname } from 'node:path';

/** One well-formed line of a list file. */
export interface ListEntry {
  /** 1-based line number in the list file, for error messages. */
  line: number;
  /** The sample's name: the image file name without its extension (unique within a list). */
  id: string;
  /** The image path exactly as written, relative to the data root. */
  imagePath: string;
  /** The mask path exactly as written, relative to the data root. */
  maskPath: string;
}

/** A line that could not be used, with why. */
export interface ListProblem {
  line: number;
  /** The offending text (the line, trimmed). */
  text: string;
  kind: 'malformed line' | 'duplicate id';
  reason: string;
}

/** A parsed list file: the usable entries and the malformed lines, both in line order. */
export interface ParsedList {
  entries: ListEntry[];
  problems: ListProblem[];
}

/**
 * Parses a list file's text. Tolerates a BOM, CRLF or CR line ends, blank lines, `#` comment lines
 * and runs of spaces or tabs between the two paths. A line with other than two fields, or whose id
 * repeats an earlier line's, is a problem (the caller decides whether that is fatal).
 */
export function parseListFile(text: string): ParsedList {
  const entries: ListEntry[] = [];
  const problems: ListProblem[] = [];
  const firstLineOfId = new Map<string, number>();
  const lines = text.replace(/^\uFEFF/, '').split(/\r\n|\r|\n/);
  lines.forEach((raw, i) => {
    const line = i + 1;
    const trimmed = raw.trim();
    if (trimmed === '' || trimmed.startsWith('#')) return;
    const fields = trimmed.split(/\s+/);
    const [imagePath, maskPath] = fields;
    if (fields.length !== 2 || imagePath === undefined || maskPath === undefined) {
      problems.push({
        line,
        text: trimmed,
        kind: 'malformed line',
        reason: `expected 'image_path mask_path', found ${fields.length} field(s)`,
      });
      return;
    }
    const id = basename(imagePath, extname(imagePath));
    const first = firstLineOfId.get(id);
    if (first !== undefined) {
      problems.push({
        line,
        text: trimmed,
        kind: 'duplicate id',
        reason: `duplicate id '${id}' (first on line ${first})`,
      });
      return;
    }
    firstLineOfId.set(id, line);
    entries.push({ line, id, imagePath, maskPath });
  });
  return { entries, problems };
}
