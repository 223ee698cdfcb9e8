/**
 * A resumable, checked HTTP download over undici's fetch, through the proxy the environment names
 * (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`, as curl reads them).
 *
 * Contract: `dest` appears only complete and checked (renamed from `dest.part`). The expected
 * size and SHA-256 are what the server declares: Hugging Face's `X-Linked-Size` and
 * `X-Linked-Etag` (the SHA-256 of an LFS file), else `Content-Length` (size only). A stop at any
 * instant leaves `dest.part` and `dest.part.json` (the URL and the declared size and hash), from
 * which the next call resumes with an HTTP `Range` request if the server still declares the same.
 * Every failure is a {@link DownloadError} whose code says what went wrong (ts/errors.ts) and whose
 * one-line message names the URL and the file.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { EnvHttpProxyAgent, fetch, type Dispatcher, type Response } from 'undici';
import { DownloadError, ERROR_CODES, type DownloadErrorCode } from '../errors.js';
import { writeFileAtomic } from '../util/atomic.js';

export interface DownloadProgress {
  /** The file's name. */
  file: string;
  url: string;
  /** Bytes in the file so far, resumed bytes included. */
  received: number;
  /** The file's size; null when the server does not say. */
  total: number | null;
  /** Bytes already there from an earlier, interrupted download. */
  resumedFrom: number;
  /** Bytes per second received by this call. */
  bytesPerSecond: number;
  /** At the current rate; null when the size or the rate is unknown. */
  etaSeconds: number | null;
  /** True for the last report, when every byte has arrived. */
  done: boolean;
}

export interface DownloadOptions {
  /** Where the file is published, tried in order until one answers. */
  urls: string[];
  /** The file to write. */
  dest: string;
  onProgress?: (progress: DownloadProgress) => void;
  /** Least milliseconds between two progress reports (default 250). */
  progressIntervalMs?: number;
  /** Seconds without a response or data before the download fails (default 60). */
  timeoutSeconds?: number;
}

export interface DownloadResult {
  path: string;
  /** The URL that served the file. */
  url: string;
  size: number;
  sha256: string;
  /** What the file was checked against: the declared SHA-256 (and size), or the size alone. */
  verified: 'sha256' | 'size';
  /** Bytes resumed from an earlier, interrupted download. */
  resumedFrom: number;
  seconds: number;
}

/** What a server declares about the file before it is fetched. */
interface Declared {
  /** The published URL (the identity of a partial download). */
  url: string;
  /** Where the bytes come from once redirects are followed. */
  location: string;
  size: number | null;
  sha256: string | null;
}

const MAX_REDIRECTS = 10;

/** Downloads `options.urls` (the first that answers) to `options.dest`; see the file comment. */
export async function downloadFile(options: DownloadOptions): Promise<DownloadResult> {
  const timeoutMs = (options.timeoutSeconds ?? 60) * 1000;
  const dispatcher = new EnvHttpProxyAgent({
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    connect: { timeout: timeoutMs },
  });
  try {
    const failures: DownloadError[] = [];
    for (const url of options.urls) {
      let declared: Declared;
      try {
        declared = await probe(url, options.dest, dispatcher);
      } catch (err) {
        failures.push(failureError(err, url, options.dest, timeoutMs));
        continue;
      }
      return await transfer(declared, options, dispatcher, timeoutMs);
    }
    throw everyUrlFailed(failures, options);
  } finally {
    await dispatcher.destroy();
  }
}

/** Follows redirects with HEAD requests, collecting what the hops declare, up to the file. */
async function probe(url: string, dest: string, dispatcher: Dispatcher): Promise<Declared> {
  let location = url;
  let size: number | null = null;
  let sha256: string | null = null;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const response = await fetch(location, { method: 'HEAD', redirect: 'manual', dispatcher });
    await response.body?.cancel();
    size ??= sizeHeader(response, 'x-linked-size');
    sha256 ??= sha256Header(response.headers.get('x-linked-etag'));
    const next = response.headers.get('location');
    if (response.status >= 300 && response.status < 400 && next) {
      location = new URL(next, location).href;
      // Hugging Face redirects to a signed CDN URL, which may be valid for GET only: with the
      // size and hash declared, there is nothing more to ask (as huggingface_hub does).
      if (size !== null && sha256 !== null) return { url, location, size, sha256 };
      continue;
    }
    if (!response.ok) throw httpError(response.status, url, location, dest);
    size ??= sizeHeader(response, 'content-length');
    return { url, location, size, sha256 };
  }
  throw new DownloadError(
    ERROR_CODES.downloadResponse,
    url,
    dest,
    `${url}: more than ${MAX_REDIRECTS} redirects`,
  );
}

/**
 * The error when no URL served the file: each one's failure in turn, and what to do offline or
 * behind a proxy when a host could not be reached (see {@link DownloadError} for its code).
 */
function everyUrlFailed(failures: DownloadError[], options: DownloadOptions): DownloadError {
  const { dest, urls } = options;
  const unreachable = failures.find(
    (f) => f.code === ERROR_CODES.downloadNetwork || f.code === ERROR_CODES.downloadTimeout,
  );
  const first = failures[0];
  if (!first) throw new RangeError(`no URL to download ${dest} from`);
  const cause = unreachable ?? first;
  return new DownloadError(
    cause.code,
    first.url,
    dest,
    `cannot download ${basename(dest)} to ${dirname(dest)}: ` +
      failures.map((f) => f.message).join('; ') +
      (unreachable ? `. ${offlineHint(urls)}` : ''),
    { failures, status: cause.status ?? undefined },
  );
}

/** Fetches the declared file into `dest.part` (resuming it when possible), checks it, renames it. */
async function transfer(
  declared: Declared,
  options: DownloadOptions,
  dispatcher: Dispatcher,
  timeoutMs: number,
): Promise<DownloadResult> {
  const started = performance.now();
  const { dest } = options;
  const { url, location } = declared;
  const name = basename(dest);
  const part = `${dest}.part`;
  const partInfo = `${dest}.part.json`;
  await onCache(url, dirname(dest), 'create the cache folder', () =>
    mkdir(dirname(dest), { recursive: true }),
  );
  let offset = await resumableBytes(declared, part, partInfo);
  if (offset === 0)
    await onCache(url, part, 'remove the partial download', () => rm(part, { force: true }));
  await onCache(url, partInfo, 'write the partial download record', () =>
    writeFileAtomic(
      partInfo,
      JSON.stringify({ url, size: declared.size, sha256: declared.sha256 }),
    ),
  );

  let response: Response;
  try {
    response = await fetch(location, {
      headers: offset > 0 ? { range: `bytes=${offset}-` } : {},
      dispatcher,
    });
  } catch (err) {
    throw failureError(err, location, dest, timeoutMs, { lead: `cannot download ${name} from ` });
  }
  if (response.status === 206) {
    const range = response.headers.get('content-range');
    if (Number(/^bytes (\d+)-/.exec(range ?? '')?.[1]) !== offset) {
      await response.body?.cancel();
      throw new DownloadError(
        ERROR_CODES.downloadResponse,
        location,
        part,
        `cannot resume ${part}: ${location} answered a request for bytes ${offset}- with "${range}"`,
      );
    }
  } else if (response.ok) {
    offset = 0; // the server ignored the range: start over
  } else {
    await response.body?.cancel();
    if (response.status === 416) await discard(url, part, partInfo); // the part no longer fits
    throw httpError(response.status, url, location, dest);
  }
  if (!response.body) {
    throw new DownloadError(
      ERROR_CODES.downloadResponse,
      location,
      dest,
      `cannot download ${name}: ${location} answered without a body`,
    );
  }
  const length = sizeHeader(response, 'content-length');
  const size = declared.size ?? (length === null ? null : offset + length);

  const hash = createHash('sha256');
  if (offset > 0) await onCache(url, part, 'read the partial download', () => hashFile(part, hash));
  const meter = new ProgressMeter(name, url, size, offset, options);
  let received = offset;
  const file = await onCache(url, part, 'open the partial download', () =>
    open(part, offset > 0 ? 'a' : 'w'),
  );
  try {
    // A fetch body streams bytes (the Fetch standard); undici types its chunks as any.
    const body: AsyncIterable<Uint8Array> = response.body;
    for await (const chunk of body) {
      await onCache(url, part, 'write the partial download', () => file.write(chunk));
      hash.update(chunk);
      received += chunk.length;
      meter.update(received);
    }
  } catch (err) {
    const of = size === null ? '' : ` of ${size}`;
    throw failureError(err, location, part, timeoutMs, {
      lead: `downloading ${name} stopped after ${received}${of} bytes from `,
      tail: `; the partial download is kept (${part}): run again to resume`,
      midTransfer: true,
    });
  } finally {
    await file.close();
  }

  const sha256 = hash.digest('hex');
  if (size !== null && received !== size) {
    if (received > size) await discard(url, part, partInfo);
    throw new DownloadError(
      ERROR_CODES.downloadMismatch,
      location,
      part,
      `${part}: ${received} bytes received, ${size} declared by ${location}` +
        (received < size ? '; the partial download is kept: run again to resume' : ''),
    );
  }
  if (declared.sha256 !== null && sha256 !== declared.sha256) {
    await discard(url, part, partInfo);
    throw new DownloadError(
      ERROR_CODES.downloadMismatch,
      url,
      dest,
      `${name}: SHA-256 ${sha256} differs from ${declared.sha256} declared by ${url}; ` +
        `the download (${part}) was removed`,
    );
  }
  meter.update(received, true);
  await onCache(url, dest, 'rename the finished download to', () => rename(part, dest));
  await onCache(url, partInfo, 'remove the download record', () => rm(partInfo, { force: true }));
  return {
    path: dest,
    url,
    size: received,
    sha256,
    verified: declared.sha256 !== null ? 'sha256' : 'size',
    resumedFrom: meter.resumedFrom,
    seconds: (performance.now() - started) / 1000,
  };
}

/**
 * Bytes of `part` that a download of `declared` can keep: all of them when `partInfo` records the
 * same URL, size and SHA-256 (at least one of them known) and the part is not larger; else 0.
 */
async function resumableBytes(declared: Declared, part: string, partInfo: string): Promise<number> {
  let info: { url?: unknown; size?: unknown; sha256?: unknown };
  let bytes: number;
  try {
    info = JSON.parse(await readFile(partInfo, 'utf8')) as typeof info;
    bytes = (await stat(part)).size;
  } catch {
    return 0;
  }
  const same =
    info.url === declared.url &&
    info.size === declared.size &&
    info.sha256 === declared.sha256 &&
    (declared.size !== null || declared.sha256 !== null);
  return same && (declared.size === null || bytes <= declared.size) ? bytes : 0;
}

async function hashFile(path: string, hash: Hash): Promise<void> {
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
}

async function discard(url: string, part: string, partInfo: string): Promise<void> {
  await onCache(url, part, 'remove the partial download', () => rm(part, { force: true }));
  await onCache(url, partInfo, 'remove the partial download record', () =>
    rm(partInfo, { force: true }),
  );
}

/** `action` on a cache file; its (system) error as a {@link DownloadError} naming the file. */
async function onCache<T>(
  url: string,
  file: string,
  verb: string,
  action: () => Promise<T>,
): Promise<T> {
  try {
    return await action();
  } catch (err) {
    throw new DownloadError(
      ERROR_CODES.downloadCache,
      url,
      file,
      `cannot ${verb} ${file}: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    );
  }
}

/** Reports progress at most every `progressIntervalMs`, and always the last time. */
class ProgressMeter {
  private readonly started = performance.now();
  private last = -Infinity;

  constructor(
    private readonly file: string,
    private readonly url: string,
    private readonly total: number | null,
    readonly resumedFrom: number,
    private readonly options: Pick<DownloadOptions, 'onProgress' | 'progressIntervalMs'>,
  ) {}

  update(received: number, done = false): void {
    const { onProgress, progressIntervalMs = 250 } = this.options;
    const now = performance.now();
    if (!onProgress || (!done && now - this.last < progressIntervalMs)) return;
    this.last = now;
    const seconds = (now - this.started) / 1000;
    const bytesPerSecond = seconds > 0 ? (received - this.resumedFrom) / seconds : 0;
    onProgress({
      file: this.file,
      url: this.url,
      received,
      total: this.total,
      resumedFrom: this.resumedFrom,
      bytesPerSecond,
      etaSeconds:
        this.total !== null && bytesPerSecond > 0
          ? Math.max(0, this.total - received) / bytesPerSecond
          : null,
      done,
    });
  }
}

/** An HTTP error status from `location`, reached from the published `url`. */
function httpError(status: number, url: string, location: string, dest: string): DownloadError {
  const from = location === url ? '' : ` from ${location}`;
  return new DownloadError(
    ERROR_CODES.downloadHttp,
    url,
    dest,
    `${url}: HTTP ${status}${status === 404 ? ' (not found)' : ''}${from}`,
    { status },
  );
}

function sizeHeader(response: Response, name: string): number | null {
  const value = response.headers.get(name);
  return value !== null && /^\d+$/.test(value) ? Number(value) : null;
}

/** The SHA-256 in an `X-Linked-Etag` (quoted, possibly weak); null if it holds none. */
function sha256Header(value: string | null): string | null {
  const hex = value?.replace(/^W\//, '').replace(/"/g, '').toLowerCase();
  return hex && /^[0-9a-f]{64}$/.test(hex) ? hex : null;
}

/** The proxy the environment names for `url` (as undici's EnvHttpProxyAgent reads it). */
function proxyFor(url: string): string | undefined {
  const env = process.env;
  const http = env.http_proxy ?? env.HTTP_PROXY;
  return new URL(url).protocol === 'https:' ? (env.https_proxy ?? env.HTTPS_PROXY ?? http) : http;
}

const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'ECONNRESET',
  'UND_ERR_SOCKET',
]);
const TIMEOUTS = new Set([
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/** Where a fetch failed, for its message: `${lead}${url}: ${reason}${tail}`. */
interface FailureContext {
  /** Default none: the message starts with the URL. */
  lead?: string;
  tail?: string;
  /** The body was being received: the connection was lost rather than not made. */
  midTransfer?: boolean;
}

/** A failure to fetch `url` as a {@link DownloadError}: what failed, through which proxy, and why. */
function failureError(
  err: unknown,
  url: string,
  file: string,
  timeoutMs: number,
  context: FailureContext = {},
): DownloadError {
  if (err instanceof DownloadError) return err;
  const [code, reason] = networkFailure(err, url, timeoutMs, context.midTransfer ?? false);
  const message = `${context.lead ?? ''}${url}: ${reason}${context.tail ?? ''}`;
  return new DownloadError(code, url, file, message, { cause: err });
}

/** A network failure's code and description: what could not be reached, through which proxy. */
function networkFailure(
  err: unknown,
  url: string,
  timeoutMs: number,
  midTransfer: boolean,
): [DownloadErrorCode, string] {
  // fetch wraps the cause (and undici's proxy agent wraps its own) in `cause`
  const chain: Array<{ code?: unknown; message?: string; cause?: unknown }> = [];
  for (let e = err as (typeof chain)[number] | undefined; e && chain.length < 8;) {
    chain.push(e);
    e = e.cause as (typeof chain)[number] | undefined;
  }
  const codes = chain.map((e) => e.code).filter((c): c is string => typeof c === 'string');
  const innermost = chain.at(-1)?.message ?? String(err);
  const host = new URL(url).host;
  const proxy = proxyFor(url);
  const via = proxy ? ` through the proxy ${proxy}` : '';
  const { downloadNetwork, downloadTimeout } = ERROR_CODES;
  const tunnel = chain.find((e) => e.message?.includes('when HTTP Tunneling'));
  if (tunnel) {
    const refused = `the proxy ${proxy ?? ''} refused the connection to ${host}`;
    return [downloadNetwork, `${refused} (${tunnel.message})`];
  }
  if (codes.some((c) => TIMEOUTS.has(c))) {
    return [downloadTimeout, `${host} sent nothing for ${timeoutMs / 1000} s${via} (timeout)`];
  }
  const unreachable = codes.find((c) => UNREACHABLE.has(c));
  if (unreachable) {
    const what = midTransfer ? `lost the connection to ${host}` : `cannot reach ${host}`;
    return [downloadNetwork, `${what}${via} (${unreachable}: ${innermost})`];
  }
  return [downloadNetwork, `${host}${via}: ${innermost}`];
}

/** After a host could not be reached: what to do offline, and how to get through a proxy. */
function offlineHint(urls: string[]): string {
  const proxied = urls.some((url) => proxyFor(url));
  return (
    'Offline? Download the file elsewhere and give its path instead of the name. ' +
    (proxied
      ? 'Check the proxy (HTTPS_PROXY, HTTP_PROXY, NO_PROXY).'
      : 'Behind a proxy? Set HTTPS_PROXY (e.g. http://proxy:3128).')
  );
}
