/**
 * `crackseg check-data`: what a dataset holds, before a long run (ts/data/check.ts).
 *
 *   crackseg check-data --data-root ./crack500                 (train.txt, val.txt, test.txt present)
 *   crackseg check-data --data-root ./crack500 --list ./crack500/test.txt --json
 *
 * A table per list file, then the errors and warnings by list line; `--json` prints the whole
 * report as JSON instead. Exits with status 1 when there is an error.
 */
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { checkData, DEFAULT_CHECK_LISTS, type DataCheck, type Spread } from '../data/check.js';
import {
  collect,
  DECODE_FLAG_OPTIONS,
  decodeOptions,
  DEFAULT_DATA_ROOT,
  type DecodeFlags,
} from './options.js';

interface CheckDataFlags extends DecodeFlags {
  dataRoot: string;
  list?: string[];
  json?: boolean;
}

/** Findings printed per kind before "… and N more". */
const SHOWN_FINDINGS = 20;

function spreadText(spread: Spread | null): string {
  return spread ? `${spread.min} / ${spread.median} / ${spread.max}` : '-';
}

/** `key ×count, ...`, or `-` when empty. */
function countsText(counts: Partial<Record<string, number>>): string {
  const parts = Object.entries(counts).map(([key, n]) => `${key} ×${n}`);
  return parts.length > 0 ? parts.join(', ') : '-';
}

/** The report as text: a table with one column per list file, then the findings. */
export function formatCheck(check: DataCheck): string {
  const rows: Array<[string, ...string[]]> = [
    ['list file', ...check.lists.map((l) => l.listFile)],
    ['entries', ...check.lists.map((l) => String(l.entries))],
    ['pairs found', ...check.lists.map((l) => String(l.pairs))],
    ['missing images', ...check.lists.map((l) => String(l.missingImages))],
    ['missing masks', ...check.lists.map((l) => String(l.missingMasks))],
    ['unreadable', ...check.lists.map((l) => String(l.unreadable))],
    ['size mismatches', ...check.lists.map((l) => String(l.sizeMismatches))],
    ['sizes', ...check.lists.map((l) => countsText(l.sizes))],
    ['mask coding', ...check.lists.map((l) => countsText(l.maskCoding))],
    ['empty masks', ...check.lists.map((l) => String(l.emptyMasks))],
    ['components', ...check.lists.map((l) => String(l.components.total))],
    ['per image (min/median/max)', ...check.lists.map((l) => spreadText(l.components.perImage))],
    ['area px (min/median/max)', ...check.lists.map((l) => spreadText(l.components.area))],
    ['below prompt min area', ...check.lists.map((l) => String(l.components.belowMinArea))],
  ];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  const lines = rows.map((row) =>
    row
      .map((cell, c) => cell.padEnd(widths[c]!))
      .join('  ')
      .trimEnd(),
  );
  for (const severity of ['error', 'warning'] as const) {
    const found = check.findings.filter((f) => f.severity === severity);
    if (found.length === 0) continue;
    lines.push('', `${found.length} ${severity}${found.length === 1 ? '' : 's'}:`);
    for (const f of found.slice(0, SHOWN_FINDINGS))
      lines.push(`  ${f.listFile}:${f.line}: ${f.message}`);
    if (found.length > SHOWN_FINDINGS)
      lines.push(`  … and ${found.length - SHOWN_FINDINGS} more (--json lists all)`);
  }
  lines.push(
    '',
    check.errors === 0 ? 'no errors' : `${check.errors} error(s): fix them before a run`,
  );
  return lines.join('\n');
}

export function register(program: Command): void {
  program
    .command('check-data')
    .description(
      'Report what a dataset holds (pairs, sizes, mask coding, cracks); exit 1 on errors',
    )
    .option('--data-root <dir>', 'dataset root (Crack500 layout)', DEFAULT_DATA_ROOT)
    .option(
      '--list <file>',
      `list file, relative to the current directory (repeatable; default: those of ${DEFAULT_CHECK_LISTS.join(', ')} in the data root)`,
      collect,
    )
    .option('--json', 'print the report as JSON')
    .option(...DECODE_FLAG_OPTIONS[0])
    .option(...DECODE_FLAG_OPTIONS[1])
    .action(async (flags: CheckDataFlags) => {
      const lists =
        flags.list ??
        DEFAULT_CHECK_LISTS.map((name) => join(flags.dataRoot, name)).filter((path) =>
          existsSync(path),
        );
      if (lists.length === 0) {
        throw new Error(
          `${flags.dataRoot} has none of ${DEFAULT_CHECK_LISTS.join(', ')}: name list files with --list`,
        );
      }
      const check = await checkData(flags.dataRoot, lists, decodeOptions(flags));
      console.log(flags.json ? JSON.stringify(check, null, 2) : formatCheck(check));
      if (check.errors > 0) process.exitCode = 1;
    });
}
