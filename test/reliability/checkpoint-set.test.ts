// A training run killed (SIGKILL) at every step of its durable writes, or failing each write with
// ENOSPC, leaves one complete `last` set that resumes to the uninterrupted run's weights, and a
// metrics.jsonl without repeats. The faults come from CRACKSEG_FAULT (ts/util/fault.ts) in a
// child process that runs epoch 2 of a run whose epoch 1 is saved: every write of a save that
// replaces a set (the best adapter, the set, the curves) is hit in turn.
import t, { type Test } from 'tap';
import { cpSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TrainOptions } from '../../ts/train/options.js';
import { train } from '../../ts/train/train.js';
import { checkSet, filesUnder, runTrainChild, trainingFixture } from '../helpers/training-run.js';

const fixture = await trainingFixture(t, { train: 4, val: 2, test: 0 });
const options = (outputDir: string): TrainOptions => ({
  model: fixture.model,
  device: 'cpu',
  dataRoot: fixture.dataRoot,
  epochs: 2,
  batchSize: 2,
  gradientAccumulation: 1,
  learningRate: 1e-3,
  logEverySteps: 1,
  outputDir,
});

const reference = join(fixture.dir, 'reference');
const referenceRun = await train(options(reference));
// Epoch 2's writes: the best adapter (when the epoch improved), the set (weights, optimizer
// state, last.json) and the curves.
const epoch2Best = referenceRun.history[1]!.best;
const epoch2Writes = (epoch2Best ? 1 : 0) + 3 + 1;
// Epoch 1 trained and saved, stopped as epoch 2 begins (before its first step).
const afterEpoch1 = join(fixture.dir, 'after-epoch-1');
const controller = new AbortController();
await train({
  ...options(afterEpoch1),
  signal: controller.signal,
  onProgress: (p) => p.phase === 'epoch' && controller.abort(),
});

/** metrics.jsonl: steps 1 to 4 and epochs 1 and 2, each once. */
function checkMetrics(t: Test, out: string) {
  const records = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as { type: string; step?: number; epoch: number });
  t.same(
    records.map((r) => (r.type === 'step' ? `step ${r.step}` : `epoch ${r.epoch}`)),
    ['step 1', 'step 2', 'epoch 1', 'step 3', 'step 4', 'epoch 2'],
    'every record once, in order',
  );
}

/** Resumes in this process; the run ends with the uninterrupted run's weights and records. */
async function resumesToReference(t: Test, out: string) {
  const result = await train({ ...options(out), resume: true });
  t.same(
    result.history.map((r) => r.epoch),
    [1, 2],
  );
  const [expected, got] = await Promise.all([checkSet(t, reference), checkSet(t, out)]);
  t.equal(got!.state.optimizerSteps, expected!.state.optimizerSteps, 'the same final step');
  let worst = 0;
  for (const [name, tensor] of expected!.weights) {
    const other = got!.weights.get(name)!.data as Float32Array;
    (tensor.data as Float32Array).forEach(
      (v, i) => (worst = Math.max(worst, Math.abs(v - other[i]!))),
    );
  }
  t.ok(worst < 1e-5, `the uninterrupted run's weights (max |diff| ${worst})`);
  checkMetrics(t, out);
  t.same(
    filesUnder(out).filter((name) => name.endsWith('.tmp')),
    [],
    'no temporary file left',
  );
}

t.test('killed at every fault point, the run resumes to the uninterrupted weights', async (t) => {
  let point = 1;
  for (; ; point++) {
    const out = join(fixture.dir, `kill-${point}`);
    cpSync(afterEpoch1, out, { recursive: true });
    const killed = await runTrainChild(
      { ...options(out), resume: true },
      { CRACKSEG_FAULT: `kill@${point}` },
    );
    if (killed.code === 0) break; // past the run's last fault point
    t.equal(killed.signal, 'SIGKILL', `point ${point}: killed`);
    t.ok(await checkSet(t, out), `point ${point}: last.json names a whole set`);
    await resumesToReference(t, out);
  }
  // Each write: its temporary file written, then renamed; and the old set's folder removed.
  t.equal(point - 1, 2 * epoch2Writes + 1, `${point - 1} fault points`);
});

t.test('each write failing with ENOSPC: an error naming the file, the set intact', async (t) => {
  let write = 1;
  for (; ; write++) {
    const out = join(fixture.dir, `enospc-${write}`);
    cpSync(afterEpoch1, out, { recursive: true });
    const failed = await runTrainChild(
      { ...options(out), resume: true },
      { CRACKSEG_FAULT: `enospc@${write}` },
    );
    if (failed.code === 0) break;
    t.equal(failed.code, 1, `write ${write}: exit status 1`);
    t.match(
      failed.stderr,
      new RegExp(`Error: cannot write ${out}/\\S+: ENOSPC: no space left on device`),
      `write ${write}: names the file`,
    );
    t.notMatch(failed.stderr, /terminate called|c10::Error/);
    t.same(
      filesUnder(out).filter((name) => name.endsWith('.tmp')),
      [],
      `write ${write}: no temporary file left`,
    );
    t.ok(await checkSet(t, out), `write ${write}: last.json names a whole set`);
    await resumesToReference(t, out);
  }
  t.equal(write - 1, epoch2Writes, `${write - 1} writes`);
});
