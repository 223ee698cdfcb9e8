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

// A run of 30 steps an epoch, logging every 10 steps.
const cases: Array<{ name: string; lines: string; upTo: [number, number]; kept: string[] }> = [
  {
    name: 'killed mid-epoch 3 (steps 70, 80 logged), resumed at epoch 2, step 60',
    lines:
      [
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
      ].join('\n') + '\n',
    upTo: [2, 60],
    kept: [
      step(1, 10),
      step(1, 20),
      step(1, 30),
      epoch(1, 30),
      step(2, 40),
      step(2, 50),
      step(2, 60),
      epoch(2, 60),
    ],
  },
  {
    name: "killed after epoch 2's record, before its save: resumed at epoch 1, step 30",
    lines:
      [
        step(1, 10),
        step(1, 20),
        step(1, 30),
        epoch(1, 30),
        step(2, 40),
        step(2, 50),
        step(2, 60),
        epoch(2, 60),
      ].join('\n') + '\n',
    upTo: [1, 30],
    kept: [step(1, 10), step(1, 20), step(1, 30), epoch(1, 30)],
  },
  {
    name: 'aborted mid-epoch and saved there: resumed at epoch 1, step 45',
    lines:
      [step(1, 10), step(1, 20), step(1, 30), epoch(1, 30), step(2, 40), step(2, 50)].join('\n') +
      '\n',
    upTo: [1, 45],
    kept: [step(1, 10), step(1, 20), step(1, 30), epoch(1, 30), step(2, 40)],
  },
  {
    name: 'a last line cut short by the kill',
    lines: [step(1, 10), step(1, 20)].join('\n') + '\n{"type":"st',
    upTo: [0, 20],
    kept: [step(1, 10), step(1, 20)],
  },
  {
    name: 'nothing past the checkpoint: unchanged',
    lines: [step(1, 10), step(1, 20), step(1, 30), epoch(1, 30)].join('\n') + '\n',
    upTo: [1, 30],
    kept: [step(1, 10), step(1, 20), step(1, 30), epoch(1, 30)],
  },
];

for (const c of cases)
  t.test(c.name, async (t) => {
    const path = join(dir, 'metrics.jsonl');
    writeFileSync(path, c.lines);
    await trimMetricsLog(path, { epoch: c.upTo[0], optimizerSteps: c.upTo[1] });
    t.equal(readFileSync(path, 'utf8'), c.kept.map((line) => `${line}\n`).join(''));
  });

t.test('no metrics.jsonl yet: nothing to do', async (t) => {
  await t.resolves(trimMetricsLog(join(dir, 'absent.jsonl'), { epoch: 1, optimizerSteps: 1 }));
});
