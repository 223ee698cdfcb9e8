// On resume, metrics.jsonl keeps the records up to the checkpoint resumed from: what a killed run
// logged after its last save (and a line cut short) goes, as the resumed run logs it again.
// (test/reliability/checkpoint-set.test.ts checks the same after real kills.)
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { trimMetricsLog } from '../../ts/train/metrics-log.js';

const dir = mkdtempSync(join(tmpdir(), 'crackseg-metrics-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const step = (epoch: number, step: number) => JSON.stringify({ type: 'step', epoch, step });
const epoch = (epoch: number, steps: number) =>
  JSON.stringify({ type: 'epoch', epoch, optimizerSteps: steps });

// What a run of 30 steps an epoch, logging every 10 steps, writes up to step 80 of epoch 3.
const log = [
  step(1, 10),
  step(1, 20),
  step(1, 30),
  epoch(1, 30),
  step(2, 40),
  step(2, 50),
  step(2, 60),
  epoch(2, 60),
  step(3, 70),
  step(3, 80),
];
const lines = (records: string[]) => records.map((line) => `${line}\n`).join('');

const cases: Array<{ name: string; text: string; upTo: [number, number]; kept: string[] }> = [
  {
    name: 'killed mid-epoch 3, resumed at epoch 2, step 60: steps 70 and 80 go',
    text: lines(log),
    upTo: [2, 60],
    kept: log.slice(0, 8),
  },
  {
    name: "killed after epoch 2's record, before its save: resumed at epoch 1, step 30",
    text: lines(log.slice(0, 8)),
    upTo: [1, 30],
    kept: log.slice(0, 4),
  },
  {
    name: 'aborted at step 45 and saved there: step 50 goes, step 40 stays',
    text: lines(log.slice(0, 6)),
    upTo: [1, 45],
    kept: log.slice(0, 5),
  },
  {
    name: 'a last line cut short by the kill',
    text: `${lines(log.slice(0, 2))}{"type":"st`,
    upTo: [0, 20],
    kept: log.slice(0, 2),
  },
  {
    name: 'nothing past the checkpoint: unchanged',
    text: lines(log.slice(0, 4)),
    upTo: [1, 30],
    kept: log.slice(0, 4),
  },
];

for (const c of cases)
  t.test(c.name, async (t) => {
    const path = join(dir, 'metrics.jsonl');
    writeFileSync(path, c.text);
    await trimMetricsLog(path, { epoch: c.upTo[0], optimizerSteps: c.upTo[1] });
    t.equal(readFileSync(path, 'utf8'), lines(c.kept));
  });

t.test('no metrics.jsonl yet: nothing to do', async (t) => {
  await t.resolves(trimMetricsLog(join(dir, 'absent.jsonl'), { epoch: 1, optimizerSteps: 1 }));
});
