/**
 * The official SAM 2.1 checkpoints by name: where Meta publishes them (the official download
 * script's `dl.fbaipublicfiles.com` folder and the `facebook/sam2.1-hiera-*` Hugging Face
 * repositories), the model config each one implies, and the local cache that holds them once
 * downloaded (docs/checkpoints.md).
 */
import { access } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { downloadFile, type DownloadProgress, type DownloadResult } from './download.js';
import type { ModelConfig } from './export.js';

export type OfficialConfig = 'tiny' | 'small' | 'base_plus' | 'large';

export interface OfficialCheckpoint {
  /** The file name the official code uses, e.g. `sam2.1_hiera_small.pt`. */
  file: string;
  /** The model config it implies. */
  config: OfficialConfig;
  /** Its Hugging Face repository, e.g. `facebook/sam2.1-hiera-small`. */
  hfRepo: string;
}

const CONFIGS: readonly OfficialConfig[] = ['tiny', 'small', 'base_plus', 'large'];

/** The four SAM 2.1 checkpoints, as named by the official download script and Hugging Face. */
export const OFFICIAL_CHECKPOINTS: readonly OfficialCheckpoint[] = CONFIGS.map((config) => ({
  file: `sam2.1_hiera_${config}.pt`,
  config,
  hfRepo: `facebook/sam2.1-hiera-${config.replace('_', '-')}`,
}));

/** Where the official download script fetches SAM 2.1 checkpoints from. */
export const DEFAULT_SAM2_BASE_URL = 'https://dl.fbaipublicfiles.com/segment_anything_2/092824';
export const DEFAULT_HF_ENDPOINT = 'https://huggingface.co';

/** Every name {@link officialCheckpoint} accepts, for help and error messages. */
export function officialCheckpointNames(): string[] {
  return OFFICIAL_CHECKPOINTS.flatMap((c) => [c.file.replace(/\.pt$/, ''), c.hfRepo]);
}

/**
 * The official checkpoint `name` stands for: `sam2.1_hiera_small` or `facebook/sam2.1-hiera-small`
 * (and the tiny, base_plus / base-plus and large ones); undefined for anything else (a file path).
 */
export function officialCheckpoint(name: string): OfficialCheckpoint | undefined {
  return OFFICIAL_CHECKPOINTS.find(
    (c) => name === c.file.replace(/\.pt$/, '') || name === c.hfRepo,
  );
}

type Env = Record<string, string | undefined>;

/**
 * The URLs of a checkpoint, tried in order: Hugging Face first (it declares the file's SHA-256),
 * then Meta's download folder (size only). `CRACKSEG_HF_ENDPOINT` (else `HF_ENDPOINT`) and
 * `CRACKSEG_SAM2_BASE_URL` replace the hosts (mirrors, tests).
 */
export function checkpointUrls(checkpoint: OfficialCheckpoint, env: Env = process.env): string[] {
  const hf = (env.CRACKSEG_HF_ENDPOINT || env.HF_ENDPOINT || DEFAULT_HF_ENDPOINT).replace(
    /\/+$/,
    '',
  );
  const meta = (env.CRACKSEG_SAM2_BASE_URL || DEFAULT_SAM2_BASE_URL).replace(/\/+$/, '');
  return [
    `${hf}/${checkpoint.hfRepo}/resolve/main/${checkpoint.file}`,
    `${meta}/${checkpoint.file}`,
  ];
}

/**
 * The cache folder: `cacheDir` if given, else `CRACKSEG_CACHE_DIR`, else
 * `$XDG_CACHE_HOME/crackseg`, else `~/.cache/crackseg`.
 */
export function cacheDirectory(cacheDir?: string, env: Env = process.env): string {
  if (cacheDir) return resolve(cacheDir);
  if (env.CRACKSEG_CACHE_DIR) return resolve(env.CRACKSEG_CACHE_DIR);
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'crackseg');
}

export interface FetchCheckpointOptions {
  /** Cache folder (see {@link cacheDirectory}). */
  cacheDir?: string;
  /** Called as bytes arrive (at most every `progressIntervalMs`, 250 by default). */
  onProgress?: (progress: DownloadProgress) => void;
  progressIntervalMs?: number;
  /** Seconds without a response or data before a download fails (default 60). */
  timeoutSeconds?: number;
}

export interface FetchedCheckpoint {
  checkpoint: OfficialCheckpoint;
  /** The checkpoint file in the cache. */
  path: string;
  /** The download, or null when the cache already held the file (no request made). */
  download: DownloadResult | null;
}

/**
 * The cached file of an official checkpoint, downloaded first if the cache lacks it. A file
 * enters the cache only complete and checked (renamed from `<file>.part`), so its presence is
 * the cache hit; an interrupted download resumes from its `.part` file.
 */
export async function fetchOfficialCheckpoint(
  name: string,
  options: FetchCheckpointOptions = {},
): Promise<FetchedCheckpoint> {
  const checkpoint = officialCheckpoint(name);
  if (!checkpoint) {
    throw new Error(
      `unknown official checkpoint "${name}"; known: ${officialCheckpointNames().join(', ')}`,
    );
  }
  const path = join(cacheDirectory(options.cacheDir), 'checkpoints', checkpoint.file);
  if (await exists(path)) return { checkpoint, path, download: null };
  const download = await downloadFile({
    urls: checkpointUrls(checkpoint),
    dest: path,
    onProgress: options.onProgress,
    progressIntervalMs: options.progressIntervalMs,
    timeoutSeconds: options.timeoutSeconds,
  });
  return { checkpoint, path, download };
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

export interface ResolvedCheckpoint {
  /** The checkpoint file: the one given, or the cached official file a name stands for. */
  path: string;
  /** The config given, else the one the official name (or file name) implies. */
  config: ModelConfig | undefined;
  /** Set when `checkpoint` was an official name. */
  fetched?: FetchedCheckpoint;
}

/**
 * A `--checkpoint` value as a file: an official name (see {@link officialCheckpoint}) is fetched
 * into the cache and implies its config, which a given config must equal; a path is kept, and a
 * file named like an official one (`…/sam2.1_hiera_small.pt`) implies its config unless given.
 */
export async function resolveCheckpoint(
  checkpoint: string,
  config: ModelConfig | undefined,
  options: FetchCheckpointOptions = {},
): Promise<ResolvedCheckpoint> {
  const official = officialCheckpoint(checkpoint);
  if (official) {
    if (config !== undefined && config !== official.config) {
      throw new Error(
        `config "${config}" does not match the checkpoint ${checkpoint} (config ${official.config})`,
      );
    }
    const fetched = await fetchOfficialCheckpoint(checkpoint, options);
    return { path: fetched.path, config: official.config, fetched };
  }
  const named = OFFICIAL_CHECKPOINTS.find((c) => basename(checkpoint) === c.file);
  return { path: checkpoint, config: config ?? named?.config };
}
