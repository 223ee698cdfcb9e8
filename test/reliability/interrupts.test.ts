// SIGINT and SIGTERM stop `train` and `evaluate` after writing what finished, with exit status
// 130 and 143 (128 + the signal's number), so that a script can tell a partial run.
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSummary } from '../../ts/report/summary.js';
import { TRAINING_FILES } from '../../ts/train/resume.js';
import { runCli, trainingFixture, type CliOutcome } from '../helpers/training-run.js';

const fixture = await trainingFixture(t, { train: 4, val: 2, test: 40 });

/** Runs the command and sends `signal` once `ready` matches its output. */
function interrupted(
  args: string[],
  signal: NodeJS.Signals,
  ready: RegExp,
): Promise<CliOutcome & { sent: boolean }> {
  let sent = false;
  return runCli(args, {
    onOutput: (stdout, stderr, child) => {
      if (!sent && ready.test(stdout + stderr)) {
        sent = true;
        child.kill(signal);
      }
    },
  }).then((outcome) => ({ ...outcome, sent }));
}

const cases = [
  { signal: 'SIGINT', code: 130 },
  { signal: 'SIGTERM', code: 143 },
] as const;

for (const { signal, code } of cases) {
  t.test(`train: ${signal} saves last and exits with ${code}`, async (t) => {
    const out = join(fixture.dir, `train-${signal}`);
    // Many epochs: the run is still going when the first one has been reported.
    const outcome = await interrupted(
      [
        'train',
        ...fixture.cliArgs,
        '--epochs',
        '200',
        '--batch-size',
        '2',
        '--gradient-accumulation-steps',
        '1',
        '--output-dir',
        out,
      ],
      signal,
      /epoch 1\/200 .*val IoU/,
    );
    t.ok(outcome.sent, 'the signal was sent');
    t.equal(outcome.signal, null, 'the process was not killed by the signal');
    t.equal(outcome.code, code, outcome.stderr);
    t.match(outcome.stdout, /stopped after \d+ optimizer steps/);
    t.match(outcome.stdout, /resume with the same flags and --resume/);
    const last = JSON.parse(readFileSync(join(out, TRAINING_FILES.lastState), 'utf8')) as {
      epoch: number;
    };
    t.ok(last.epoch >= 1, 'last.json holds the finished epochs');
    t.ok(existsSync(join(out, TRAINING_FILES.best)));
  });

  t.test(`evaluate: ${signal} writes the partial summary and exits with ${code}`, async (t) => {
    const out = join(fixture.dir, `evaluate-${signal}`);
    const outcome = await interrupted(
      ['evaluate', 'bbox', ...fixture.cliArgs, '--batch-size', '1', '--output-dir', out],
      signal,
      // A progress line: some images are done.
      /\b[1-9]\d*\/40 images/,
    );
    t.ok(outcome.sent, 'the signal was sent');
    t.equal(outcome.signal, null, 'the process was not killed by the signal');
    t.equal(outcome.code, code, outcome.stderr);
    t.match(outcome.stdout, /aborted: partial results/);
    // `evaluate bbox --output-dir` is the config's folder itself, as in the seed project.
    const summary = await readSummary(out);
    t.equal(summary.complete, false, 'the summary says it is partial');
    t.ok(
      summary.counts.evaluated > 0 && summary.counts.evaluated < 40,
      `${summary.counts.evaluated} images evaluated and summarised`,
    );
  });
}
