/**
 * What a run was: its resolved settings, the model file's SHA-256, the package, libtorch and Node
 * versions and the device. Training writes it as `checkpoints/run.json`; evaluation puts it in
 * each `evaluation_summary.json` (`run`), so a result can be traced to its inputs.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { runtimeInfo } from './runtime.js';

/** File name of the record in a training run's checkpoints folder. */
export const RUN_JSON = 'run.json';

export interface RunRecord {
  /** `train` or `evaluate`. */
  command: string;
  startedAt: string;
  /** The run's settings after defaults were applied (JSON-serialisable). */
  settings: Record<string, unknown>;
  /** Null when no model ran (evaluation re-scoring saved predictions). */
  model: { path: string; sha256: string } | null;
  /** The LoRA adapter applied on load, if any, with its SHA-256. */
  loraCheckpoint: { path: string; sha256: string } | null;
  versions: { crackseg: string; libtorch: string; libtorchFlavour: string; node: string };
  device: string;
}

const { version } = createRequire(import.meta.url)('../package.json') as { version: string };

/** The SHA-256 of a file, hex, read as a stream (models are large). */
export async function fileSha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  } catch (error) {
    throw new Error(`cannot hash '${path}': ${(error as Error).message}`);
  }
  return hash.digest('hex');
}

/** The record of a run starting now. */
export async function runRecord(run: {
  command: string;
  settings: Record<string, unknown>;
  model: string | null;
  loraCheckpoint?: string | null;
  device: string;
}): Promise<RunRecord> {
  const hashed = async (path: string) => ({
    path: resolve(path),
    sha256: await fileSha256(path),
  });
  const { torchVersion, flavour } = runtimeInfo();
  return {
    command: run.command,
    startedAt: new Date().toISOString(),
    // Through JSON: what is recorded is what a reader will see (no undefined, no functions).
    settings: JSON.parse(JSON.stringify(run.settings)) as Record<string, unknown>,
    model: run.model ? await hashed(run.model) : null,
    loraCheckpoint: run.loraCheckpoint ? await hashed(run.loraCheckpoint) : null,
    versions: {
      crackseg: version,
      libtorch: torchVersion,
      libtorchFlavour: flavour,
      node: process.version,
    },
    device: run.device,
  };
}
