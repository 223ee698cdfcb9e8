// Sharded evaluation over c10d with Gloo on the `test` model: `crackseg evaluate
// --nproc-per-node 2` writes the folder one process writes, byte for byte once the fields that
// differ between any two runs are blanked; a rank killed mid-run fails the other, naming it.
import t from 'tap';
import { Command } from 'commander';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { register } from '../ts/cli/evaluate.js';
import { freePort } from '../ts/distributed/launch.js';
import { exportModel } from '../ts/model/export.js';
import { RESULTS_CSV } from '../ts/report/csv.js';
import { SUMMARY_JSON } from '../ts/report/summary.js';
import { synthesizeDataset } from '../ts/synth/synthesize.js';

const cli = fileURLToPath(new URL('../ts/cli/main.ts', import.meta.url));
const worker = fileURLToPath(new URL('./fixtures/distributed-worker.ts', import.meta.url));
// How this process runs TypeScript (tap's loader), for the processes it starts.
const nodeArgs = process.execArgv.filter((arg) => arg.includes('typescript'));

const dir = mkdtempSync(join(tmpdir(), 'crackseg-distributed-evaluate-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const model = join(dir, 'model.pt');
const dataRoot = join(dir, 'data');
await Promise.all([
  exportModel({ config: 'test', seed: 3, out: model }),
  // 3 images: shares of 2 and 1.
  synthesizeDataset({ out: dataRoot, train: 0, val: 0, test: 3, width: 64, height: 48, seed: 4 }),
]);

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Seconds from the start of the call to the process's end. */
  seconds: number;
}

function run(args: string[], env: NodeJS.ProcessEnv = process.env, started = performance.now()) {
  const child = spawn(process.execPath, [...nodeArgs, ...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 240_000);
  return new Promise<Exit>((resolve) =>
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, seconds: (performance.now() - started) / 1000 });
    }),
  );
}

/** Every file under `root`, relative to it, sorted. */
function filesUnder(root: string): string[] {
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(root, join(entry.parentPath, entry.name)))
    .sort();
}

/**
 * A file's bytes with the fields that differ between any two runs blanked: the CSV's
 * batch_ms_per_image column; the summary's startedAt, updatedAt, timings, run.startedAt and
 * batchMsPerImage; report.html's generation time. Everything else is compared as written.
 */
function comparable(path: string): string {
  const text = readFileSync(path, 'utf8');
  if (path.endsWith(RESULTS_CSV)) {
    const rows = text.trimEnd().split('\n');
    const column = rows[0]!.split(',').indexOf('batch_ms_per_image');
    return rows
      .map((row) => row.split(',').map((cell, i) => (i === column ? '' : cell)))
      .join('\n');
  }
  if (path.endsWith(SUMMARY_JSON)) {
    const summary = JSON.parse(text) as Record<string, unknown> & { run: { startedAt: string } };
    for (const field of ['startedAt', 'updatedAt', 'timings', 'batchMsPerImage'])
      summary[field] = null;
    summary.run.startedAt = '';
    return JSON.stringify(summary, null, 2);
  }
  if (path.endsWith('.html')) return text.replace(/Generated [0-9T:.Z-]+\./, 'Generated .');
  return readFileSync(path).toString('base64');
}

const evaluateArgs = (outputDir: string) => [
  'evaluate',
  '--prompts',
  'bbox,points:1',
  '--model',
  model,
  '--device',
  'cpu',
  '--data-root',
  dataRoot,
  '--output-dir',
  outputDir,
  '--num-vis',
  '1',
  '--batch-size',
  '2',
];

t.test('2 ranks write the folder one process writes', async (t) => {
  // The same output folder each time (it is recorded in the summaries), moved aside after.
  const out = join(dir, 'out');
  const singles: string[] = [];
  for (const name of ['single1', 'single2']) {
    // One process: the same command, in this one.
    const program = new Command().exitOverride();
    register(program);
    await program.parseAsync(['node', 'crackseg', ...evaluateArgs(out)]);
    renameSync(out, join(dir, name));
    singles.push(join(dir, name));
  }
  const sharded = await run([cli, ...evaluateArgs(out), '--nproc-per-node', '2']);
  t.equal(sharded.code, 0, sharded.stderr);
  t.match(sharded.stdout, /^3 images in /m, 'rank 0 reports all images');
  t.notMatch(sharded.stdout, /\[rank 1\]/, 'rank 1 says nothing');

  const files = filesUnder(singles[0]!);
  t.ok(files.includes('report.html'));
  for (const config of ['bbox_prompt', 'points_1']) {
    t.ok(files.includes(join(config, RESULTS_CSV)));
    t.ok(files.some((f) => f.startsWith(join(config, 'predictions'))));
    t.ok(files.some((f) => f.startsWith(join(config, 'visualizations'))));
  }
  t.same(filesUnder(out), files, 'the same files');
  t.same(filesUnder(singles[1]!), files);
  for (const file of files) {
    const expected = comparable(join(singles[0]!, file));
    // Two runs of one process differ in nothing else: what is blanked is all that varies.
    t.equal(comparable(join(singles[1]!, file)), expected, `${file}: one process, twice`);
    t.equal(comparable(join(out, file)), expected, `${file}: 2 ranks`);
  }
  const csv = readFileSync(join(out, 'bbox_prompt', RESULTS_CSV), 'utf8')
    .trim()
    .split('\n');
  t.same(
    csv.slice(1).map((row) => row.split(',')[0]),
    ['test_0000', 'test_0001', 'test_0002'],
    'rows in list order',
  );

  // --skip-inference: 2 ranks re-score the 2-rank folder as one process re-scores its own.
  const rescore = [...evaluateArgs(out), '--skip-inference'];
  const rescored = await run([cli, ...rescore, '--nproc-per-node', '2']);
  t.equal(rescored.code, 0, rescored.stderr);
  const shardedFiles = new Map(files.map((file) => [file, comparable(join(out, file))]));
  rmSync(out, { recursive: true });
  renameSync(singles[1]!, out);
  const program = new Command().exitOverride();
  register(program);
  await program.parseAsync(['node', 'crackseg', ...rescore]);
  t.same(filesUnder(out), files);
  for (const file of files)
    t.equal(shardedFiles.get(file), comparable(join(out, file)), `${file}: re-scored`);
});

t.test('Ctrl-C: every rank stops, rank 0 writes the partial report, exit 130', async (t) => {
  const data = join(dir, 'data10');
  await synthesizeDataset({
    out: data,
    train: 0,
    val: 0,
    test: 10,
    width: 64,
    height: 48,
    seed: 5,
  });
  const out = join(dir, 'interrupted');
  const args = [cli, 'evaluate', 'bbox', '--model', model, '--device', 'cpu', '--data-root', data];
  const child = spawn(
    process.execPath,
    [...nodeArgs, ...args, '--output-dir', out, '--batch-size', '1', '--nproc-per-node', '2'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  let interrupted = false;
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    // Rank 0's first image is written: the launcher forwards the interrupt to both ranks.
    if (!interrupted && /\[rank 0\] 1\/5 images/.test(stderr)) interrupted = child.kill('SIGINT');
  });
  const code = await new Promise((resolve) => child.on('close', resolve));
  t.equal(code, 130, stderr);
  t.notMatch(stderr, /the other ranks were stopped/, 'no rank failed');
  const summary = JSON.parse(readFileSync(join(out, SUMMARY_JSON), 'utf8')) as {
    complete: boolean;
    counts: { evaluated: number };
  };
  t.equal(summary.complete, false);
  t.ok(
    summary.counts.evaluated >= 1 && summary.counts.evaluated < 10,
    `${summary.counts.evaluated}`,
  );
  const ids = readFileSync(join(out, RESULTS_CSV), 'utf8')
    .trim()
    .split('\n')
    .slice(1)
    .map((row) => row.split(',')[0]!);
  t.equal(ids.length, summary.counts.evaluated);
  t.same(ids, [...ids].sort(), 'rows in list order');
  for (const id of ids) t.ok(readFileSync(join(out, 'predictions', `${id}.png`)).length > 0);
});

t.test('a rank killed during evaluation fails the other, naming it', async (t) => {
  const port = await freePort();
  const started = performance.now();
  const exits = await Promise.all(
    [0, 1].map((rank) =>
      run(
        [worker, 'evaluate', model, dataRoot, join(dir, 'killed'), '1'],
        {
          ...process.env,
          RANK: String(rank),
          WORLD_SIZE: '2',
          LOCAL_RANK: String(rank),
          MASTER_ADDR: '127.0.0.1',
          MASTER_PORT: String(port),
        },
        started,
      ),
    ),
  );
  t.equal(exits[1]!.signal, 'SIGKILL', exits[1]!.stderr);
  t.equal(exits[0]!.code, 1, 'rank 0 fails');
  t.match(exits[0]!.stderr, /rank 1 \(pid \d+\) exited/, exits[0]!.stderr);
  t.match(exits[0]!.stderr, /failed on rank 0 of 2: .*\[ERR_CRACKSEG_DISTRIBUTED\]/);
  // The group's timeout is 60 s (the worker's): a dead peer is seen at once, not after it.
  const after = exits[0]!.seconds - exits[1]!.seconds;
  t.ok(after < 30, `rank 0 exited ${after.toFixed(1)} s after rank 1`);
});
