/**
 * Errors by kind, each with a stable `code`: match `err.code`, never the message text.
 *
 * The addon's errors (native/errors.h) are TypeError (a wrong JS type or form, a wrong dtype),
 * RangeError (a value out of range, a wrong shape) or Error (everything else), with one of
 * {@link NATIVE_ERROR_CODES}. The TypeScript layer's own errors are the {@link CracksegError}
 * classes below, each with its code.
 */
import type { SkipCategory, SkippedEntry } from './data/dataset.js';
import type { DemoStage } from './demo.js';

/** The addon's codes, by the key the addon's `errorCodes` export gives each. */
export const NATIVE_ERROR_CODES = {
  /** TypeError: an argument of the wrong JS type or form (not a string, not a tensor, ...). */
  argument: 'ERR_CRACKSEG_ARGUMENT',
  /** TypeError: a tensor or name of the wrong dtype. */
  dtype: 'ERR_CRACKSEG_DTYPE',
  /** RangeError: a number or value outside what is allowed (a non-integer count or handle too). */
  range: 'ERR_CRACKSEG_RANGE',
  /** RangeError: a tensor of the wrong shape, or sizes that disagree. */
  shape: 'ERR_CRACKSEG_SHAPE',
  /** The TorchModule or trainer was disposed. */
  disposed: 'ERR_CRACKSEG_DISPOSED',
  /** A tensor handle already taken or released, or never issued. */
  handle: 'ERR_CRACKSEG_HANDLE',
  /** No parameter or method of that name (or none that requires grad). */
  notFound: 'ERR_CRACKSEG_NOT_FOUND',
  /** A device this machine or this libtorch does not have. */
  device: 'ERR_CRACKSEG_DEVICE',
  /** A file the addon cannot read or write. */
  io: 'ERR_CRACKSEG_IO',
  /** A module whose methods break docs/model-interface.md. */
  module: 'ERR_CRACKSEG_MODULE',
  /** libtorch's own error (c10::Error, the TorchScript interpreter's), without the C++ backtrace. */
  torch: 'ERR_CRACKSEG_TORCH',
  /** Out of host memory, or an unknown C++ exception. */
  native: 'ERR_CRACKSEG_NATIVE',
  /**
   * A process group that cannot be joined, or whose collective failed: a peer's process gone
   * (named), or the timeout passed (ts/distributed/group.ts).
   */
  distributed: 'ERR_CRACKSEG_DISTRIBUTED',
} as const;

/** Every code: the addon's and the TypeScript layer's. */
export const ERROR_CODES = {
  ...NATIVE_ERROR_CODES,
  /** {@link DatasetError}: a bad list line or data file. */
  dataset: 'ERR_CRACKSEG_DATASET',
  /** {@link SafetensorsError}: a file or buffer that is not valid safetensors. */
  safetensors: 'ERR_CRACKSEG_SAFETENSORS',
  /** {@link SavedPredictionError}: a saved prediction missing or unusable. */
  savedPrediction: 'ERR_CRACKSEG_SAVED_PREDICTION',
  /** {@link DemoStoppedError}: the demo stopped through its signal. */
  demoStopped: 'ERR_CRACKSEG_DEMO_STOPPED',
  /** {@link ModelMetadataError}: a model's metadata.json missing, invalid or not the module's. */
  modelMetadata: 'ERR_CRACKSEG_MODEL_METADATA',
  /** {@link AdapterError}: a LoRA adapter that cannot be applied to the model. */
  adapter: 'ERR_CRACKSEG_ADAPTER',
  /** {@link DownloadError}: the server answered with an HTTP error status (`status`). */
  downloadHttp: 'ERR_CRACKSEG_DOWNLOAD_HTTP',
  /** {@link DownloadError}: a host not reached (offline, DNS, refused) or lost, or a proxy refusing. */
  downloadNetwork: 'ERR_CRACKSEG_DOWNLOAD_NETWORK',
  /** {@link DownloadError}: no response or no data for the timeout (a stalled server). */
  downloadTimeout: 'ERR_CRACKSEG_DOWNLOAD_TIMEOUT',
  /** {@link DownloadError}: an unusable answer: too many redirects, other bytes than asked, no body. */
  downloadResponse: 'ERR_CRACKSEG_DOWNLOAD_RESPONSE',
  /** {@link DownloadError}: the bytes received differ from the declared size or SHA-256. */
  downloadMismatch: 'ERR_CRACKSEG_DOWNLOAD_MISMATCH',
  /** {@link DownloadError}: a cache file that cannot be written or read (the system's error is `cause`). */
  downloadCache: 'ERR_CRACKSEG_DOWNLOAD_CACHE',
} as const;

export type ErrorCode = (typeof ERROR_CODES)[keyof typeof ERROR_CODES];

/** `err`'s code when it is an error carrying one of {@link ERROR_CODES}; undefined otherwise. */
export function errorCode(err: unknown): ErrorCode | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (Object.values(ERROR_CODES) as string[]).includes(code)
    ? (code as ErrorCode)
    : undefined;
}

/** The base of the TypeScript layer's errors: a message and a stable code. */
export class CracksegError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** An error about one line of a list file, its message prefixed `listFile:line: `. */
export class DatasetError extends CracksegError {
  constructor(
    readonly listFile: string,
    readonly line: number,
    readonly path: string,
    readonly reason: string,
    readonly category: SkipCategory = 'malformed line',
    /** The entry's id; null when the line has none. */
    readonly id: string | null = null,
  ) {
    super(ERROR_CODES.dataset, `${listFile}:${line}: ${reason}`);
  }

  /** The record of this error under `skipBad`. */
  toSkipped(): SkippedEntry {
    const { id, listFile, line, path, category, reason } = this;
    return { id, listFile, line, path, category, reason };
  }
}

/** A file (or buffer) that is not valid safetensors; the message names it. */
export class SafetensorsError extends CracksegError {
  constructor(
    readonly source: string,
    reason: string,
  ) {
    super(ERROR_CODES.safetensors, `${source}: not a valid safetensors file: ${reason}`);
  }
}

/** A saved prediction that cannot be used, with the file and a skip category. */
export class SavedPredictionError extends CracksegError {
  constructor(
    readonly path: string,
    readonly category: 'missing prediction' | 'unusable prediction',
    message: string,
  ) {
    super(ERROR_CODES.savedPrediction, message);
  }
}

/** The demo was stopped through its signal (Ctrl-C); the message names the stage. */
export class DemoStoppedError extends CracksegError {
  constructor(readonly stage: Exclude<DemoStage, { stage: 'done' }>['stage']) {
    super(ERROR_CODES.demoStopped, `demo stopped during ${stage}`);
  }
}

/** An exported model whose metadata.json is missing, invalid or disagrees with the module. */
export class ModelMetadataError extends CracksegError {
  constructor(
    /** The TorchScript file. */
    readonly path: string,
    message: string,
  ) {
    super(ERROR_CODES.modelMetadata, message);
  }
}

/** A LoRA adapter that cannot be applied (another model, bad tensors); names both files. */
export class AdapterError extends CracksegError {
  constructor(
    /** The adapter file. */
    readonly path: string,
    message: string,
  ) {
    super(ERROR_CODES.adapter, message);
  }
}

/** The codes of a {@link DownloadError}. */
export type DownloadErrorCode = (typeof ERROR_CODES)[
  | 'downloadHttp'
  | 'downloadNetwork'
  | 'downloadTimeout'
  | 'downloadResponse'
  | 'downloadMismatch'
  | 'downloadCache'];

/**
 * A download that failed (ts/model/download.ts); the message, one line, names the URL and the
 * file. When every published URL failed, `failures` holds each one's error and the code is the
 * first failure's that is not an HTTP status (the host could not be reached: the offline hint
 * applies), else the first's.
 */
export class DownloadError extends CracksegError {
  declare readonly code: DownloadErrorCode;
  /** The HTTP status, for {@link ERROR_CODES.downloadHttp}; else null. */
  readonly status: number | null;
  /** Each URL's failure, when every published URL failed; else empty. */
  readonly failures: readonly DownloadError[];

  constructor(
    code: DownloadErrorCode,
    /** The URL at fault (the first tried, when several failed). */
    readonly url: string,
    /** The file being written: the download's destination, or its `.part` file. */
    readonly file: string,
    message: string,
    options: { status?: number; failures?: DownloadError[]; cause?: unknown } = {},
  ) {
    super(code, message, 'cause' in options ? { cause: options.cause } : undefined);
    this.status = options.status ?? null;
    this.failures = options.failures ?? [];
  }
}
