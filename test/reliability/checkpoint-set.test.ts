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
// The resumed run's writes: its run record (run.json, as it starts), then epoch 2's: the best
// adapter (when the epoch improved), the set (weights, optimizer state, last.json) and the curves.
const epoch2Best = referenceRun.history[1]!.best;
const epoch2Writes = 1 + (epoch2Best ? 1 : 0) + 3 + 1;
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

/**
 * Runs the child for each of `faults` on its own copy of the epoch-1 run, a few at a time, and
 * returns the copies with how their children ended.
 */
async function withFaults(name: string, faults: string[]) {
  const runs = faults.map((fault) => ({ fault, out: join(fixture.dir, `${name}-${fault}`) }));
  const outcomes: Array<Awaited<ReturnType<typeof runTrainChild>>> = [];
  for (let i = 0; i < runs.length; i += 4)
    outcomes.push(
      ...(await Promise.all(
        runs.slice(i, i + 4).map(({ fault, out }) => {
          cpSync(afterEpoch1, out, { recursive: true });
          return runTrainChild({ ...options(out), resume: true }, { CRACKSEG_FAULT: fault });
        }),
      )),
    );
  return runs.map((run, i) => ({ ...run, outcome: outcomes[i]! }));
}

t.test('killed at every fault point, the run resumes to the uninterrupted weights', async (t) => {
  // Each write: its temporary file written, then renamed; then the old set's folder removed.
  const points = 2 * epoch2Writes + 1;
  const runs = await withFaults(
    'kill',
    Array.from({ length: points + 1 }, (_, i) => `kill@${i + 1}`),
  );
  const beyond = runs.pop()!;
  t.equal(beyond.outcome.code, 0, `the run has ${points} fault points, no more`);
  for (const { fault, out, outcome } of runs) {
    t.equal(outcome.signal, 'SIGKILL', `${fault}: killed`);
    t.ok(await checkSet(t, out), `${fault}: last.json names a whole set`);
    await resumesToReference(t, out);
  }
});

t.test('each write failing with ENOSPC: an error naming the file, the set intact', async (t) => {
  const runs = await withFaults(
    'enospc',
    Array.from({ length: epoch2Writes + 1 }, (_, i) => `enospc@${i + 1}`),
  );
  const beyond = runs.pop()!;
  t.equal(beyond.outcome.code, 0, `the run has ${epoch2Writes} writes, no more`);
  for (const { fault, out, outcome } of runs) {
    t.equal(outcome.code, 1, `${fault}: exit status 1`);
    t.match(
      outcome.stderr,
      new RegExp(`Error: cannot write ${out}/\\S+: ENOSPC: no space left on device`),
      `${fault}: names the file`,
    );
    t.notMatch(outcome.stderr, /terminate called|c10::Error/);
    t.same(
      filesUnder(out).filter((name) => name.endsWith('.tmp')),
      [],
      `${fault}: no temporary file left`,
    );
    t.ok(await checkSet(t, out), `${fault}: last.json names a whole set`);
    await resumesToReference(t, out);
  }
});
