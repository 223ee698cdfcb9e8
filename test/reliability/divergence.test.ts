// A non-finite loss or gradient never reaches the weights or a checkpoint: the optimizer step is
// skipped and counted, a few in a row stop the run with an error (exit status 1), and an epoch
// whose training loss is not finite is never best.
import t, { type Test } from 'tap';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readLastState } from '../../ts/train/last-checkpoint.js';
import { readSafetensors } from '../../ts/model/safetensors.js';
import { TRAIN_DEFAULTS } from '../../ts/train/options.js';
import { TRAINING_FILES } from '../../ts/train/resume.js';
import { train, type TrainResult } from '../../ts/train/train.js';
import { runCli, trainingFixture } from '../helpers/training-run.js';

// 6 images, batch 1, no accumulation: 6 optimizer steps an epoch.
const fixture = await trainingFixture(t, { train: 6, val: 2, test: 0 });
const stepsPerEpoch = 6;

/** Every value of the adapter at `path` is finite. */
async function allFinite(path: string): Promise<boolean> {
  const { tensors } = await readSafetensors(path);
  return [...tensors.values()].every((tensor) =>
    [...(tensor.data as Float32Array)].every(Number.isFinite),
  );
}

const cases: Array<{
  name: string;
  lr: number;
  maxNonFiniteSteps?: number;
  error?: RegExp;
  check?: (t: Test, result: TrainResult) => void;
}> = [
  {
    name: 'a sane rate: no step skipped',
    lr: 1e-3,
    check: (t, result) => {
      t.same(
        result.history.map((r) => r.skippedSteps),
        [0, 0],
      );
      t.equal(result.optimizerSteps, 2 * stepsPerEpoch);
    },
  },
  {
    // The first step moves the LoRA factors by about the rate; the next forward overflows.
    name: `a diverging rate stops after ${TRAIN_DEFAULTS.maxNonFiniteSteps} skipped steps in a row`,
    lr: 1e30,
    error: new RegExp(
      `training diverged in epoch 1: ${TRAIN_DEFAULTS.maxNonFiniteSteps} optimizer steps in a row had a non-finite loss or gradient .* those of step 1\\b`,
    ),
  },
  {
    name: 'one allowed: stops at the first',
    lr: 1e30,
    maxNonFiniteSteps: 1,
    error: /training diverged in epoch 1: 1 optimizer steps in a row/,
  },
  {
    name: 'more allowed: the run ends, the skipped steps counted, a non-finite epoch never best',
    lr: 1e30,
    maxNonFiniteSteps: 100,
    check: (t, result) => {
      t.same(
        result.history.map((r) => r.skippedSteps),
        [stepsPerEpoch - 1, stepsPerEpoch],
        'every step after the first skipped',
      );
      t.equal(result.optimizerSteps, 1);
      t.ok(Number.isFinite(result.history[0]!.trainLoss), "epoch 1's loss: its finite step");
      t.ok(Number.isNaN(result.history[1]!.trainLoss), 'epoch 2 had no finite loss');
      t.equal(result.history[1]!.best, false, 'epoch 2 is not best');
    },
  },
];

for (const c of cases)
  t.test(c.name, async (t) => {
    const outputDir = join(fixture.dir, c.name.replace(/\W+/g, '-'));
    const run = train({
      model: fixture.model,
      device: 'cpu',
      dataRoot: fixture.dataRoot,
      epochs: 2,
      batchSize: 1,
      gradientAccumulation: 1,
      learningRate: c.lr,
      augment: false,
      outputDir,
      ...(c.maxNonFiniteSteps ? { maxNonFiniteSteps: c.maxNonFiniteSteps } : {}),
    });
    if (c.error) await t.rejects(run, { message: c.error });
    else c.check!(t, await run);
    // Whatever was saved holds finite weights only.
    const best = join(outputDir, TRAINING_FILES.best);
    if (existsSync(best)) t.ok(await allFinite(best), 'best_model is finite');
    const last = await readLastState(join(outputDir, TRAINING_FILES.checkpoints));
    if (last) t.ok(await allFinite(last.files.weights), 'the last set is finite');
  });

t.test('the command exits with status 1 and says why', async (t) => {
  const outcome = await runCli([
    'train',
    ...fixture.cliArgs,
    '--epochs',
    '2',
    '--batch-size',
    '1',
    '--gradient-accumulation-steps',
    '1',
    '--learning-rate',
    '1e30',
    '--max-non-finite-steps',
    '3',
    '--output-dir',
    join(fixture.dir, 'cli'),
  ]);
  t.equal(outcome.code, 1);
  t.match(outcome.stderr, /crackseg: training diverged in epoch 1: 3 optimizer steps in a row/);
  t.notMatch(outcome.stdout, /best/);
});
