/**
 * `crackseg evaluate` flag handling without a model: the prompt plan, flags that would be ignored
 * rejected, and the list-file rule (a --test-file on the command line is relative to the current
 * directory; the default is <data-root>/test.txt).
 */
import t from 'tap';
import { Command } from 'commander';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { plan, register, type EvaluateFlags } from '../ts/cli/evaluate.js';

const flags = (extra: Partial<EvaluateFlags> = {}): EvaluateFlags => ({
  dataRoot: './crack500',
  expandRatio: 0.05,
  numVis: 20,
  batchSize: 4,
  seed: 0,
  maskRule: 'strict',
  maxPixels: 8192 * 8192,
  nnodes: 1,
  nodeRank: 0,
  distTimeout: 1800,
  ...extra,
});
const notGiven = () => false;
const given = () => true;

t.test('modes and --prompts', async (t) => {
  const bbox = plan('bbox', flags({ expandRatio: 0.1 }), given);
  t.same(bbox.prompts, [{ kind: 'bbox', expandRatio: 0.1 }]);
  t.equal(bbox.layout, 'config-folder');
  const points = plan('points', flags({ pointConfigs: [1, 3] }), notGiven);
  t.same(
    points.prompts.map((p) => p.kind === 'points' && p.count),
    [1, 3],
  );
  const mixed = plan('', flags({ prompts: 'bbox,bbox:expand=0.2,points:1' }), notGiven);
  t.same(
    mixed.prompts.filter((p) => p.kind === 'bbox').map((p) => p.kind === 'bbox' && p.expandRatio),
    [0.05, 0.2],
    'a plain bbox takes --expand-ratio, bbox:expand= keeps its own',
  );
  const withRatio = plan('', flags({ prompts: 'bbox,points:1', expandRatio: 0.3 }), given);
  t.match(withRatio.prompts[0], { kind: 'bbox', expandRatio: 0.3 });
});

t.test('flags that would be ignored are errors', async (t) => {
  t.throws(() => plan('points', flags({ expandRatio: 0.2 }), given), /--expand-ratio applies/);
  t.throws(
    () => plan(undefined, flags({ prompts: 'points:1', expandRatio: 0.2 }), given),
    /--prompts has none/,
  );
  t.throws(
    () => plan(undefined, flags({ prompts: 'bbox:expand=0.2', expandRatio: 0.3 }), given),
    /either as --expand-ratio or as bbox:expand=R/,
  );
  t.throws(
    () => plan(undefined, flags({ prompts: 'bbox', pointConfigs: [3] }), notGiven),
    /--point-configs and --per-component belong to 'points'.*points:N\[:per_component\]/,
  );
  t.throws(
    () => plan(undefined, flags({ prompts: 'bbox', perComponent: true }), notGiven),
    /belong to 'points'/,
  );
  t.throws(() => plan('bbox', flags({ pointConfigs: [1] }), notGiven), /belong to 'points'/);
  t.throws(() => plan('bbox', flags({ prompts: 'bbox' }), notGiven), /not both/);
  t.throws(() => plan(undefined, flags(), notGiven), /say what to prompt with/);
});

t.test('--test-file is relative to the current directory', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'crackseg-evaluate-cli-'));
  const cwd = process.cwd();
  t.teardown(async () => {
    process.chdir(cwd);
    await rm(dir, { recursive: true, force: true });
  });
  // lists/test.txt exists under the current directory, not under the data root.
  await mkdir(join(dir, 'data'));
  await mkdir(join(dir, 'lists'));
  await writeFile(join(dir, 'lists', 'test.txt'), 'a.jpg a.png\n');
  process.chdir(dir);
  const run = async (...args: string[]) => {
    const program = new Command().exitOverride();
    register(program);
    const errors: string[] = [];
    const original = console.error;
    console.error = (...m: unknown[]) => void errors.push(m.join(' '));
    try {
      await program.parseAsync(['node', 'crackseg', 'evaluate', ...args]);
    } finally {
      console.error = original;
    }
  };
  const common = ['bbox', '--skip-inference', '--data-root', 'data', '--output-dir', 'out'];
  // Found (relative to the cwd), so the run gets as far as looking for saved predictions.
  await t.rejects(run(...common, '--test-file', 'lists/test.txt'), /cannot read saved predictions/);
  // The default is <data-root>/test.txt, which does not exist.
  await t.rejects(run(...common), { code: 'ENOENT', path: join(dir, 'data', 'test.txt') });
  await t.rejects(run(...common, '--expand-ratio', '0.1', '--point-configs', '3'), /belong to/);
  await t.rejects(run('points', '--skip-inference', '--expand-ratio', '0.1'), /--expand-ratio/);
  // --save-probabilities takes 8 or 16, or no depth (16).
  await t.rejects(run(...common, '--save-probabilities', '12'), /expected 8 or 16/);
  for (const depth of [[], ['8']]) {
    await t.rejects(
      run(...common, '--test-file', 'lists/test.txt', '--save-probabilities', ...depth),
      /cannot read saved predictions/,
    );
  }
});
