/**
 * What the reliability tests share: the narrow `test` model with random weights and a tiny
 * synthetic dataset in a temporary folder, and the `crackseg` command run as a child process
 * (the built dist/cli/main.js: through tap's TypeScript loader a child takes seconds to start).
 */
import { spawn, type ChildProcess, type ChildProcessByStdio } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Readable } from 'node:stream';
import type { Test } from 'tap';
import { exportModel } from '../../ts/model/export.js';
import { synthesizeDataset } from '../../ts/synth/synthesize.js';
import { readLastState } from '../../ts/train/last-checkpoint.js';
import { readSafetensors } from '../../ts/model/safetensors.js';
import type { TrainOptions } from '../../ts/train/options.js';

export interface TrainingFixture {
  dir: string;
  model: string;
  dataRoot: string;
  /** `--model`, `--data-root` and `--device cpu`, for `crackseg train` and `evaluate`. */
  cliArgs: string[];
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
  const cliArgs = ['--model', model.out, '--data-root', dataRoot, '--device', 'cpu'];
  return { dir, model: model.out, dataRoot, cliArgs };
}

export interface CliOutcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const root = fileURLToPath(new URL('../..', import.meta.url));
const main = join(root, 'dist', 'cli', 'main.js');

/** Throws unless dist/ was built from the sources as they are (`npm run build:ts`). */
function checkBuilt(): void {
  const built = existsSync(main) ? statSync(main).mtimeMs : 0;
  const sources = readdirSync(join(root, 'ts'), { recursive: true, withFileTypes: true }).filter(
    (entry) => entry.isFile() && entry.name.endsWith('.ts'),
  );
  const newer = sources.find(
    (entry) => statSync(join(entry.parentPath, entry.name)).mtimeMs > built,
  );
  if (newer)
    throw new Error(
      `${main} is older than ${join(newer.parentPath, newer.name)}: run npm run build:ts first`,
    );
}

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
  checkBuilt();
  const child = spawn(process.execPath, [main, ...args], {
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return collect(child, options.onOutput);
}

/** The child's output and how it ended; `onOutput` is called as output arrives. */
function collect(
  child: ChildProcessByStdio<null, Readable, Readable>,
  onOutput?: (stdout: string, stderr: string, child: ChildProcess) => void,
): Promise<CliOutcome> {
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    onOutput?.(stdout, stderr, child);
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    onOutput?.(stdout, stderr, child);
  });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/**
 * Runs `train(options)` (the built dist/index.js) in a child process with `env` added to the
 * environment: for faults that end the process. A rejection exits with status 1.
 */
export function runTrainChild(
  options: TrainOptions,
  env: Record<string, string> = {},
): Promise<CliOutcome> {
  checkBuilt();
  const child = fileURLToPath(new URL('train-child.mjs', import.meta.url));
  return collect(
    spawn(process.execPath, [child, JSON.stringify(options)], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
}

/** Every file under `dir`, relative to it. */
export function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)));
}

/**
 * The `last` set that `<out>/checkpoints/last.json` names: checks that its files exist and that
 * the weights name the optimizer step last.json does; null where there is no last.json.
 */
export async function checkSet(t: Test, out: string) {
  const last = await readLastState<{ version: 2; generation: number; optimizerSteps: number }>(
    join(out, 'checkpoints'),
  );
  if (last === null) return null;
  const { state, files } = last;
  t.ok(existsSync(files.optimizer), `${relative(out, files.optimizer)} exists`);
  const adapter = await readSafetensors(files.weights);
  t.equal(
    Number(adapter.metadata.optimizer_steps),
    state.optimizerSteps,
    'the weights and last.json name the same step',
  );
  return { state, weights: adapter.tensors };
}
