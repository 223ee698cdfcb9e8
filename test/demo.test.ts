import t from 'tap';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { demo, type DemoStage } from '../ts/demo.js';

t.test('the quick demo runs every stage and reports before and after', async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'crackseg-demo-'));
  const stages: DemoStage['stage'][] = [];
  const result = await demo({ out, quick: true, onStage: (s) => stages.push(s.stage) });
  t.same(stages, [
    'synthesize',
    'export',
    'evaluate-before',
    'train',
    'evaluate-after',
    'report',
    'done',
  ]);
  for (const path of [
    'data/train.txt',
    'model.pt',
    'before/bbox_prompt/evaluation_summary.json',
    'after/bbox_prompt/evaluation_summary.json',
    'training/checkpoints/best_model.safetensors',
    'training/metrics.jsonl',
    'training/training_curves.png',
    'report.html',
  ])
    t.ok(existsSync(join(out, path)), path);
  for (const value of [result.iouBefore, result.iouAfter])
    t.ok(value >= 0 && value <= 1, `IoU ${value} in [0, 1]`);

  const html = readFileSync(result.reportHtml, 'utf8');
  t.match(html, 'untrained (random init)');
  t.match(html, /trained \(best epoch 1\)/);
  // The after-summary records the adapter it was evaluated with.
  const after = JSON.parse(
    readFileSync(join(out, 'after/bbox_prompt/evaluation_summary.json'), 'utf8'),
  ) as {
    metadata: { loraCheckpoint: string | null };
  };
  t.equal(after.metadata.loraCheckpoint, result.training.bestModel);
});
