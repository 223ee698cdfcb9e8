/**
 * What the reliability tests share: the narrow `test` model with random weights and a tiny
 * synthetic dataset in a temporary folder, and the `crackseg` command run as a child process
 * (from the TypeScript sources, through tap's loader).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';
import { exportModel } from '../../ts/model/export.js';
import { synthesizeDataset } from '../../ts/synth/synthesize.js';

export interface TrainingFixture {
  dir: string;
  model: string;
  dataRoot: string;
}

/** The `test` model (LoRA A, rank 4) and a 96×64 synthetic dataset, removed at teardown. */
export async function trainingFixture(
  t: Test,
  counts: { train: number; val: number; test: number },
): Promise<TrainingFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'crackseg-reliability-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const dataRoot = join(dir, 'data');
  const [model] = await Promise.all([
    exportModel({
      config: 'test',
      lora: 'A',
      rank: 4,
      alpha: 8,
      dropout: 0,
      seed: 0,
      out: join(dir, 'model.pt'),
    }),
    synthesizeDataset({
      out: dataRoot,
      ...counts,
      width: 96,
      height: 64,
      seed: 3,
      crackFreeFraction: 0,
    }),
  ]);
  return { dir, model: model.out, dataRoot };
}

export interface CliOutcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const main = fileURLToPath(new URL('../../ts/cli/main.ts', import.meta.url));
// tap's TypeScript loader, so that the child runs the sources under test.
const loader = process.execArgv.filter((arg) => arg.includes('@tapjs/typescript'));

/**
 * Runs `crackseg args…` with `env` added to the environment. `onOutput(stdout, stderr, child)` is
 * called as output arrives (to send a signal at the right moment, say).
 */
export function runCli(
  args: string[],
  options: {
    env?: Record<string, string>;
    onOutput?: (
      stdout: string,
      stderr: string,
      child: { kill(signal: NodeJS.Signals): void },
    ) => void;
  } = {},
): Promise<CliOutcome> {
  const child = spawn(process.execPath, [...loader, main, ...args], {
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const seen = () => options.onOutput?.(stdout, stderr, child);
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    seen();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    seen();
  });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}
