// Official checkpoints by name: a local server on 127.0.0.1 with Hugging Face's and Meta's path
// layout (HF answers the resolve URL with a redirect declaring X-Linked-Size and X-Linked-Etag,
// as it does for LFS files) serves a random fixture; a local proxy records that it was used.
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { DownloadError, ERROR_CODES } from '../ts/errors.js';
import { downloadFile, type DownloadProgress } from '../ts/model/download.js';
import {
  cacheDirectory,
  checkpointUrls,
  fetchOfficialCheckpoint,
  officialCheckpoint,
  resolveCheckpoint,
} from '../ts/model/official-checkpoints.js';
import { formatDownloadProgress } from '../ts/cli/download-progress.js';
import { register } from '../ts/cli/export.js';
import { Command } from 'commander';
import { coded } from './helpers/errors.js';

for (const name of [
  'HTTP_PROXY',
  'HTTPS_PROXY',
  'http_proxy',
  'https_proxy',
  'NO_PROXY',
  'no_proxy',
]) {
  delete process.env[name];
}

const FILE = 'sam2.1_hiera_tiny.pt';
const fixture = randomBytes(300_000);
const sha256 = createHash('sha256').update(fixture).digest('hex');

interface Logged {
  method: string;
  url: string;
  range?: string;
}

/** How the server misbehaves for the next requests. */
const mode = {
  hf404: false,
  meta404: false,
  /** SHA-256 that HF declares instead of the real one. */
  declaredSha: '',
  /** Milliseconds between 8 chunks of the body. */
  chunkDelayMs: 0,
  /** Bytes after which a full body stalls (held open in `held`). */
  stallAt: 0,
};
const log: Logged[] = [];
const held: ServerResponse[] = [];

function serveFile(req: IncomingMessage, res: ServerResponse, declare: boolean): void {
  const headers: Record<string, string | number> = { 'accept-ranges': 'bytes' };
  if (declare) {
    headers['x-linked-size'] = fixture.length;
    headers['x-linked-etag'] = `"${mode.declaredSha || sha256}"`;
  }
  const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  const start = range ? Number(range[1]) : 0;
  const body = fixture.subarray(start);
  headers['content-length'] = body.length;
  if (range) headers['content-range'] = `bytes ${start}-${fixture.length - 1}/${fixture.length}`;
  res.writeHead(range ? 206 : 200, headers);
  if (req.method === 'HEAD') return void res.end();
  if (mode.stallAt && !range) {
    res.write(body.subarray(0, mode.stallAt));
    held.push(res);
    return;
  }
  if (mode.chunkDelayMs) {
    const size = Math.ceil(body.length / 8);
    let i = 0;
    const next = () => {
      if (i * size >= body.length) return void res.end();
      res.write(body.subarray(i * size, ++i * size));
      setTimeout(next, mode.chunkDelayMs);
    };
    return next();
  }
  res.end(body);
}

const server: Server = createServer((req, res) => {
  log.push({ method: req.method ?? '', url: req.url ?? '', range: req.headers.range });
  const url = req.url ?? '';
  if (url === `/facebook/sam2.1-hiera-tiny/resolve/main/${FILE}`) {
    if (mode.hf404) return void res.writeHead(404).end('Entry not found');
    // Hugging Face: a redirect to the CDN that declares size and SHA-256
    res.writeHead(302, {
      location: `/cdn/${FILE}?signed=1`,
      'x-linked-size': fixture.length,
      'x-linked-etag': `"${mode.declaredSha || sha256}"`,
    });
    return void res.end();
  }
  if (url === `/cdn/${FILE}?signed=1`) return serveFile(req, res, false);
  if (url === '/loop') return void res.writeHead(302, { location: '/loop' }).end();
  // declares 1000 bytes, sends 500
  if (url === '/short') {
    res.writeHead(200, { 'content-length': req.method === 'HEAD' ? 1000 : 500 });
    return void res.end(req.method === 'HEAD' ? undefined : fixture.subarray(0, 500));
  }
  if (url === `/segment_anything_2/092824/${FILE}`) {
    if (mode.meta404) return void res.writeHead(404).end();
    return serveFile(req, res, false);
  }
  res.writeHead(404).end();
});
server.listen(0, '127.0.0.1');
await once(server, 'listening');
const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
process.env.CRACKSEG_HF_ENDPOINT = origin;
process.env.CRACKSEG_SAM2_BASE_URL = `${origin}/segment_anything_2/092824`;

const dir = await mkdtemp(join(tmpdir(), 'crackseg-download-'));
let cases = 0;
/** A fresh, empty cache folder per case. */
const freshCache = () => join(dir, `cache-${cases++}`);

t.teardown(async () => {
  for (const res of held) res.destroy();
  server.closeAllConnections();
  server.close();
  await rm(dir, { recursive: true, force: true });
});
t.beforeEach(() => {
  Object.assign(mode, {
    hf404: false,
    meta404: false,
    declaredSha: '',
    chunkDelayMs: 0,
    stallAt: 0,
  });
  log.length = 0;
});

t.test('names, implied configs and the published URLs', async (t) => {
  t.equal(officialCheckpoint('sam2.1_hiera_small')?.config, 'small');
  t.equal(officialCheckpoint('facebook/sam2.1-hiera-base-plus')?.config, 'base_plus');
  t.equal(officialCheckpoint('sam2.1_hiera_base_plus')?.file, 'sam2.1_hiera_base_plus.pt');
  t.equal(officialCheckpoint('sam2.1_hiera_small.pt'), undefined, 'a file name is a path');
  t.equal(officialCheckpoint('facebook/sam2-hiera-small'), undefined, 'SAM 2, not 2.1');
  // as in the official checkpoints/download_ckpts.sh and sam2/build_sam.py
  t.same(checkpointUrls(officialCheckpoint('sam2.1_hiera_large')!, {}), [
    'https://huggingface.co/facebook/sam2.1-hiera-large/resolve/main/sam2.1_hiera_large.pt',
    'https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_large.pt',
  ]);
  t.match(
    checkpointUrls(officialCheckpoint('sam2.1_hiera_tiny')!, { HF_ENDPOINT: 'https://m.example/' }),
    ['https://m.example/facebook/sam2.1-hiera-tiny/resolve/main/sam2.1_hiera_tiny.pt'],
  );
  t.equal(cacheDirectory(undefined, { XDG_CACHE_HOME: '/x/cache' }), '/x/cache/crackseg');
  t.equal(
    cacheDirectory(undefined, { XDG_CACHE_HOME: '/x/cache', CRACKSEG_CACHE_DIR: '/y' }),
    '/y',
  );
  t.equal(cacheDirectory('/z', { CRACKSEG_CACHE_DIR: '/y' }), '/z');
  await t.rejects(resolveCheckpoint('sam2.1_hiera_tiny', 'large'), /config "large" does not match/);
  t.same(await resolveCheckpoint('/w/sam2.1_hiera_large.pt', undefined), {
    path: '/w/sam2.1_hiera_large.pt',
    config: 'large',
  });
  t.equal(log.length, 0, 'no request');
});

t.test('download from Hugging Face with the declared SHA-256, then a cache hit', async (t) => {
  const cacheDir = freshCache();
  const reports: DownloadProgress[] = [];
  const got = await fetchOfficialCheckpoint('facebook/sam2.1-hiera-tiny', {
    cacheDir,
    onProgress: (p) => reports.push(p),
  });
  t.equal(got.path, join(cacheDir, 'checkpoints', FILE));
  t.ok((await readFile(got.path)).equals(fixture), 'the served bytes');
  t.equal(got.download?.sha256, sha256);
  t.equal(got.download?.verified, 'sha256');
  t.equal(got.download?.size, fixture.length);
  t.same(
    log.map((l) => `${l.method} ${l.url}`),
    [`HEAD /facebook/sam2.1-hiera-tiny/resolve/main/${FILE}`, `GET /cdn/${FILE}?signed=1`],
  );
  const last = reports.at(-1)!;
  t.match(last, { done: true, received: fixture.length, total: fixture.length, resumedFrom: 0 });
  t.notOk(existsSync(`${got.path}.part`) || existsSync(`${got.path}.part.json`));

  log.length = 0;
  const again = await fetchOfficialCheckpoint('sam2.1_hiera_tiny', { cacheDir });
  t.equal(again.download, null, 'cache hit');
  t.equal(again.path, got.path);
  t.equal(log.length, 0, 'no request on a cache hit');
});

t.test('interrupted mid-file, then resumed with a Range request', async (t) => {
  const cacheDir = freshCache();
  mode.stallAt = 120_000;
  // the connection drops once the client has the first 120000 bytes
  const cut = (p: DownloadProgress) => p.received >= 120_000 && held.pop()?.destroy();
  await t.rejects(
    fetchOfficialCheckpoint('sam2.1_hiera_tiny', {
      cacheDir,
      onProgress: cut,
      progressIntervalMs: 0,
    }),
    {
      ...coded('downloadNetwork'),
      message:
        /stopped after 120000 of 300000 bytes from http:\/\/127\.0\.0\.1:\d+\/cdn\/\S+: lost the connection to 127\.0\.0\.1:\d+ \(UND_ERR_SOCKET: other side closed\); the partial download is kept .*run again to resume/,
      file: join(cacheDir, 'checkpoints', `${FILE}.part`),
    },
  );
  const path = join(cacheDir, 'checkpoints', FILE);
  t.equal((await stat(`${path}.part`)).size, 120_000, 'the part holds what arrived');
  t.notOk(existsSync(path), 'no checkpoint file yet');

  log.length = 0;
  const got = await fetchOfficialCheckpoint('sam2.1_hiera_tiny', { cacheDir });
  t.same(log.at(-1), { method: 'GET', url: `/cdn/${FILE}?signed=1`, range: 'bytes=120000-' });
  t.equal(got.download?.resumedFrom, 120_000);
  t.equal(got.download?.sha256, sha256, 'the whole file hashed, resumed bytes included');
  t.ok((await readFile(path)).equals(fixture));
});

t.test('a part from another file is not resumed', async (t) => {
  const cacheDir = freshCache();
  const path = join(cacheDir, 'checkpoints', FILE);
  await fetchOfficialCheckpoint('sam2.1_hiera_tiny', { cacheDir });
  await rm(path);
  await writeFile(`${path}.part`, Buffer.alloc(1000, 7));
  const other = { url: 'x', size: fixture.length, sha256 };
  await writeFile(`${path}.part.json`, JSON.stringify(other));
  log.length = 0;
  const got = await fetchOfficialCheckpoint('sam2.1_hiera_tiny', { cacheDir });
  t.equal(log.at(-1)?.range, undefined, 'a full GET');
  t.equal(got.download?.sha256, sha256);
});

t.test('a wrong SHA-256 rejects the file and removes the part', async (t) => {
  const cacheDir = freshCache();
  mode.declaredSha = 'ab'.repeat(32);
  await t.rejects(fetchOfficialCheckpoint('sam2.1_hiera_tiny', { cacheDir }), {
    ...coded('downloadMismatch'),
    message: new RegExp(`SHA-256 ${sha256} differs from ${'ab'.repeat(32)} declared by .*removed`),
  });
  const path = join(cacheDir, 'checkpoints', FILE);
  t.notOk(existsSync(path) || existsSync(`${path}.part`) || existsSync(`${path}.part.json`));
});

t.test("404 on Hugging Face: Meta's URL, checked by size; 404 on both: an error", async (t) => {
  mode.hf404 = true;
  const got = await fetchOfficialCheckpoint('sam2.1_hiera_tiny', { cacheDir: freshCache() });
  t.equal(got.download?.url, `${origin}/segment_anything_2/092824/${FILE}`);
  t.equal(got.download?.verified, 'size');
  t.equal(got.download?.sha256, sha256);

  mode.meta404 = true;
  const failure = fetchOfficialCheckpoint('sam2.1_hiera_tiny', { cacheDir: freshCache() });
  const hf = `${origin}/facebook/sam2.1-hiera-tiny/resolve/main/${FILE}`;
  await t.rejects(failure, {
    ...coded('downloadHttp'),
    status: 404,
    url: hf,
    message: /^cannot download sam2\.1_hiera_tiny\.pt to /,
  });
  await failure.catch((err: DownloadError) => {
    t.notMatch(err.message, /Offline|\n/, 'one line, no offline hint');
    t.match(err.message, `: ${hf}: HTTP 404 (not found); ${origin}/segment_anything_2/`);
    t.same(
      err.failures.map((f) => [f.code, f.status]),
      [
        [ERROR_CODES.downloadHttp, 404],
        [ERROR_CODES.downloadHttp, 404],
      ],
    );
  });
});

t.test('a slow server still reports progress; a stalled one times out', async (t) => {
  mode.chunkDelayMs = 60;
  const reports: DownloadProgress[] = [];
  await fetchOfficialCheckpoint('sam2.1_hiera_tiny', {
    cacheDir: freshCache(),
    progressIntervalMs: 20,
    onProgress: (p) => reports.push(p),
  });
  const partial = reports.filter((p) => !p.done);
  t.ok(partial.length >= 4, `${partial.length} reports before the end`);
  t.ok(partial.every((p, i) => i === 0 || p.received >= partial[i - 1]!.received));
  const mid = partial.find((p) => p.etaSeconds !== null && p.received < fixture.length)!;
  t.ok(mid.bytesPerSecond > 0 && mid.etaSeconds! > 0, 'rate and ETA while it runs');
  t.match(
    formatDownloadProgress(mid),
    /^sam2\.1_hiera_tiny\.pt \d+ KiB \/ 293 KiB \(\d+%\), .*\/s, ETA \d+s$/,
  );

  mode.chunkDelayMs = 0;
  mode.stallAt = 50_000;
  const cacheDir = freshCache();
  await t.rejects(fetchOfficialCheckpoint('sam2.1_hiera_tiny', { cacheDir, timeoutSeconds: 0.3 }), {
    ...coded('downloadTimeout'),
    message:
      /stopped after 50000 of 300000 bytes from \S+: 127\.0\.0\.1:\d+ sent nothing for 0\.3 s \(timeout\)/,
  });
  t.equal((await stat(join(cacheDir, 'checkpoints', `${FILE}.part`))).size, 50_000, 'kept');
});

/** A proxy that tunnels CONNECT requests (refusing those to `refuse`) and logs them. */
async function startProxy(refuse: string) {
  const connects: string[] = [];
  const proxy = createServer();
  proxy.on('connect', (req: IncomingMessage, client, head: Buffer) => {
    connects.push(req.url ?? '');
    const [host, port] = (req.url ?? '').split(':');
    if (host === refuse) return void client.end('HTTP/1.1 403 Forbidden\r\n\r\n');
    const upstream = connect(Number(port), host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(client).pipe(upstream);
    });
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  proxy.listen(0, '127.0.0.1');
  await once(proxy, 'listening');
  return { proxy, connects, url: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}` };
}

t.test('HTTP_PROXY and HTTPS_PROXY are honoured', async (t) => {
  const { proxy, connects, url } = await startProxy('checkpoints.invalid');
  t.teardown(() => {
    delete process.env.HTTP_PROXY;
    delete process.env.HTTPS_PROXY;
    process.env.CRACKSEG_HF_ENDPOINT = origin;
    process.env.CRACKSEG_SAM2_BASE_URL = `${origin}/segment_anything_2/092824`;
    proxy.closeAllConnections();
    proxy.close();
  });
  process.env.HTTP_PROXY = url;
  const got = await fetchOfficialCheckpoint('sam2.1_hiera_tiny', { cacheDir: freshCache() });
  t.equal(got.download?.sha256, sha256);
  const target = new URL(origin).host;
  t.ok(connects.length > 0 && connects.every((c) => c === target), 'tunnelled to the server');

  process.env.HTTPS_PROXY = url;
  process.env.CRACKSEG_HF_ENDPOINT = 'https://checkpoints.invalid';
  process.env.CRACKSEG_SAM2_BASE_URL = 'https://checkpoints.invalid/sam2';
  connects.length = 0;
  await t.rejects(fetchOfficialCheckpoint('sam2.1_hiera_tiny', { cacheDir: freshCache() }), {
    ...coded('downloadNetwork'),
    message:
      /the proxy http:\/\/127\.0\.0\.1:\d+ refused the connection to checkpoints\.invalid.*\. Offline\? .*Check the proxy/,
  });
  t.same(
    connects,
    ['checkpoints.invalid:443', 'checkpoints.invalid:443'],
    'HTTPS went to the proxy',
  );
});

t.test('offline: connection refused gives a clear message', async (t) => {
  const closed = createServer();
  closed.listen(0, '127.0.0.1');
  await once(closed, 'listening');
  const port = (closed.address() as AddressInfo).port;
  closed.close();
  t.teardown(() => {
    process.env.CRACKSEG_HF_ENDPOINT = origin;
    process.env.CRACKSEG_SAM2_BASE_URL = `${origin}/segment_anything_2/092824`;
  });
  process.env.CRACKSEG_HF_ENDPOINT = `http://127.0.0.1:${port}`;
  process.env.CRACKSEG_SAM2_BASE_URL = `http://127.0.0.1:${port}/sam2`;
  await t.rejects(fetchOfficialCheckpoint('sam2.1_hiera_tiny', { cacheDir: freshCache() }), {
    ...coded('downloadNetwork'),
    message:
      /^cannot download sam2\.1_hiera_tiny\.pt to \S+: http:\/\/127\.0\.0\.1:\d+\/\S+: cannot reach 127\.0\.0\.1:\d+ \(ECONNREFUSED[^\n]*; http:\/\/\S+: cannot reach [^\n]*\. Offline\? [^\n]*Behind a proxy\? Set HTTPS_PROXY[^\n]*$/,
  });
});

t.test(
  'crackseg export --checkpoint <name>: downloads, implies --config, runs the exporter',
  async (t) => {
    const cacheDir = freshCache();
    const exportCli = (...args: string[]) => {
      const program = new Command().exitOverride();
      register(program);
      return program.parseAsync(['export', '--cache-dir', cacheDir, ...args], { from: 'user' });
    };
    const out = join(dir, 'named.pt');
    await t.rejects(
      exportCli('--checkpoint', 'sam2.1_hiera_tiny', '--config', 'small', '--out', out),
      /config "small" does not match the checkpoint sam2\.1_hiera_tiny \(config tiny\)/,
    );
    t.equal(log.length, 0, 'refused before any request');

    const logs = t.capture(console, 'log');
    const errs = t.capture(process.stderr, 'write');
    // the fixture is random bytes, so the exporter (given the cached file) refuses it
    await t.rejects(
      exportCli('--checkpoint', 'facebook/sam2.1-hiera-tiny', '--out', out),
      /model export failed: .*/,
    );
    const printed = logs().map((c) => String(c.args[0]));
    t.match(
      printed[0],
      new RegExp(
        `^downloaded .*${FILE} \\(293 KiB, SHA-256 ${sha256} verified\\) to ${join(cacheDir, 'checkpoints', FILE)}$`,
      ),
    );
    t.match(
      String(errs().at(-1)?.args[0]),
      /^sam2\.1_hiera_tiny\.pt 293 KiB \/ 293 KiB \(100%\), .*, done\n$/,
      'progress line on a pipe',
    );
    t.notOk(existsSync(out), 'nothing written');

    log.length = 0;
    await t.rejects(
      exportCli('--checkpoint', 'sam2.1_hiera_tiny', '--out', out),
      /model export failed/,
    );
    t.match(String(logs().at(-1)?.args[0]), /^using the cached .*sam2\.1_hiera_tiny\.pt$/);
    t.equal(log.length, 0, 'no request');
  },
);

t.test(
  'unusable answers and an unwritable cache: coded errors naming the URL and file',
  async (t) => {
    const dest = join(dir, 'direct', 'file.bin');
    await t.rejects(downloadFile({ urls: [`${origin}/loop`], dest }), {
      ...coded('downloadResponse'),
      url: `${origin}/loop`,
      message: `cannot download file.bin to ${join(dir, 'direct')}: ${origin}/loop: more than 10 redirects`,
    });
    await t.rejects(downloadFile({ urls: [`${origin}/short`], dest }), {
      ...coded('downloadMismatch'),
      file: `${dest}.part`,
      message: `${dest}.part: 500 bytes received, 1000 declared by ${origin}/short; the partial download is kept`,
    });
    t.equal((await stat(`${dest}.part`)).size, 500, 'kept to resume');

    const notAFolder = join(dir, 'not-a-folder');
    await writeFile(notAFolder, '');
    const failure = fetchOfficialCheckpoint('sam2.1_hiera_tiny', { cacheDir: notAFolder });
    await t.rejects(failure, {
      ...coded('downloadCache'),
      file: join(notAFolder, 'checkpoints'),
      message: `cannot create the cache folder ${join(notAFolder, 'checkpoints')}: ENOTDIR`,
      cause: { code: 'ENOTDIR' },
    });
  },
);

t.test(
  'crackseg export --checkpoint <name> failing: one line on stderr, exit status 1',
  async (t) => {
    mode.hf404 = true;
    mode.meta404 = true;
    const cli = fileURLToPath(new URL('../ts/cli/main.ts', import.meta.url));
    // How this process runs TypeScript (tap's loader), for the process it starts.
    const nodeArgs = process.execArgv.filter((arg) => arg.includes('typescript'));
    const args = ['export', '--checkpoint', 'sam2.1_hiera_tiny', '--cache-dir', freshCache()];
    const child = spawn(process.execPath, [...nodeArgs, cli, ...args, '--out', join(dir, 'x.pt')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const [status] = (await once(child, 'close')) as [number];
    t.equal(status, 1);
    t.match(
      stderr,
      /^crackseg: cannot download sam2\.1_hiera_tiny\.pt to \S+: http:\S+: HTTP 404 \(not found\); http:\S+: HTTP 404 \(not found\)\n$/,
    );
  },
);
