/**
 * Exports SAM 2.1 (image path) with LoRA adapters as a TorchScript file by running the Python
 * exporter `scripts/crackseg_sam2/export.py` with the interpreter `findPython()` picks. The file's
 * interface and its embedded `metadata.json` are described in docs/model-interface.md.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { findPython } from '../python.js';
import { resolveCheckpoint, type FetchCheckpointOptions } from './official-checkpoints.js';

export type LoraStrategy = 'none' | 'A' | 'B' | 'C';
export type ModelConfig = 'tiny' | 'small' | 'base_plus' | 'large' | 'test';

export const LORA_STRATEGIES: readonly LoraStrategy[] = ['none', 'A', 'B', 'C'];
export const MODEL_CONFIGS: readonly ModelConfig[] = [
  'tiny',
  'small',
  'base_plus',
  'large',
  'test',
];

/** The exporter's defaults: the API and the CLI both use these. */
export const EXPORT_DEFAULTS = {
  seed: 0,
  lora: 'none' as LoraStrategy,
  rank: 8,
  alpha: 16,
  dropout: 0,
};

export interface ExportOptions {
  /**
   * Model configuration; `test` is a small 256 px model for tests. Implied by an official
   * checkpoint name (or file name), which it must then match.
   */
  config?: ModelConfig;
  /**
   * Official `sam2.1_hiera_*.pt` checkpoint file, or its name (`sam2.1_hiera_small`,
   * `facebook/sam2.1-hiera-small`, …: downloaded into the cache, docs/checkpoints.md); omitted:
   * seeded random initialisation.
   */
  checkpoint?: string;
  /** Cache and progress of a checkpoint given by name. */
  download?: FetchCheckpointOptions;
  /** Seed of the random initialisation and of the LoRA A matrices (default 0). */
  seed?: number;
  /** LoRA targets (default `none`). */
  lora?: LoraStrategy;
  /** LoRA rank (default 8). */
  rank?: number;
  /** LoRA alpha; the adapter is scaled by alpha / rank (default 16). */
  alpha?: number;
  /** LoRA dropout (default 0). */
  dropout?: number;
  /** TorchScript file to write. */
  out: string;
}

/** The embedded `metadata.json` (docs/model-interface.md). */
export interface ExportMetadata {
  format: 'crackseg-sam2-image';
  format_version: number;
  config_name: ModelConfig;
  config: Record<string, unknown>;
  image_size: number;
  embed_size: number;
  mask_size: number;
  lora_strategy: LoraStrategy;
  lora_rank: number;
  lora_alpha: number;
  lora_dropout: number;
  lora_targets: string[];
  trainable_parameters: number;
  total_parameters: number;
  checkpoint_sha256: string | null;
  skipped_checkpoint_keys: number;
  seed: number;
  torch_version: string;
}

export interface ExportResult {
  /** Absolute path of the written file. */
  out: string;
  /** Parameters that train (the LoRA matrices; 0 for `none`). */
  trainable: number;
  /** All parameters of the exported model. */
  total: number;
  /** Memory-path keys of the checkpoint that the image path does not use. */
  skippedKeys: string[];
  seconds: number;
  metadata: ExportMetadata;
  /** Python interpreter that ran the exporter. */
  python: string;
}

/** The exporter script shipped with the package. */
export const EXPORTER_SCRIPT = fileURLToPath(
  new URL('../../scripts/crackseg_sam2/export.py', import.meta.url),
);

/** The exporter's command-line arguments for `options` (without the interpreter and script). */
export function exporterArgs(given: ExportOptions): string[] {
  const options = {
    ...given,
    seed: given.seed ?? EXPORT_DEFAULTS.seed,
    lora: given.lora ?? EXPORT_DEFAULTS.lora,
    rank: given.rank ?? EXPORT_DEFAULTS.rank,
    alpha: given.alpha ?? EXPORT_DEFAULTS.alpha,
    dropout: given.dropout ?? EXPORT_DEFAULTS.dropout,
  };
  if (options.config === undefined) {
    throw new Error('no model config: give one, or an official checkpoint name that implies it');
  }
  if (!MODEL_CONFIGS.includes(options.config)) {
    throw new Error(`unknown config "${options.config}"; known: ${MODEL_CONFIGS.join(', ')}`);
  }
  if (!LORA_STRATEGIES.includes(options.lora)) {
    throw new Error(
      `unknown LoRA strategy "${options.lora}"; known: ${LORA_STRATEGIES.join(', ')}`,
    );
  }
  if (!Number.isInteger(options.rank) || options.rank < 1) {
    throw new Error(`LoRA rank must be a positive integer, got ${options.rank}`);
  }
  if (!Number.isFinite(options.alpha) || options.alpha <= 0) {
    throw new Error(`LoRA alpha must be a positive number, got ${options.alpha}`);
  }
  if (!(options.dropout >= 0 && options.dropout < 1)) {
    throw new Error(`LoRA dropout must be in [0, 1), got ${options.dropout}`);
  }
  const seed = options.seed;
  if (!Number.isInteger(seed) || seed < 0) {
    throw new Error(`seed must be a non-negative integer, got ${seed}`);
  }
  return [
    ...(options.checkpoint ? ['--checkpoint', options.checkpoint] : ['--random-init']),
    '--config',
    options.config,
    '--seed',
    String(seed),
    '--lora',
    options.lora,
    '--rank',
    String(options.rank),
    '--alpha',
    String(options.alpha),
    '--dropout',
    String(options.dropout),
    '--out',
    options.out,
    '--json',
  ];
}

/** Runs the exporter; rejects with Python's own error message when it fails. */
export async function exportModel(given: ExportOptions): Promise<ExportResult> {
  const options = given.checkpoint
    ? await resolveCheckpoint(given.checkpoint, given.config, given.download).then(
        ({ path, config }) => ({ ...given, checkpoint: path, config }),
      )
    : given;
  const args = exporterArgs(options);
  const python = await findPython();
  const { code, stdout, stderr } = await new Promise<{
    code: number | null;
    stdout: string;
    stderr: string;
  }>((resolve, reject) => {
    const child = spawn(python.executable, [EXPORTER_SCRIPT, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
    child.on('error', reject);
    child.on('close', (exitCode) => resolve({ code: exitCode, stdout: out, stderr: err }));
  });
  if (code !== 0) {
    throw new Error(`model export failed: ${pythonError(stderr) || `exit code ${code}`}`);
  }
  const line = stdout.trim().split('\n').pop() ?? '';
  let summary: Omit<ExportResult, 'python' | 'skippedKeys'> & { skipped_keys: string[] };
  try {
    summary = JSON.parse(line) as typeof summary;
  } catch {
    throw new Error(`model export printed no result: ${stdout.slice(-500)}`);
  }
  return {
    out: summary.out,
    trainable: summary.trainable,
    total: summary.total,
    skippedKeys: summary.skipped_keys,
    seconds: summary.seconds,
    metadata: summary.metadata,
    python: python.executable,
  };
}

/** The message of a Python failure: our `error: ...` line, else the traceback's last line. */
export function pythonError(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const ours = lines.filter((l) => l.startsWith('error: ') || l.includes(': error: '));
  if (ours.length) return ours.map((l) => l.replace(/^.*?error: /, '')).join('\n');
  return lines.pop() ?? '';
}
