// A real full disk: `crackseg train` (40 images, batch 2, 2 epochs) writing to a 400 KiB tmpfs,
// where the first checkpoint set fits and the second does not. The run ends with an error
// naming the file and ENOSPC (not an abort), leaves no temporary file, and the first set stays
// whole. Needs root (mount); skipped otherwise. Every write in turn: checkpoint-set.test.ts.
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { checkSet, filesUnder, runCli, trainingFixture } from '../helpers/training-run.js';

const exec = promisify(execFile);
const fixture = await trainingFixture(t, { train: 40, val: 2, test: 0 });
const mountPoint = join(fixture.dir, 'small-disk');
mkdirSync(mountPoint);
const mounted = await exec('mount', ['-t', 'tmpfs', '-o', 'size=400k', 'tmpfs', mountPoint]).then(
  () => true,
  (err: Error) => err.message,
);

t.test(
  'ENOSPC while saving a checkpoint',
  { skip: mounted === true ? false : `no tmpfs: ${mounted}` },
  async (t) => {
    t.teardown(() => exec('umount', [mountPoint]));
    const out = join(mountPoint, 'run');
    const outcome = await runCli([
      'train',
      ...fixture.cliArgs,
      '--epochs',
      '2',
      '--batch-size',
      '2',
      '--output-dir',
      out,
    ]);
    t.equal(outcome.signal, null);
    t.equal(outcome.code, 1, 'exit status 1');
    t.match(outcome.stderr, new RegExp(`^crackseg: cannot write ${out}/\\S+: ENOSPC`, 'm'));
    t.notMatch(outcome.stderr, /terminate called|c10::Error/);
    t.match(outcome.stdout, /epoch 1\/2/, 'the first epoch was saved');
    t.same(
      filesUnder(out).filter((name) => name.endsWith('.tmp')),
      [],
      'no temporary file left',
    );
    const set = await checkSet(t, out);
    t.equal(set?.state.generation, 1, "epoch 1's set is the one last.json names");
  },
);
