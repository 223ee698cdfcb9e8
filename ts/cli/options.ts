/**
 * What the commands share: argument parsers for commander, the default data root and the list-file
 * path rule, the duration format, and Ctrl-C handling.
 */
import { InvalidArgumentError } from 'commander';
import { resolve } from 'node:path';
import { MASK_RULES, type DecodeOptions, type MaskRule } from '../data/decode.js';
import { DEFAULT_MAX_PIXELS } from '../data/pixel-limit.js';
import { PRECISION_DTYPE, type Precision } from '../model/load.js';
import type { ProbabilityBitDepth } from '../report/predictions.js';

/** The data root every command reads when `--data-root` is not given (the seed's). */
export const DEFAULT_DATA_ROOT = './crack500';

/** `1`, `2`, … */
export function parsePositiveInteger(value: string): number {
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(Number(value)) || Number(value) < 1)
    throw new InvalidArgumentError('expected a positive integer');
  return Number(value);
}

/** `0`, `1`, … */
export function parseNonNegativeInteger(value: string): number {
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(Number(value)))
    throw new InvalidArgumentError('expected a non-negative integer');
  return Number(value);
}

/** Any safe integer, e.g. a seed. */
export function parseInteger(value: string): number {
  if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(Number(value)))
    throw new InvalidArgumentError('expected an integer');
  return Number(value);
}

/** A finite number ≥ 0 (`1e-4`, `0.5`, `.5`). */
export function parseNonNegativeNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0)
    throw new InvalidArgumentError('expected a number ≥ 0');
  return n;
}

/** Any finite number. */
export function parseNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n))
    throw new InvalidArgumentError('expected a number');
  return n;
}

/** `fp32` or `bf16`. */
export function parsePrecision(value: string): Precision {
  if (!Object.hasOwn(PRECISION_DTYPE, value))
    throw new InvalidArgumentError('expected fp32 or bf16');
  return value as Precision;
}

/** `8` or `16`: a probability PNG's depth. */
export function parseProbabilityBits(value: string): ProbabilityBitDepth {
  if (value !== '8' && value !== '16') throw new InvalidArgumentError('expected 8 or 16');
  return Number(value) as ProbabilityBitDepth;
}

/** The `--precision` help, shared by the commands that load a model. */
export const PRECISION_HELP = 'fp32 or bf16 (default: bf16 on CUDA, fp32 on the CPU)';

/** `strict`, `any`, `all` or `luma`. */
export function parseMaskRule(value: string): MaskRule {
  if (!MASK_RULES.includes(value as MaskRule))
    throw new InvalidArgumentError(`expected ${MASK_RULES.join(', ')}`);
  return value as MaskRule;
}

/** The decoding flags of the commands that read a dataset. */
export interface DecodeFlags {
  maskRule: MaskRule;
  maxPixels: number;
}

/** `--mask-rule` and `--max-pixels`: flags, help, parser and default, for `Command.option`. */
export const DECODE_FLAG_OPTIONS = [
  [
    '--mask-rule <rule>',
    'colour masks: strict (channels must agree), any, all or luma (docs/data.md)',
    parseMaskRule,
    'strict',
  ],
  [
    '--max-pixels <n>',
    'largest image or mask decoded, width × height (8192×8192)',
    parsePositiveInteger,
    DEFAULT_MAX_PIXELS,
  ],
] as const;

/** The API's decoding options from the flags. */
export function decodeOptions(flags: DecodeFlags): DecodeOptions {
  return { maskRule: flags.maskRule, maxPixels: flags.maxPixels };
}

/** `WIDTHxHEIGHT`, each ≥ 1. */
export function parseSize(value: string): { width: number; height: number } {
  const match = /^(\d+)x(\d+)$/.exec(value.trim());
  if (!match || Number(match[1]) < 1 || Number(match[2]) < 1)
    throw new InvalidArgumentError('expected WIDTHxHEIGHT, e.g. 640x360');
  return { width: Number(match[1]), height: Number(match[2]) };
}

/** Collects a repeatable option's values. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/**
 * The list-file rule of every command: a list file named on the command line is a path like any
 * other, relative to the current directory; without the flag it is `<data-root>/<defaultName>`.
 * Returns an absolute path.
 */
export function listFilePath(
  flag: string | undefined,
  dataRoot: string,
  defaultName: string,
): string {
  return flag !== undefined ? resolve(flag) : resolve(dataRoot, defaultName);
}

/** Help text of a list-file flag, stating the rule above. */
export function listFileHelp(what: string, defaultName: string): string {
  return `${what}, relative to the current directory (default: <data-root>/${defaultName})`;
}

/** `1h02m`, `3m05s`, `42s`. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const [h, m, r] = [Math.floor(s / 3600), Math.floor((s % 3600) / 60), s % 60];
  const pad = (n: number) => String(n).padStart(2, '0');
  return h > 0 ? `${h}h${pad(m)}m` : m > 0 ? `${m}m${pad(r)}s` : `${r}s`;
}

/**
 * The signals that stop a long command, each with the exit status it then ends with (128 + the
 * signal's number, as a shell reports a process the signal killed).
 */
export const STOP_SIGNALS = { SIGINT: 130, SIGTERM: 143 } as const;
export type StopSignal = keyof typeof STOP_SIGNALS;

/** What {@link handleInterrupts} needs of the process (a stand-in in tests). */
export interface InterruptTarget {
  on(event: StopSignal, listener: () => void): unknown;
  off(event: StopSignal, listener: () => void): unknown;
  exit(code: number): never;
}

/**
 * Ctrl-C (SIGINT) and SIGTERM for long commands: the first aborts the returned signal and prints
 * `message` (what the command will do, e.g. "stopping after the current batch") with how to quit
 * at once; a second exits at once with the signal's status ({@link STOP_SIGNALS}). `exitCode()`
 * is the status of the first signal (undefined while none came): the command exits with it after
 * writing what finished. `release()` removes the handlers (call it in `finally`).
 */
export function handleInterrupts(
  message: string,
  target: InterruptTarget = process,
  write: (text: string) => void = (text) => process.stderr.write(text),
): { signal: AbortSignal; exitCode: () => number | undefined; release: () => void } {
  const controller = new AbortController();
  let first: StopSignal | undefined;
  const handlers = (Object.keys(STOP_SIGNALS) as StopSignal[]).map((name) => {
    const again = name === 'SIGINT' ? 'Ctrl-C' : name;
    const listener = () => {
      if (first !== undefined) {
        write(`\n${name} again: quitting\n`);
        target.exit(STOP_SIGNALS[name]);
      }
      first = name;
      write(`\n${message} (${again} again to quit now)\n`);
      controller.abort();
    };
    target.on(name, listener);
    return [name, listener] as const;
  });
  return {
    signal: controller.signal,
    exitCode: () => (first === undefined ? undefined : STOP_SIGNALS[first]),
    release: () => handlers.forEach(([name, listener]) => target.off(name, listener)),
  };
}
