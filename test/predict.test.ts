/**
 * predict(): masks equal the official predictor's post-processing done in Python on the same
 * TorchScript file (test/reference/predict_reference.py), pixel for pixel; the prompt mapping.
 */
import t from 'tap';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RgbImage } from '../ts/image.js';
import { exportModel } from '../ts/model/export.js';
import { loadModel, type SamModel } from '../ts/model/load.js';
import { promptTensors, toModelCoordinate } from '../ts/model/prompt-tensors.js';
import { predict, sameSizeRuns } from '../ts/predict.js';
import type { PromptSet } from '../ts/prompts/prompts.js';
import { createRandom } from '../ts/util/random.js';
import { runPython } from './helpers/python.js';

const referenceScript = fileURLToPath(new URL('reference/predict_reference.py', import.meta.url));

t.test('promptTensors maps, pads and indexes prompts in one place', async (t) => {
  const prompts: PromptSet[] = [
    { boxes: [[10, 20, 30, 40]], points: [] },
    { boxes: [], points: [] },
    {
      boxes: [],
      points: [
        {
          coords: [
            [1, 2],
            [3, 4],
            [5, 6],
          ],
          labels: [1, 1, 0],
        },
      ],
    },
  ];
  const sizes = [
    { width: 160, height: 96 },
    { width: 160, height: 96 },
    { width: 100, height: 50 },
  ];
  const tensors = promptTensors(prompts, sizes, 256);
  t.same(tensors.coords.shape, [2, 3, 2]);
  t.same([...tensors.labels.data], [2, 3, -1, 1, 1, 0]);
  t.same([...tensors.imageIndex.data], [0n, 2n]);
  const expected = [10 / 160, 20 / 96, 30 / 160, 40 / 96, 0, 0, 1 / 100, 2 / 50, 3 / 100, 4 / 50];
  expected.forEach((v, i) => t.ok(Math.abs(tensors.coords.data[i]! - v * 256) < 1e-4));
  // float32 steps, as torch does them: 0.1 is not exact, and neither is 0.1 / 3.
  t.equal(toModelCoordinate(0.1, 3, 1024), Math.fround(Math.fround(Math.fround(0.1) / 3) * 1024));
  t.throws(() =>
    promptTensors([{ boxes: [], points: [{ coords: [[1, 1]], labels: [] }] }], [sizes[0]!], 256),
  );
  const empty = promptTensors([{ boxes: [], points: [] }], [sizes[0]!], 256);
  t.same(empty.coords.shape, [0, 0, 2]);
});

t.test('sameSizeRuns batches consecutive same-sized images', async (t) => {
  const size = (width: number) => ({ width, height: 10 });
  t.same(sameSizeRuns([size(1), size(1), size(1), size(2), size(1)], 2), [
    [0, 2],
    [2, 3],
    [3, 4],
    [4, 5],
  ]);
  t.throws(() => sameSizeRuns([], 0), RangeError);
});

t.test('predict equals the Python reference pixel for pixel', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'crackseg-predict-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const modelPath = join(dir, 'model.pt');
  await exportModel({
    config: 'test',
    seed: 3,
    out: modelPath,
  });
  const model: SamModel = await loadModel({ path: modelPath, device: 'cpu' });
  t.teardown(() => model.module.dispose());
  t.equal(model.imageSize, 256);

  // Two sizes, so the batching by size is exercised; random pixels, several prompt kinds.
  const rng = createRandom(7);
  const image = (width: number, height: number): RgbImage => ({
    width,
    height,
    data: Uint8Array.from({ length: width * height * 3 }, () => rng.int(256)),
  });
  const images = [image(120, 80), image(120, 80), image(120, 80), image(64, 96)];
  const prompts: PromptSet[] = [
    {
      boxes: [
        [10.5, 5.25, 60, 40],
        [70, 30, 119, 79.5],
      ],
      points: [],
    },
    { boxes: [], points: [] },
    {
      boxes: [],
      points: [
        { coords: [[30, 20]], labels: [1] },
        {
          coords: [
            [90, 60],
            [91, 61],
            [5, 5],
          ],
          labels: [1, 1, 0],
        },
      ],
    },
    { boxes: [[0, 0, 64, 96]], points: [] },
  ];
  const predictions = await predict(model, images, prompts, { batchSize: 2, probabilities: true });
  t.equal(predictions.length, 4);
  t.same(
    predictions.map((p) => p.iouScores.length),
    [2, 0, 2, 1],
  );
  t.ok(
    predictions[1]!.mask.data.every((v) => v === 0),
    'no prompt: empty mask',
  );
  predictions.forEach((p, i) => {
    t.equal(p.mask.width, images[i]!.width);
    t.equal(p.probabilities!.data.length, images[i]!.width * images[i]!.height);
    // The probability map and the mask agree: sigmoid(logit) > 0.5 ⇔ logit > 0.
    const disagree = p.mask.data.filter((v, k) => v !== (p.probabilities!.data[k]! > 0.5 ? 1 : 0));
    t.equal(disagree.length, 0);
  });

  // The reference sees the same batches: [0, 1], [2], [3].
  const batches = [[0, 1], [2], [3]].map((members) =>
    members.map((i) => ({
      width: images[i]!.width,
      height: images[i]!.height,
      image: Buffer.from(images[i]!.data).toString('base64'),
      mask: null,
      ...prompts[i]!,
    })),
  );
  const requestPath = join(dir, 'request.json');
  await writeFile(requestPath, JSON.stringify({ model: modelPath, batches }));
  const reference = JSON.parse(await runPython(referenceScript, [requestPath])) as Array<{
    mask: string;
  }>;
  reference.forEach((r, i) => {
    const expected = Buffer.from(r.mask, 'base64');
    const actual = predictions[i]!.mask.data;
    const differing = actual.filter((v, k) => v !== expected[k]).length;
    t.equal(differing, 0, `image ${i}: pixels differing from the reference`);
    t.ok(expected.some((v) => v !== 0) || i === 1, `image ${i}: reference mask is not trivial`);
  });
});
