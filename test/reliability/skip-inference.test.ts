// Re-scoring a folder whose evaluation was killed part-way (`skip.inference`, the CLI's
// --skip-inference) names the first missing prediction in list order, whatever the batch size
// and whichever read fails first in time.
import t from 'tap';
import { cp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { readDataset } from '../../ts/data/dataset.js';
import { evaluate } from '../../ts/evaluate/evaluate.js';
import { loadModel } from '../../ts/model/load.js';
import { parsePromptConfigs } from '../../ts/prompts/config.js';
import { predictionPath } from '../../ts/report/predictions.js';
import { trainingFixture } from '../helpers/training-run.js';

const fixture = await trainingFixture(t, { train: 0, val: 0, test: 24 });
const ids: string[] = [];
for await (const sample of readDataset({ root: fixture.dataRoot, listFile: 'test.txt' }))
  ids.push(sample.id);
const prompts = parsePromptConfigs('bbox');
const complete = join(fixture.dir, 'complete');
const model = await loadModel({ path: fixture.model, device: 'cpu' });
await evaluate({
  model,
  dataRoot: fixture.dataRoot,
  listFile: 'test.txt',
  prompts,
  outputDir: complete,
  numVis: 0,
  workers: 0,
});
model.module.dispose();

const cases = [
  { firstMissing: 16, batchSize: 4 },
  { firstMissing: 16, batchSize: 1 },
  { firstMissing: 0, batchSize: 4 },
  { firstMissing: 5, batchSize: 4 },
  { firstMissing: 22, batchSize: 8 },
];

for (const { firstMissing, batchSize } of cases)
  t.test(`predictions from #${firstMissing} on missing, batches of ${batchSize}`, async (t) => {
    const outputDir = join(fixture.dir, `killed-${firstMissing}-${batchSize}`);
    await cp(complete, outputDir, { recursive: true });
    const configDir = join(outputDir, 'bbox_prompt');
    // As a kill leaves it: the predictions of the images before `firstMissing` only.
    for (const id of ids.slice(firstMissing)) await rm(predictionPath(configDir, id));
    const expected = predictionPath(configDir, ids[firstMissing]!);
    await t.rejects(
      evaluate({
        dataRoot: fixture.dataRoot,
        listFile: 'test.txt',
        prompts,
        outputDir,
        batchSize,
        numVis: 0,
        workers: 0,
        skip: { inference: true },
      }),
      { message: `cannot read saved prediction '${expected}'` },
    );
  });
