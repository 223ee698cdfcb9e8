// A training run killed (SIGKILL) at every step of its durable writes, or failing each write with
// ENOSPC, always leaves one complete `last` set that resumes, and metrics.jsonl without repeats.
// The faults come from CRACKSEG_FAULT (ts/util/fault.ts) in a child `crackseg train`.
import t, { type Test } from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkSet, filesUnder, runCli, trainingFixture } from '../helpers/training-run.js';

const fixture = await trainingFixture(t, { train: 4, val: 2, test: 0 });
const trainArgs = (out: string) => [
  'train',
  '--model',
  fixture.model,
  '--data-root',
  fixture.dataRoot,
  '--device',
  'cpu',
  '--epochs',
  '2',
  '--batch-size',
  '2',
  '--gradient-accumulation-steps',
  '1',
  '--learning-rate',
  '1e-3',
  '--output-dir',
  out,
];

/** metrics.jsonl: steps strictly increasing, epochs 1 and 2 once each. */
function checkMetrics(t: Test, out: string) {
  const records = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as { type: string; step?: number; epoch: number });
  const steps = records.filter((r) => r.type === 'step').map((r) => r.step!);
  t.same(
    steps,
    [...steps].sort((a, b) => a - b),
    'steps in order',
  );
  t.equal(new Set(steps).size, steps.length, 'no step twice');
  t.same(
    records.filter((r) => r.type === 'epoch').map((r) => r.epoch),
    [1, 2],
    'each epoch once',
  );
}

const reference = join(fixture.dir, 'reference');
const uninterrupted = await runCli(trainArgs(reference));
t.equal(uninterrupted.code, 0, uninterrupted.stderr);

async function sameWeightsAsReference(t: Test, out: string) {
  const [expected, got] = await Promise.all([checkSet(t, reference), checkSet(t, out)]);
  for (const [name, tensor] of expected!.weights) {
    const other = got!.weights.get(name)!.data as Float32Array;
    const worst = Math.max(
      ...[...(tensor.data as Float32Array)].map((v, i) => Math.abs(v - other[i]!)),
    );
    if (!(worst < 1e-5)) t.fail(`${name}: max |diff| ${worst}`);
  }
  t.equal(got!.state.optimizerSteps, expected!.state.optimizerSteps, 'the same final step');
}

t.test('killed at every fault point, the run resumes to the uninterrupted weights', async (t) => {
  let point = 1;
  for (; ; point++) {
    const out = join(fixture.dir, `kill-${point}`);
    const killed = await runCli(trainArgs(out), { env: { CRACKSEG_FAULT: `kill@${point}` } });
    if (killed.code === 0) break; // past the run's last fault point
    t.equal(killed.signal, 'SIGKILL', `point ${point}: killed`);
    const set = await checkSet(t, out);
    const resumed = await runCli(set ? [...trainArgs(out), '--resume'] : trainArgs(out));
    t.equal(
      resumed.code,
      0,
      `point ${point}: ${set ? 'resumed' : 'started anew'}: ${resumed.stderr}`,
    );
    await sameWeightsAsReference(t, out);
    checkMetrics(t, out);
    t.same(
      filesUnder(out).filter((name) => name.endsWith('.tmp')),
      [],
      `point ${point}: no temporary file left`,
    );
  }
  // Two epochs: best, the set (weights, optimizer, last.json: temp and rename each), curves.
  t.ok(point > 20, `${point - 1} fault points were tried`);
});

t.test(
  'a write failing with ENOSPC: an error naming the file, the previous set intact',
  async (t) => {
    let write = 1;
    for (; ; write++) {
      const out = join(fixture.dir, `enospc-${write}`);
      const failed = await runCli(trainArgs(out), { env: { CRACKSEG_FAULT: `enospc@${write}` } });
      if (failed.code === 0) break;
      t.equal(failed.code, 1, `write ${write}: exit status 1`);
      t.match(
        failed.stderr,
        new RegExp(`crackseg: cannot write ${out}/\\S+: ENOSPC`),
        `write ${write}: names the file`,
      );
      t.notMatch(failed.stderr, /terminate called|Aborted/);
      t.same(
        filesUnder(out).filter((name) => name.endsWith('.tmp')),
        [],
        `write ${write}: no temporary file left`,
      );
      const set = await checkSet(t, out);
      if (set) {
        const resumed = await runCli([...trainArgs(out), '--resume']);
        t.equal(resumed.code, 0, `write ${write}: resumed: ${resumed.stderr}`);
        await sameWeightsAsReference(t, out);
      }
    }
    t.ok(write > 8, `${write - 1} writes were failed`);
  },
);
