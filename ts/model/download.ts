/**
 * A resumable, checked HTTP download over undici's fetch, through the proxy the environment names
 * (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`, as curl reads them).
 *
 * Contract: `dest` appears only complete and checked (renamed from `dest.part`). The expected
 * size and SHA-256 are what the server declares: Hugging Face's `X-Linked-Size` and
 * `X-Linked-Etag` (the SHA-256 of an LFS file), else `Content-Length` (size only). A stop at any
 * instant leaves `dest.part` and `dest.part.json` (the URL and the declared size and hash), from
 * which the next call resumes with an HTTP `Range` request if the server still declares the same.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { EnvHttpProxyAgent, fetch, type Dispatcher, type Response } from 'undici';
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
    const failures: string[] = [];
    let unreachable = false;
    for (const url of options.urls) {
      let declared: Declared;
      try {
        declared = await probe(url, dispatcher);
      } catch (err) {
        failures.push(`${url}: ${describeFailure(err, url, timeoutMs)}`);
        unreachable ||= !(err instanceof HttpStatusError);
        continue;
      }
      return await transfer(declared, options, dispatcher, timeoutMs);
    }
    const hint = unreachable ? offlineHint(options.urls) : '';
    throw new Error(
      `cannot download ${basename(options.dest)}:\n  ${failures.join('\n  ')}${hint}`,
    );
  } finally {
    await dispatcher.destroy();
  }
}

/** Follows redirects with HEAD requests, collecting what the hops declare, up to the file. */
async function probe(url: string, dispatcher: Dispatcher): Promise<Declared> {
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
    if (!response.ok) throw new HttpStatusError(response.status, location);
    size ??= sizeHeader(response, 'content-length');
    return { url, location, size, sha256 };
  }
  throw new Error(`more than ${MAX_REDIRECTS} redirects from ${url}`);
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
  const part = `${dest}.part`;
  const partInfo = `${dest}.part.json`;
  await mkdir(dirname(dest), { recursive: true });
  let offset = await resumableBytes(declared, part, partInfo);
  if (offset === 0) await rm(part, { force: true });
  await writeFileAtomic(
    partInfo,
    JSON.stringify({ url: declared.url, size: declared.size, sha256: declared.sha256 }),
  );

  let response: Response;
  try {
    response = await fetch(declared.location, {
      headers: offset > 0 ? { range: `bytes=${offset}-` } : {},
      dispatcher,
    });
  } catch (err) {
    throw new Error(
      `cannot download ${basename(dest)}: ${describeFailure(err, declared.location, timeoutMs)}`,
    );
  }
  if (response.status === 206) {
    const start = /^bytes (\d+)-/.exec(response.headers.get('content-range') ?? '')?.[1];
    if (Number(start) !== offset) {
      await response.body?.cancel();
      throw new Error(
        `${declared.location} answered a request for bytes ${offset}- with "${response.headers.get('content-range')}"`,
      );
    }
  } else if (response.ok) {
    offset = 0; // the server ignored the range: start over
  } else {
    await response.body?.cancel();
    if (response.status === 416) await rm(part, { force: true }); // the part no longer fits
    throw new Error(
      `cannot download ${basename(dest)}: ${new HttpStatusError(response.status, declared.location).message}`,
    );
  }
  const length = sizeHeader(response, 'content-length');
  const size = declared.size ?? (length === null ? null : offset + length);

  const hash = createHash('sha256');
  if (offset > 0) await hashFile(part, hash);
  const meter = new ProgressMeter(basename(dest), declared.url, size, offset, options);
  let received = offset;
  const file = await open(part, offset > 0 ? 'a' : 'w');
  try {
    if (!response.body) throw new Error('the response has no body');
    for await (const chunk of response.body) {
      await file.write(chunk);
      hash.update(chunk);
      received += chunk.length;
      meter.update(received);
    }
  } catch (err) {
    const of = size === null ? '' : ` of ${size}`;
    throw new Error(
      `downloading ${basename(dest)} stopped after ${received}${of} bytes: ` +
        `${describeFailure(err, declared.location, timeoutMs, true)}; the partial download is kept ` +
        `(${part}): run again to resume`,
    );
  } finally {
    await file.close();
  }

  const sha256 = hash.digest('hex');
  if (size !== null && received !== size) {
    if (received > size) await discard(part, partInfo);
    throw new Error(
      `${basename(dest)}: ${received} bytes received, ${size} declared by ${declared.location}` +
        (received < size ? '; the partial download is kept: run again to resume' : ''),
    );
  }
  if (declared.sha256 !== null && sha256 !== declared.sha256) {
    await discard(part, partInfo);
    throw new Error(
      `${basename(dest)}: SHA-256 ${sha256} differs from ${declared.sha256} declared by ` +
        `${declared.url}; the download was removed`,
    );
  }
  meter.update(received, true);
  await rename(part, dest);
  await rm(partInfo, { force: true });
  return {
    path: dest,
    url: declared.url,
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

async function discard(part: string, partInfo: string): Promise<void> {
  await rm(part, { force: true });
  await rm(partInfo, { force: true });
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

class HttpStatusError extends Error {
  constructor(
    readonly status: number,
    url: string,
  ) {
    super(`HTTP ${status}${status === 404 ? ' (not found)' : ''} from ${url}`);
  }
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

/** A network failure in words: what could not be reached, through which proxy, and why. */
function describeFailure(
  err: unknown,
  url: string,
  timeoutMs: number,
  midTransfer = false,
): string {
  if (err instanceof HttpStatusError) return err.message;
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
  const tunnel = chain.find((e) => e.message?.includes('when HTTP Tunneling'));
  if (tunnel)
    return `the proxy ${proxy ?? ''} refused the connection to ${host} (${tunnel.message})`;
  if (codes.some((c) => TIMEOUTS.has(c))) {
    return `${host} sent nothing for ${timeoutMs / 1000} s${via} (timeout)`;
  }
  const unreachable = codes.find((c) => UNREACHABLE.has(c));
  if (unreachable) {
    const what = midTransfer ? `lost the connection to ${host}` : `cannot reach ${host}`;
    return `${what}${via} (${unreachable}: ${innermost})`;
  }
  return `${host}${via}: ${innermost}`;
}

/** After a host could not be reached: what to do offline, and how to get through a proxy. */
function offlineHint(urls: string[]): string {
  const proxied = urls.some((url) => proxyFor(url));
  return (
    '\nOffline? Download the file elsewhere and give its path instead of the name. ' +
    (proxied
      ? 'Check the proxy (HTTPS_PROXY, HTTP_PROXY, NO_PROXY).'
      : 'Behind a proxy? Set HTTPS_PROXY (e.g. http://proxy:3128).')
  );
}
