/**
 * predict(): masks equal the official predictor's post-processing done in Python on the same
 * TorchScript file (test/reference/predict_reference.py), pixel for pixel; the prompt mapping.
 */
import t from 'tap';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { binding, type Tensor } from '../ts/binding.js';
import { releaseHeld, takeHeld } from '../ts/held.js';
import { isHeld, type RgbImage } from '../ts/image.js';
import { exportModel } from '../ts/model/export.js';
import { loadModel, type SamModel } from '../ts/model/load.js';
import {
  promptTensorGroups,
  promptTensors,
  toModelCoordinate,
} from '../ts/model/prompt-tensors.js';
import {
  defaultBatchSize,
  isOutOfMemory,
  predict,
  predictBatch,
  sameSizeBatches,
  sameSizeRuns,
  splitWhileOutOfMemory,
} from '../ts/predict.js';
import { thresholdCounts } from '../ts/metrics/thresholds.js';
import type { PromptSet } from '../ts/prompts/prompts.js';
import { encodeProbabilityPng } from '../ts/report/predictions.js';
import { createRandom } from '../ts/util/random.js';
import { coded } from './helpers/errors.js';
import { runPython } from './helpers/python.js';

const referenceScript = fileURLToPath(new URL('reference/predict_reference.py', import.meta.url));

t.test('prompt tensors: mapped in float32, grouped by point count, never padded', async (t) => {
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
  // Expected values worked out in numpy float32 (x / W * 256, each step rounded to float32).
  const groups = promptTensorGroups(prompts, sizes, 256);
  t.same(
    groups.map((g) => g.points),
    [2, 3],
  );
  const [box, points] = groups;
  t.same(box!.tensors.coords.shape, [1, 2, 2]);
  t.same([...box!.tensors.coords.data], [16, 53.33333206176758, 48, 106.66666412353516]);
  t.same([...box!.tensors.labels.data], [2, 3], 'no -1 padding');
  t.same([...box!.tensors.imageIndex.data], [0n]);
  t.same(points!.tensors.coords.shape, [1, 3, 2]);
  t.same(
    [...points!.tensors.coords.data],
    [
      2.559999942779541, 10.239999771118164, 7.679999828338623, 20.479999542236328,
      12.800000190734863, 30.719999313354492,
    ],
  );
  t.same([...points!.tensors.labels.data], [1, 1, 0]);
  t.same([...points!.tensors.imageIndex.data], [2n]);
  // float32 steps, as torch does them: float32(float32(float32(0.1) / 3) * 1024) in numpy.
  t.equal(toModelCoordinate(0.1, 3, 1024), 34.13333511352539);
  t.throws(() => promptTensors(prompts, sizes, 256), /same number of points/, 'no padding');
  t.same([...promptTensors([prompts[0]!], [sizes[0]!], 256).labels.data], [2, 3]);
  t.throws(() =>
    promptTensors([{ boxes: [], points: [{ coords: [[1, 1]], labels: [] }] }], [sizes[0]!], 256),
  );
  const empty = promptTensors([{ boxes: [], points: [] }], [sizes[0]!], 256);
  t.same(empty.coords.shape, [0, 0, 2]);
  t.same(promptTensorGroups([{ boxes: [], points: [] }], [sizes[0]!], 256), []);
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

t.test('a batch that does not fit in device memory is run in halves', async (t) => {
  t.same(
    [defaultBatchSize('cpu'), defaultBatchSize('cuda'), defaultBatchSize('cuda:1')],
    [4, 32, 32],
  );
  const oom = new Error('CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.1 GiB total)');
  t.ok(isOutOfMemory(oom));
  t.notOk(isOutOfMemory(new Error('shape mismatch')));
  // A fake device that holds at most 3 items: results are [row][item] = item * 10 + row.
  const calls: Array<[number, number]> = [];
  const run = async (start: number, end: number) => {
    calls.push([start, end]);
    if (end - start > 3) throw oom;
    const items = Array.from({ length: end - start }, (_, i) => start + i);
    return [items.map((i) => i * 10), items.map((i) => i * 10 + 1)];
  };
  const halves: number[] = [];
  const rows = await splitWhileOutOfMemory(10, 8, run, (size) => halves.push(size));
  t.same(rows, [
    [0, 10, 20, 30, 40, 50, 60, 70, 80, 90],
    [1, 11, 21, 31, 41, 51, 61, 71, 81, 91],
  ]);
  t.same(calls, [
    [0, 8],
    [0, 4],
    [0, 2],
    [2, 4],
    [4, 8],
    [4, 6],
    [6, 8],
    [8, 10],
  ]);
  t.same(halves, [4, 2, 2], 'each split reports the size of its halves');
  // Other errors, and a single item that does not fit, are thrown.
  await t.rejects(
    splitWhileOutOfMemory(4, 4, async () => {
      throw new Error('bad prompt');
    }),
    /bad prompt/,
  );
  await t.rejects(
    splitWhileOutOfMemory(2, 2, async () => {
      throw oom;
    }),
    /CUDA out of memory/,
  );
  // A later run failing for good hands the earlier runs' rows to `discard`.
  const discarded: number[][][] = [];
  await t.rejects(
    splitWhileOutOfMemory(
      6,
      4,
      async (start, end) => {
        if (start >= 2) throw new Error('bad prompt');
        return run(start, end);
      },
      () => {},
      (rows) => discarded.push(rows),
    ),
    /bad prompt/,
  );
  t.same(
    discarded,
    [
      [
        [0, 10],
        [1, 11],
      ],
    ],
    'the rows of [0, 2), split off [0, 4)',
  );
});

t.test('sameSizeBatches keeps what was read before a failing item', async (t) => {
  async function* items() {
    yield { width: 1, height: 1, id: 'a' };
    yield { width: 1, height: 1, id: 'b' };
    yield { width: 1, height: 1, id: 'c' };
    throw new Error('bad item 4');
  }
  const seen: string[][] = [];
  await t.rejects(async () => {
    for await (const batch of sameSizeBatches(items(), 2, (x) => x)) {
      seen.push(batch.map((x) => x.id));
    }
  }, /bad item 4/);
  t.same(seen, [['a', 'b'], ['c']], 'the half-built batch comes out before the error');
  const sizes = [1, 1, 2, 2, 2].map((width) => ({ width, height: 3 }));
  async function* fine() {
    yield* sizes;
  }
  const batches: number[] = [];
  for await (const batch of sameSizeBatches(fine(), 2, (x) => x)) batches.push(batch.length);
  t.same(batches, [2, 2, 1]);
});

const dir = await mkdtemp(join(tmpdir(), 'crackseg-predict-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));
const modelPath = join(dir, 'model.pt');
await exportModel({ config: 'test', seed: 3, out: modelPath });

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

/** The Python reference's masks for `images` in batches [0, 1], [2], [3] (predict's batching). */
async function referenceMasks(dtype: 'float32' | 'bfloat16'): Promise<Buffer[]> {
  const batches = [[0, 1], [2], [3]].map((members) =>
    members.map((i) => ({
      width: images[i]!.width,
      height: images[i]!.height,
      image: Buffer.from(images[i]!.data).toString('base64'),
      mask: null,
      ...prompts[i]!,
    })),
  );
  const requestPath = join(dir, `request-${dtype}.json`);
  await writeFile(requestPath, JSON.stringify({ model: modelPath, dtype, batches }));
  const reference = JSON.parse(await runPython(referenceScript, [requestPath])) as Array<{
    mask: string;
  }>;
  return reference.map((r) => Buffer.from(r.mask, 'base64'));
}

t.test('predict equals the Python reference pixel for pixel', async (t) => {
  const model: SamModel = await loadModel({ path: modelPath, device: 'cpu' });
  t.teardown(() => model.module.dispose());
  t.equal(model.imageSize, 256);
  t.equal(model.precision, 'fp32', 'fp32 by default on the CPU');
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

  (await referenceMasks('float32')).forEach((expected, i) => {
    const actual = predictions[i]!.mask.data;
    const differing = actual.filter((v, k) => v !== expected[k]).length;
    t.equal(differing, 0, `image ${i}: pixels differing from the reference`);
    t.ok(expected.some((v) => v !== 0) || i === 1, `image ${i}: reference mask is not trivial`);
  });

  // An image's result does not depend on the other prompts of its batch: image 0 next to an
  // image with a 5-point group (and a 1-point group) equals image 0 next to an image with none.
  const five: PromptSet = {
    boxes: [],
    points: [
      {
        coords: [
          [10, 10],
          [20, 20],
          [30, 30],
          [40, 40],
          [50, 50],
        ],
        labels: [1, 1, 1, 1, 1],
      },
      { coords: [[60, 60]], labels: [1] },
    ],
  };
  const none: PromptSet = { boxes: [], points: [] };
  const [[withLong], [withNone]] = await Promise.all([
    predictBatch(model, [images[0]!, images[1]!], [[prompts[0]!, five]], { probabilities: true }),
    predictBatch(model, [images[0]!, images[1]!], [[prompts[0]!, none]], { probabilities: true }),
  ]);
  t.same(withLong![0]!.mask.data, withNone![0]!.mask.data, 'mask independent of the neighbour');
  const drift = withLong![0]!.probabilities!.data.reduce(
    (m, v, k) => Math.max(m, Math.abs(v - withNone![0]!.probabilities!.data[k]!)),
    0,
  );
  t.ok(drift < 1e-6, `probabilities independent of the neighbour (max difference ${drift})`);
  t.same(withLong![0]!.iouScores, withNone![0]!.iouScores);

  // Low-resolution logits on request: one S/4 × S/4 map per prompt, in prompt order.
  const [withLogits] = await predict(model, [images[2]!], [prompts[2]!], { lowResLogits: true });
  t.equal(withLogits!.lowResLogits!.length, 2);
  for (const logits of withLogits!.lowResLogits!) {
    t.same([logits.width, logits.height], [64, 64]);
    t.equal(logits.data.length, 64 * 64);
  }
  t.same(withLogits!.mask.data, predictions[2]!.mask.data);
  t.notOk(predictions[2]!.lowResLogits, 'no logits unless asked');
});

t.test('bf16 weights: masks equal the Python reference cast to bf16, close to fp32', async (t) => {
  const [bf16, fp32] = await Promise.all([
    loadModel({ path: modelPath, device: 'cpu', precision: 'bf16' }),
    loadModel({ path: modelPath, device: 'cpu', precision: 'fp32' }),
  ]);
  t.teardown(() => [bf16, fp32].forEach((m) => m.module.dispose()));
  t.equal(bf16.module.dtype, 'bfloat16', 'the weights are bf16');
  t.equal(bf16.precision, 'bf16');
  const [low, full] = await Promise.all([
    predict(bf16, images, prompts, { batchSize: 2, probabilities: true }),
    predict(fp32, images, prompts, { batchSize: 2 }),
  ]);
  (await referenceMasks('bfloat16')).forEach((expected, i) => {
    const differing = low[i]!.mask.data.filter((v, k) => v !== expected[k]).length;
    t.equal(differing, 0, `image ${i}: pixels differing from the bf16 reference`);
  });
  let agree = 0;
  let total = 0;
  low.forEach((p, i) => {
    total += p.mask.data.length;
    agree += p.mask.data.filter((v, k) => v === full[i]!.mask.data[k]).length;
    t.ok(p.probabilities!.data instanceof Float32Array, 'probabilities stay float32');
  });
  t.ok(
    agree / total >= 0.95,
    `bf16 and fp32 masks agree on ${((100 * agree) / total).toFixed(2)}%`,
  );
  await t.rejects(
    loadModel({ path: modelPath, device: 'cpu', precision: 'fp16' as never }),
    /precision must be 'fp32' or 'bf16'/,
  );
});

t.test('predictMasks names the image at fault', async (t) => {
  const model: SamModel = await loadModel({ path: modelPath, device: 'cpu' });
  t.teardown(() => model.module.dispose());
  const native = model.module.native;
  const tensor = ({ width, height, data }: RgbImage): Tensor<'uint8'> => ({
    data,
    shape: [height, width, 3],
    dtype: 'uint8',
  });
  t.throws(() => binding().predictMasks(native, [], []), coded('argument'));
  t.throws(() => binding().predictMasks(native, [tensor(images[0]!), tensor(images[3]!)], []), {
    ...coded('shape'),
    message: /images\[1\]: .*\[96, 64, 3\]/,
  });
  const grey = { data: new Uint8Array(4 * 4), shape: [4, 4], dtype: 'uint8' as const };
  t.throws(() => binding().predictMasks(native, [grey], []), {
    ...coded('shape'),
    message: /images\[0\]/,
  });
  // Read in place: the result is the same as predict()'s, which hands its images over this way.
  const [byPredict] = await predict(model, [images[0]!], [prompts[0]!]);
  const sets = await binding().predictMasks(
    native,
    [tensor(images[0]!)],
    [promptTensorGroups([prompts[0]!], [images[0]!], model.imageSize).map((g) => g.tensors)],
  );
  t.same(sets[0]!.masks[0]!.data, byPredict!.mask.data);
});

t.test('held predictions: handles taken once, equal to the arrays, released', async (t) => {
  const model: SamModel = await loadModel({ path: modelPath, device: 'cpu' });
  t.teardown(() => model.module.dispose());
  const batch = images.slice(0, 3);
  const before = binding().heldTensorCount();
  const [arrays] = await predictBatch(model, batch, [prompts.slice(0, 3)], { probabilities: true });
  const [held] = await predictBatch(model, batch, [prompts.slice(0, 3)], {
    probabilities: true,
    hold: true,
  });
  t.equal(binding().heldTensorCount() - before, 6, 'a mask and a probability map per image');
  held!.forEach((prediction, i) => {
    t.ok(isHeld(prediction.mask) && isHeld(prediction.probabilities!), `image ${i}: held`);
    t.same(prediction.iouScores, arrays![i]!.iouScores, `image ${i}: IoU scores`);
    t.same([prediction.mask.width, prediction.mask.height], [batch[i]!.width, batch[i]!.height]);
  });
  // Image 2's prompts are two groups (1 and 3 points), united natively as predict() unites them.
  for (const i of [0, 1]) {
    const mask = takeHeld(held![i]!.mask);
    t.same(mask.data, arrays![i]!.mask.data, `image ${i}: the mask`);
    t.same(takeHeld(held![i]!.probabilities!).data, arrays![i]!.probabilities!.data);
    t.throws(() => takeHeld(held![i]!.mask), coded('handle'));
  }
  // Image 2's map is swept and quantised in place, held, as its array is.
  const groundTruth = { width: 120, height: 80, data: arrays![0]!.mask.data };
  const [heldMap, map] = [held![2]!.probabilities!, arrays![2]!.probabilities!];
  t.same(thresholdCounts(heldMap, groundTruth), thresholdCounts(map, groundTruth));
  t.same(await encodeProbabilityPng(heldMap), await encodeProbabilityPng(map));
  t.same(takeHeld(held![2]!.mask).data, arrays![2]!.mask.data, 'image 2: the mask');
  t.equal(binding().heldTensorCount() - before, 1, 'what was taken is no longer held, read is');
  releaseHeld([held![2]!.mask, held![2]!.probabilities, held![0]!.mask]);
  t.equal(binding().heldTensorCount(), before, 'released, spent handles ignored');
  t.throws(() => binding().takeTensor('1' as never), coded('argument'));
  t.throws(() => binding().takeTensor(1.5), coded('range'), 'a handle is never truncated');
});
