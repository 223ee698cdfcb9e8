/**
 * What a dataset holds, before a long run: per list file, the pairs found and the missing or
 * unreadable files, image sizes, how masks code cracks, empty masks, and the cracks' connected
 * components (count and areas). Errors are what would stop or skip a run: a malformed line, a
 * missing or unreadable file, an image and mask of different sizes, a colour mask. Warnings are
 * legal but suspicious: 0/1 or grey-level masks (decoded by rule, docs/data.md).
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import {
  decodeImage,
  decodeMask,
  maskCoding,
  type DecodeOptions,
  type MaskCoding,
} from './decode.js';
import { parseListFile } from './list-file.js';
import { connectedComponents, DEFAULT_MIN_AREA } from '../vision/components.js';

/** A finding about one list line (or the list itself: line 0). */
export interface CheckFinding {
  listFile: string;
  line: number;
  severity: 'error' | 'warning';
  message: string;
}

/** Smallest, median and largest of some values (null when there are none). */
export interface Spread {
  min: number;
  median: number;
  max: number;
}

export interface ListReport {
  listFile: string;
  /** Lines naming an image and a mask. */
  entries: number;
  /** Entries whose image and mask both read and decode, at one size. */
  pairs: number;
  missingImages: number;
  missingMasks: number;
  unreadable: number;
  sizeMismatches: number;
  /** `WIDTHxHEIGHT` → images of that size, among the pairs. */
  sizes: Record<string, number>;
  /** Masks per coding. */
  maskCoding: Partial<Record<MaskCoding, number>>;
  /** Pairs whose mask has no crack pixel (after decoding). */
  emptyMasks: number;
  components: {
    /** 8-connected components over all masks. */
    total: number;
    perImage: Spread | null;
    /** Pixels per component. */
    area: Spread | null;
    /** Components smaller than the prompt minimum (they get no prompt). */
    belowMinArea: number;
  };
}

export interface DataCheck {
  dataRoot: string;
  lists: ListReport[];
  findings: CheckFinding[];
  errors: number;
  warnings: number;
}

/** List files checked when none is named: those of these that exist in the data root. */
export const DEFAULT_CHECK_LISTS = ['train.txt', 'val.txt', 'test.txt'];

function spread(values: number[]): Spread | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return {
    min: sorted[0]!,
    median: sorted[Math.floor((sorted.length - 1) / 2)]!,
    max: sorted.at(-1)!,
  };
}

/**
 * Checks list files (paths as given, relative to the current directory; entries relative to
 * `dataRoot`), reading every image and mask once, one at a time.
 */
export async function checkData(
  dataRoot: string,
  listFiles: readonly string[],
  decode: DecodeOptions = {},
): Promise<DataCheck> {
  const findings: CheckFinding[] = [];
  const lists: ListReport[] = [];
  for (const listFile of listFiles)
    lists.push(await checkList(dataRoot, resolve(listFile), findings, decode));
  const count = (severity: CheckFinding['severity']) =>
    findings.filter((f) => f.severity === severity).length;
  return {
    dataRoot: resolve(dataRoot),
    lists,
    findings,
    errors: count('error'),
    warnings: count('warning'),
  };
}

async function checkList(
  dataRoot: string,
  listFile: string,
  findings: CheckFinding[],
  decode: DecodeOptions,
): Promise<ListReport> {
  const report: ListReport = {
    listFile,
    entries: 0,
    pairs: 0,
    missingImages: 0,
    missingMasks: 0,
    unreadable: 0,
    sizeMismatches: 0,
    sizes: {},
    maskCoding: {},
    emptyMasks: 0,
    components: { total: 0, perImage: null, area: null, belowMinArea: 0 },
  };
  const find = (line: number, severity: CheckFinding['severity'], message: string) =>
    findings.push({ listFile, line, severity, message });
  let text: string;
  try {
    text = await readFile(listFile, 'utf8');
  } catch (error) {
    find(0, 'error', `cannot read the list file: ${(error as Error).message}`);
    return report;
  }
  const { entries, problems } = parseListFile(text);
  for (const problem of problems) find(problem.line, 'error', `${problem.kind}: ${problem.reason}`);
  report.entries = entries.length;
  if (entries.length === 0) find(0, 'error', 'no entries');
  const perImage: number[] = [];
  const areas: number[] = [];
  for (const entry of entries) {
    const read = async (kind: 'image' | 'mask', path: string) => {
      try {
        return await readFile(resolve(dataRoot, path));
      } catch (error) {
        const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
        if (missing && kind === 'image') report.missingImages++;
        else if (missing) report.missingMasks++;
        else report.unreadable++;
        find(entry.line, 'error', `${missing ? 'missing' : 'cannot read'} ${kind} '${path}'`);
        return null;
      }
    };
    const [imageBytes, maskBytes] = [
      await read('image', entry.imagePath),
      await read('mask', entry.maskPath),
    ];
    if (!imageBytes || !maskBytes) continue;
    let decoded;
    try {
      const coding = await maskCoding(maskBytes, decode.maxPixels);
      // A colour mask that training and evaluation would refuse (the strict rule) is still
      // counted, by its grey level, so that the report shows what it holds.
      const strictColour = coding === 'colour' && (decode.maskRule ?? 'strict') === 'strict';
      decoded = {
        image: await decodeImage(imageBytes, decode),
        mask: await decodeMask(maskBytes, strictColour ? { ...decode, maskRule: 'luma' } : decode),
        coding,
      };
    } catch (error) {
      report.unreadable++;
      find(
        entry.line,
        'error',
        `cannot decode '${entry.imagePath}' or '${entry.maskPath}': ${(error as Error).message}`,
      );
      continue;
    }
    const { image, mask, coding } = decoded;
    report.maskCoding[coding] = (report.maskCoding[coding] ?? 0) + 1;
    if (coding === 'colour' && (decode.maskRule ?? 'strict') === 'strict')
      find(
        entry.line,
        'error',
        `mask '${entry.maskPath}' is in colour (its channels disagree): training and evaluation ` +
          'refuse it unless --mask-rule says how to read it; counted here by its grey level',
      );
    else if (coding === 'colour')
      find(entry.line, 'warning', `mask '${entry.maskPath}' is in colour: read by --mask-rule`);
    else if (coding === '0/1' || coding === 'grey levels')
      find(entry.line, 'warning', `mask '${entry.maskPath}' is coded ${coding}`);
    if (image.width !== mask.width || image.height !== mask.height) {
      report.sizeMismatches++;
      find(
        entry.line,
        'error',
        `image ${image.width}x${image.height} but mask ${mask.width}x${mask.height}`,
      );
      continue;
    }
    report.pairs++;
    const size = `${image.width}x${image.height}`;
    report.sizes[size] = (report.sizes[size] ?? 0) + 1;
    const { stats } = connectedComponents(mask);
    if (stats.length === 0) report.emptyMasks++;
    perImage.push(stats.length);
    for (const component of stats) {
      areas.push(component.area);
      if (component.area < DEFAULT_MIN_AREA) report.components.belowMinArea++;
    }
  }
  report.components.total = areas.length;
  report.components.perImage = spread(perImage);
  report.components.area = spread(areas);
  return report;
}
