// Data-parallel training and validation over c10d with Gloo: 2 CPU processes of the `test` model
// against one process, the launcher, the sampler, a rank killed mid-epoch, resume across world
// sizes.
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { workerArguments } from '../ts/cli/distributed.js';
import { binding } from '../ts/binding.js';
import { distributedEnv } from '../ts/distributed/env.js';
import { ProcessGroup } from '../ts/distributed/group.js';
import { freePort, launchWorkers } from '../ts/distributed/launch.js';
import { shardOrder } from '../ts/distributed/sampler.js';
import { resumedBatchInEpoch } from '../ts/distributed/training.js';
import type { ListEntry } from '../ts/data/list-file.js';
import { exportModel } from '../ts/model/export.js';
import { loadModel } from '../ts/model/load.js';
import { synthesizeDataset } from '../ts/synth/synthesize.js';
import { epochBatches, shuffledOrder } from '../ts/train/batches.js';
import type { TrainOptions } from '../ts/train/options.js';
import { TRAINING_FILES } from '../ts/train/resume.js';
import { train } from '../ts/train/train.js';
import { validate } from '../ts/train/validate.js';
import { deriveSeed } from '../ts/util/random.js';
import { runPython } from './helpers/python.js';
import { trainSteps } from './fixtures/distributed-worker.js';

/** What the tests read of last.json. */
interface SavedState {
  epoch: number;
  worldSize: number;
  optimizerSteps: number;
}

const worker = fileURLToPath(new URL('./fixtures/distributed-worker.ts', import.meta.url));
const cli = fileURLToPath(new URL('../ts/cli/main.ts', import.meta.url));
// How this process runs TypeScript (tap's loader), for the processes it starts.
const nodeArgs = process.execArgv.filter((arg) => arg.includes('typescript'));

const dir = mkdtempSync(join(tmpdir(), 'crackseg-distributed-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const randomized = join(dir, 'model.pt');
const dataRoot = join(dir, 'data');
await Promise.all([
  exportModel({
    config: 'test',
    seed: 3,
    lora: 'A',
    rank: 4,
    alpha: 8,
    dropout: 0,
    out: join(dir, 'base.pt'),
  }).then(() =>
    runPython(new URL('./fixtures/randomize_lora.py', import.meta.url).pathname, [
      join(dir, 'base.pt'),
      randomized,
      '5',
    ]),
  ),
  synthesizeDataset({
    out: dataRoot,
    train: 4,
    val: 3,
    test: 0,
    width: 64,
    height: 48,
    seed: 3,
    crackFreeFraction: 0,
  }),
]);

interface Exit {
  rank: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  seconds: number;
}

/** Runs the worker fixture as ranks 0..worldSize-1 of a job on this machine. */
async function runRanks(worldSize: number, args: string[], timeoutMs = 300_000): Promise<Exit[]> {
  const port = await freePort();
  const started = performance.now();
  return Promise.all(
    Array.from({ length: worldSize }, (_, rank) => {
      const child = spawn(process.execPath, [...nodeArgs, worker, ...args], {
        env: {
          ...process.env,
          RANK: String(rank),
          WORLD_SIZE: String(worldSize),
          LOCAL_RANK: String(rank),
          MASTER_ADDR: '127.0.0.1',
          MASTER_PORT: String(port),
        },
        stdio: ['ignore', 'inherit', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      return new Promise<Exit>((resolve) =>
        child.on('close', (code, signal) => {
          clearTimeout(timer);
          resolve({ rank, code, signal, stderr, seconds: (performance.now() - started) / 1000 });
        }),
      );
    }),
  );
}

const entries = (n: number): ListEntry[] =>
  Array.from({ length: n }, (_, i) => ({
    line: i + 1,
    id: String(i),
    imagePath: `${i}.jpg`,
    maskPath: `${i}.png`,
  }));

t.test('environment: torchrun variables, or none', async (t) => {
  t.equal(distributedEnv({}), null);
  t.equal(distributedEnv({ WORLD_SIZE: '1' }), null, 'one process: no group');
  t.same(
    distributedEnv({
      WORLD_SIZE: '4',
      RANK: '3',
      LOCAL_RANK: '1',
      MASTER_ADDR: 'node0',
      MASTER_PORT: '29500',
    }),
    { rank: 3, worldSize: 4, localRank: 1, masterAddr: 'node0', masterPort: 29500 },
  );
  const base = { WORLD_SIZE: '2', RANK: '0', MASTER_ADDR: 'h', MASTER_PORT: '1' };
  t.throws(() => distributedEnv({ ...base, RANK: '2' }), /RANK must be an integer from 0 to 1/);
  t.throws(() => distributedEnv({ ...base, MASTER_PORT: 'x' }), /MASTER_PORT/);
  t.throws(() => distributedEnv({ ...base, MASTER_ADDR: '' }), /MASTER_ADDR must be set/);
  t.throws(() => distributedEnv({ ...base, RANK: undefined }), /RANK must be set/);
});

t.test('sampler: padded shares of one shuffled order, as DistributedSampler', async (t) => {
  const order = ['a', 'b', 'c', 'd', 'e'];
  t.same(shardOrder(order, { rank: 0, worldSize: 2 }), ['a', 'c', 'e']);
  t.same(shardOrder(order, { rank: 1, worldSize: 2 }), ['b', 'd', 'a'], 'padded from the start');
  t.same(shardOrder(order, { rank: 2, worldSize: 3 }), ['c', 'a']);
  t.same(shardOrder(['a'], { rank: 2, worldSize: 3 }), ['a']);
  // One process: the epoch's batches are the shuffled order cut in chunks, as before.
  const list = entries(7);
  const order7 = shuffledOrder(7, deriveSeed(5, 'order', 2));
  t.same(
    epochBatches(list, { batchSize: 3, gradientAccumulation: 1, seed: 5 }, 2),
    [order7.slice(0, 3), order7.slice(3, 6), order7.slice(6)].map((c) => c.map((k) => list[k]!)),
  );
  // The first k batches of all ranks are the first k × ranks × batch of the order.
  const plan = { batchSize: 2, gradientAccumulation: 1, seed: 5 };
  const ranks = [0, 1, 2].map((rank) =>
    epochBatches(list, { ...plan, shard: { rank, worldSize: 3 } }, 2),
  );
  t.same(
    ranks.map((r) => r.length),
    [2, 2, 2],
    'every rank the same count',
  );
  const firstBatches = ranks.flatMap((r) => r[0]!).map((e) => e.line - 1);
  t.same(firstBatches.sort(), order7.slice(0, 6).sort());
});

t.test(
  'resume: the unfinished epoch converts between world sizes when steps are whole',
  async (t) => {
    const list = entries(16);
    const plan = { batchSize: 2, gradientAccumulation: 2, seed: 1 };
    const saved = { epoch: 0, batchInEpoch: 2, worldSize: 2 };
    t.equal(
      resumedBatchInEpoch(saved, list, plan, undefined),
      4,
      '2 ranks × 2 batches = 4 batches',
    );
    t.equal(resumedBatchInEpoch({ ...saved, batchInEpoch: 4 }, list, plan, undefined), 8);
    t.equal(
      resumedBatchInEpoch({ ...saved, worldSize: 1, batchInEpoch: 4 }, list, plan, {
        rank: 1,
        worldSize: 2,
      }),
      2,
    );
    t.throws(
      () => resumedBatchInEpoch({ ...saved, worldSize: 1 }, list, plan, { rank: 0, worldSize: 2 }),
      /not whole optimizer steps of 2 rank/,
    );
    t.equal(resumedBatchInEpoch({ ...saved, batchInEpoch: 0 }, list, plan, undefined), 0);
  },
);

t.test('process group: collectives, and errors with codes', async (t) => {
  const alone = { rank: 0, worldSize: 1, localRank: 0, masterAddr: '127.0.0.1' };
  const group = await ProcessGroup.join({ ...alone, masterPort: await freePort() }, 'cpu', 20);
  t.same(await group.allreduceSum([1.5, -2]), Float64Array.from([1.5, -2]));
  t.same(await group.allgather(Uint8Array.from([7, 8, 9])), [Uint8Array.from([7, 8, 9])]);
  t.throws(() => group.native.allreduceSum([1] as unknown as Float64Array), {
    name: 'TypeError',
    code: 'ERR_CRACKSEG_ARGUMENT',
  });
  group.close();
  t.throws(() => group.rank, { code: 'ERR_CRACKSEG_DISPOSED' });
  await t.rejects(group.barrier(), { code: 'ERR_CRACKSEG_DISPOSED' });
  const options = {
    rank: 0,
    worldSize: 2,
    masterAddr: '127.0.0.1',
    masterPort: await freePort(),
    backend: 'gloo' as const,
    device: 'cpu',
    timeoutMs: 1000,
  };
  await t.rejects(binding().joinProcessGroup({ ...options, rank: 2 }), {
    name: 'RangeError',
    code: 'ERR_CRACKSEG_RANGE',
  });
  await t.rejects(binding().joinProcessGroup({ ...options, backend: 'mpi' as 'gloo' }), {
    name: 'RangeError',
    code: 'ERR_CRACKSEG_RANGE',
    message: /'gloo' or 'nccl'/,
  });
  // Rank 1 alone: nobody serves the store.
  await t.rejects(binding().joinProcessGroup({ ...options, rank: 1 }), {
    code: 'ERR_CRACKSEG_DISTRIBUTED',
    message: /rank 1 of 2 could not join the gloo process group at 127\.0\.0\.1:/,
  });
});

t.test(
  'a machine whose hostname does not resolve forms a one-machine group, without a warning',
  { skip: process.getuid?.() === 0 ? false : 'needs root for a UTS namespace (unshare)' },
  async (t) => {
    const hostname = `crackseg-unresolvable-${process.pid}`;
    const group = new URL('../ts/distributed/group.ts', import.meta.url).href;
    const script = `
      const { lookup } = await import('node:dns/promises');
      const { hostname } = await import('node:os');
      const resolves = await lookup(hostname()).then(() => true, () => false);
      const { ProcessGroup } = await import('${group}');
      const group = await ProcessGroup.join(
        { rank: 0, worldSize: 1, localRank: 0, masterAddr: '127.0.0.1',
          masterPort: ${await freePort()} }, 'cpu', 20);
      const sum = await group.allreduceSum([2.5]);
      group.close();
      console.log(JSON.stringify({ host: hostname(), resolves, sum: sum[0] }));`;
    const child = spawn(
      'unshare',
      [
        '--uts',
        'sh',
        '-c',
        `hostname ${hostname} && exec "$@"`,
        'sh',
        process.execPath,
        ...nodeArgs,
        '--input-type=module',
        '-e',
        script,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    t.equal(code, 0, stderr);
    t.same(
      JSON.parse(stdout),
      { host: hostname, resolves: false, sum: 2.5 },
      'the name resolves nowhere',
    );
    t.equal(stderr, '', 'no fallback warning from Gloo');
  },
);

t.test('launcher: worker arguments, environment, and a failing rank fails the job', async (t) => {
  t.same(
    workerArguments([
      'main.js',
      'train',
      '--nproc-per-node',
      '2',
      '--master-port=9',
      '--epochs',
      '3',
    ]),
    ['main.js', 'train', '--epochs', '3'],
  );
  const lines: string[] = [];
  const ok = await launchWorkers({
    nprocPerNode: 2,
    command: process.execPath,
    args: [
      '-e',
      'const e = process.env; console.log([e.RANK, e.WORLD_SIZE, e.LOCAL_RANK, e.MASTER_ADDR, e.MASTER_PORT > 0].join(" "))',
    ],
    write: (_, line) => lines.push(line),
  });
  t.same(ok, { exitCode: 0, failure: null });
  t.same(lines.sort(), ['0 2 0 127.0.0.1 true', '[rank 1] 1 2 1 127.0.0.1 true']);

  const started = performance.now();
  const failed = await launchWorkers({
    nprocPerNode: 3,
    command: process.execPath,
    args: [
      '-e',
      'if (process.env.RANK === "1") { console.error("boom"); process.exit(3) } setTimeout(() => {}, 60000)',
    ],
    write: () => undefined,
  });
  t.equal(failed.exitCode, 3);
  t.match(failed.failure, /^rank 1 \(pid \d+\) exited with code 3: boom$/);
  t.ok(performance.now() - started < 15_000, 'the others were stopped, not waited for');
});

t.test('gradients: 2 ranks of batch b equal one process of batch 2b', async (t) => {
  const out = join(dir, 'steps.json');
  const runs = ['1:float32', '2:float32'];
  const exits = await runRanks(2, ['steps', randomized, out, '3', '2', runs.join(',')]);
  t.same(
    exits.map((e) => [e.code, e.stderr]),
    [
      [0, ''],
      [0, ''],
    ],
  );
  const byRun = JSON.parse(readFileSync(out, 'utf8')) as Record<string, Record<string, number[]>>;
  for (const run of runs) {
    const [accumulation, precision] = run.split(':') as [string, 'float32'];
    const ranks = byRun[run]!;
    const one = await trainSteps(
      randomized,
      { steps: 3, perRankBatch: 2, gradientAccumulation: Number(accumulation), precision },
      null,
    );
    const names = Object.keys(one);
    t.same(Object.keys(ranks), names);
    let worst = 0;
    let moved = 0;
    const start = await loadModel({ path: randomized, device: 'cpu' });
    for (const name of names) {
      const initial = (await start.module.native.getParameter(name)).data as Float32Array;
      one[name]!.forEach((v, i) => {
        worst = Math.max(worst, Math.abs(v - ranks[name]![i]!));
        moved = Math.max(moved, Math.abs(v - initial[i]!));
      });
    }
    start.module.dispose();
    t.ok(moved > 5e-5, `training moved the weights (by up to ${moved})`);
    t.ok(worst < 1e-5, `${run}: weights agree to ${worst}`);
  }
});

t.test('sharded validation equals one process exactly', async (t) => {
  const out = join(dir, 'val.json');
  const exits = await runRanks(2, ['validate', randomized, dataRoot, 'val.txt', out]);
  t.same(
    exits.map((e) => e.code),
    [0, 0],
    exits.map((e) => e.stderr).join(''),
  );
  const model = await loadModel({ path: randomized, device: 'cpu' });
  const one = await validate({ model, dataRoot, listFile: 'val.txt', batchSize: 2 });
  model.module.dispose();
  t.equal(one!.images, 3);
  for (const rank of [0, 1])
    t.same(JSON.parse(readFileSync(`${out}.${rank}`, 'utf8')), one, `rank ${rank}`);
});

t.test('a rank killed mid-epoch; then resume with one process', async (t) => {
  const options: TrainOptions = {
    model: randomized,
    device: 'cpu',
    dataRoot,
    epochs: 2,
    batchSize: 1,
    gradientAccumulation: 1,
    augment: false,
    outputDir: join(dir, 'killed'),
    logEverySteps: 1,
  };
  const optionsFile = join(dir, 'train.json');
  writeFileSync(optionsFile, JSON.stringify(options));
  // Rank 1 dies in epoch 2, after epoch 1's checkpoint.
  const exits = await runRanks(2, ['train', optionsFile, '1', '2:1']);
  t.equal(exits[1]!.signal, 'SIGKILL', JSON.stringify(exits));
  t.not(exits[0]!.code, 0, 'rank 0 fails');
  t.match(
    exits[0]!.stderr,
    /rank 1 \(pid \d+\) exited.*\[ERR_CRACKSEG_DISTRIBUTED\]/,
    `naming the rank that died: ${exits[0]!.stderr}`,
  );
  // The group's timeout is 60 s (the worker's); a dead peer is seen at once, not after it.
  const after = exits[0]!.seconds - exits[1]!.seconds;
  t.ok(after < 30, `rank 0 exited ${after.toFixed(1)} s after rank 1`);

  const last = JSON.parse(
    readFileSync(join(options.outputDir!, TRAINING_FILES.lastState), 'utf8'),
  ) as SavedState;
  t.equal(last.epoch, 1);
  t.equal(last.worldSize, 2);
  t.equal(last.optimizerSteps, 2, '4 images: 2 per rank, 2 steps');
  const result = await train({ ...options, resume: true });
  t.same(
    result.history.map((r) => r.epoch),
    [1, 2],
  );
  t.equal(result.optimizerSteps, 2 + 4, 'then 4 steps in epoch 2 with one process');
  const lines = readFileSync(join(options.outputDir!, TRAINING_FILES.metrics), 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as { type: string; step?: number });
  t.same(
    lines.filter((l) => l.type === 'epoch').length,
    2,
    'metrics.jsonl: one record per epoch (rank 0 only)',
  );
});

t.test('crackseg train --nproc-per-node 2', async (t) => {
  const outputDir = join(dir, 'cli');
  const args = [
    ...nodeArgs,
    cli,
    'train',
    '--model',
    randomized,
    '--device',
    'cpu',
    '--data-root',
    dataRoot,
    '--epochs',
    '1',
    '--batch-size',
    '1',
    '--gradient-accumulation-steps',
    '1',
    '--no-augment',
    '--output-dir',
    outputDir,
    '--nproc-per-node',
    '2',
  ];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const code = await new Promise((resolve) => child.on('close', resolve));
  t.equal(code, 0, stderr);
  t.match(stdout, /global batch 2 = 1 per rank × 1 accumulated × 2 rank\(s\)/);
  t.match(stdout, /done after 2 optimizer steps/);
  t.notMatch(stdout, /\[rank 1\]/, 'rank 1 says nothing');
  const last = JSON.parse(
    readFileSync(join(outputDir, TRAINING_FILES.lastState), 'utf8'),
  ) as SavedState;
  t.equal(last.optimizerSteps, 2);
});
