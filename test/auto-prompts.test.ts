/**
 * Prompt-free prediction: the point grid (the official build_point_grid, by hand), the mask
 * selection (stability score, boxes, thresholds and box NMS against hand-computed cases), the
 * `auto` prompt-config grammar, and predict() with an automatic set against the plain union of the
 * prompts it kept; `--prompts auto` in evaluate writes its own folder.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { binding, type AutoMaskFilter } from '../ts/binding.js';
import { evaluate } from '../ts/evaluate/evaluate.js';
import type { RgbImage } from '../ts/image.js';
import { exportModel } from '../ts/model/export.js';
import { loadModel } from '../ts/model/load.js';
import { predict } from '../ts/predict.js';
import { autoPrompts, DEFAULT_AUTO_FILTER, pointGrid } from '../ts/prompts/auto.js';
import {
  defaultAutoConfig,
  parsePromptConfig,
  parsePromptConfigs,
  promptConfigName,
  type AutoPromptConfig,
} from '../ts/prompts/config.js';
import type { PromptSet } from '../ts/prompts/prompts.js';
import { readSummary } from '../ts/report/summary.js';
import { synthesizeDataset } from '../ts/synth/synthesize.js';
import { createRandom } from '../ts/util/random.js';

t.test('the point grid: (i + 0.5) / n, x fastest, as build_point_grid', async (t) => {
  t.same(pointGrid(1), [[0.5, 0.5]]);
  t.same(pointGrid(2), [
    [0.25, 0.25],
    [0.75, 0.25],
    [0.25, 0.75],
    [0.75, 0.75],
  ]);
  // n = 3: offset 1/6, spaced 1/3: 1/6, 1/2, 5/6.
  const three = pointGrid(3);
  t.equal(three.length, 9);
  const close = (a: number[], b: number[]) => a.every((v, i) => Math.abs(v - b[i]!) < 1e-12);
  t.ok(close(three[0]!, [1 / 6, 1 / 6]));
  t.ok(close(three[1]!, [1 / 2, 1 / 6]));
  t.ok(close(three[5]!, [5 / 6, 1 / 2]));
  t.ok(close(three[8]!, [5 / 6, 5 / 6]));
  t.throws(() => pointGrid(0), RangeError);
  t.throws(() => pointGrid(1.5), RangeError);

  // Scaled to the image: x by its width, y by its height; one positive point per prompt.
  const grid = { ...defaultAutoConfig(), pointsPerSide: 2 };
  const set = autoPrompts({ width: 200, height: 100 }, grid);
  t.same(
    set.points.map((p) => [p.coords, p.labels]),
    [
      [[[50, 25]], [1]],
      [[[150, 25]], [1]],
      [[[50, 75]], [1]],
      [[[150, 75]], [1]],
    ],
  );
  t.same(set.boxes, []);
  t.same(set.automatic, DEFAULT_AUTO_FILTER);
  t.same(autoPrompts({ width: 200, height: 100 }, { ...grid, mode: 'box' }), {
    boxes: [[0, 0, 200, 100]],
    points: [],
  });
});

t.test("the 'auto' prompt config: grammar and folder names", async (t) => {
  const defaults = parsePromptConfig('auto') as AutoPromptConfig;
  // The official SAM2AutomaticMaskGenerator's defaults.
  t.same(defaults, {
    kind: 'auto',
    mode: 'grid',
    pointsPerSide: 32,
    filter: { iouThreshold: 0.8, stabilityThreshold: 0.95, boxNmsThreshold: 0.7 },
  });
  t.equal(promptConfigName(defaults), 'auto');
  t.equal(promptConfigName(parsePromptConfig('auto:box')), 'auto_box');
  const custom = parsePromptConfig('auto:side=16:iou=0.5:nms=0.6') as AutoPromptConfig;
  t.same(custom.filter, { iouThreshold: 0.5, stabilityThreshold: 0.95, boxNmsThreshold: 0.6 });
  t.equal(promptConfigName(custom), 'auto_side16_iou0.5_nms0.6');
  t.same(parsePromptConfigs('bbox,auto').map(promptConfigName), ['bbox_prompt', 'auto']);
  t.throws(() => parsePromptConfig('auto:side=0'), /side must be an integer ≥ 1/);
  t.throws(() => parsePromptConfig('auto:iou=1.5'), /iou must be a number in \[0, 1\]/);
  t.throws(() => parsePromptConfig('auto:iou=0.5:iou=0.6'), /given twice/);
  t.throws(() => parsePromptConfig('auto:box:side=4'), /unknown option 'box'/);
  t.throws(() => parsePromptConfig('auto:grid'), /unknown option 'grid'/);
});

/** Masks as logits [N, H, W] from rows of values, for selectAutoMasks. */
function logits(masks: number[][], height: number, width: number) {
  return {
    data: Float32Array.from(masks.flat()),
    shape: [masks.length, height, width],
    dtype: 'float32' as const,
  };
}
const floats = (values: number[]) => ({
  data: Float32Array.from(values),
  shape: [values.length],
  dtype: 'float32' as const,
});
const images = (values: number[]) => ({
  data: BigInt64Array.from(values.map(BigInt)),
  shape: [values.length],
  dtype: 'int64' as const,
});
const filter = (changes: Partial<AutoMaskFilter> = {}): AutoMaskFilter => ({
  ...DEFAULT_AUTO_FILTER,
  ...changes,
});

t.test('stability scores and boxes, by hand', async (t) => {
  const masks = [
    // > 1: 2 and 3 (2 pixels); > -1: 2, 0.5, -0.5, 3, 0.2 (5 pixels): 2 / 5.
    [2, 0.5, -0.5, -2, 3, 0.2],
    // All above the offset: 6 / 6.
    [1.5, 1.5, 1.5, 1.5, 1.5, 1.5],
    // Only (row 1, column 2) > 0; > 1 none, > -1: 0.5 and -0.9: 0 / 2.
    [-3, -3, -3, -3, -0.9, 0.5],
    // Nothing above -1: 0 / 0 (NaN), an empty mask, box zeros.
    [-2, -2, -2, -2, -2, -2],
  ];
  const { stability, boxes, kept } = binding().selectAutoMasks(
    logits(masks, 2, 3),
    floats([0.9, 0.9, 0.9, 0.9]),
    images([0, 1, 2, 3]),
    filter({ stabilityThreshold: 0 }),
  );
  t.equal(stability.data[0], Math.fround(2 / 5));
  t.equal(stability.data[1], 1);
  t.equal(stability.data[2], 0);
  t.ok(Number.isNaN(stability.data[3]), '0 / 0');
  // x0, y0, x1, y1: first and last column and row with a pixel > 0, inclusive.
  t.same([...boxes.data], [0, 0, 2, 1, 0, 0, 2, 1, 2, 1, 2, 1, 0, 0, 0, 0]);
  t.same([...kept.data], [1, 1, 1, 0], 'a NaN stability fails even a threshold of 0');
  t.same(boxes.shape, [4, 4]);
});

t.test('thresholds: IoU strictly above, stability at least', async (t) => {
  const full = [1.5, 1.5, 1.5, 1.5];
  const half = [2, 2, 0.5, 0.5]; // stability 2 / 4
  const select = (iou: number[], changes: Partial<AutoMaskFilter>) => [
    ...binding().selectAutoMasks(
      logits([full, half], 2, 2),
      floats(iou),
      images([0, 1]),
      filter(changes),
    ).kept.data,
  ];
  t.same(select([0.8, 0.9], { stabilityThreshold: 0.5 }), [0, 1], 'IoU 0.8 is not above 0.8');
  t.same(select([0.81, 0.9], { stabilityThreshold: 0.5 }), [1, 1], 'stability 0.5 ≥ 0.5');
  t.same(select([0.81, 0.9], { stabilityThreshold: 0.51 }), [1, 0]);
  t.same(select([0.81, 0.9], { iouThreshold: 0.95 }), [0, 0]);
});

t.test('duplicates: greedy box NMS by predicted IoU, per image', async (t) => {
  // Rectangles on a 10 × 10 image; boxes are inclusive pixel indices, area (x1-x0)(y1-y0).
  const rect = (x0: number, y0: number, x1: number, y1: number) =>
    Array.from({ length: 100 }, (_, i) => {
      const [x, y] = [i % 10, Math.floor(i / 10)];
      return x >= x0 && x <= x1 && y >= y0 && y <= y1 ? 5 : -5;
    });
  const masks = [
    rect(0, 0, 4, 4), // A: box area 16, IoU 0.9
    rect(0, 0, 4, 3), // B: area 12, inside A: IoU 12 / 16 = 0.75 with A
    rect(2, 2, 6, 6), // C: area 16, overlap with A 2 × 2 = 4: IoU 4 / 28
    rect(0, 0, 4, 3), // D: B's box, in another image
    rect(1, 0, 4, 3), // E: area 9, inside B: IoU 9 / 12 = 0.75 with B, 9 / 16 with A
  ];
  const run = (iou: number[], boxNmsThreshold: number, image = [0, 0, 0, 1, 0]) => [
    ...binding().selectAutoMasks(logits(masks, 10, 10), floats(iou), images(image), {
      ...filter({ iouThreshold: 0, stabilityThreshold: 0 }),
      boxNmsThreshold,
    }).kept.data,
  ];
  // A first: B (0.75 > 0.7) dropped; C kept; D alone in its image; E (9/16 < 0.7 with A) kept.
  t.same(run([0.9, 0.8, 0.7, 0.6, 0.5], 0.7), [1, 0, 1, 1, 1]);
  // B first: A is 0.75 with B: dropped; E 0.75 with B: dropped.
  t.same(run([0.8, 0.9, 0.7, 0.6, 0.5], 0.7), [0, 1, 1, 1, 0]);
  // A box IoU equal to the threshold is no duplicate.
  t.same(run([0.9, 0.8, 0.7, 0.6, 0.5], 0.75), [1, 1, 1, 1, 1]);
  // In one image, D is B's duplicate.
  t.same(run([0.9, 0.8, 0.7, 0.85, 0.5], 0.7, [0, 0, 0, 0, 0]), [1, 0, 1, 0, 1]);
  // A dropped mask does not suppress others: E survives B (dropped by A) though 0.75 with it.
  t.same(run([0.9, 0.8, 0.7, 0.6, 0.5], 0.6, [0, 0, 0, 1, 0]), [1, 0, 1, 1, 1]);
});

t.test('bad filters are refused, naming the field', async (t) => {
  const args = [logits([[1]], 1, 1), floats([0.9]), images([0])] as const;
  t.throws(
    () => binding().selectAutoMasks(...args, { ...filter(), iouThreshold: 2 }),
    /filter.iouThreshold must be a number in \[0, 1\]/,
  );
  const missing: Partial<AutoMaskFilter> = filter();
  delete missing.pointsPerBatch;
  t.throws(
    () => binding().selectAutoMasks(...args, missing as AutoMaskFilter),
    /filter.pointsPerBatch/,
  );
  t.throws(
    () => binding().selectAutoMasks(args[0], floats([0.9, 0.8]), images([0]), filter()),
    /one row per mask/,
  );
});

const dir = await mkdtemp(join(tmpdir(), 'crackseg-auto-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));
const modelPath = join(dir, 'model.pt');
await exportModel({ config: 'test', seed: 3, out: modelPath });
const model = await loadModel({ path: modelPath, device: 'cpu' });
t.teardown(() => model.module.dispose());

const rng = createRandom(11);
const image = (width: number, height: number): RgbImage => ({
  width,
  height,
  data: Uint8Array.from({ length: width * height * 3 }, () => rng.int(256)),
});
const pictures = [image(96, 64), image(96, 64), image(80, 80)];
const grid = (filter: AutoPromptConfig['filter']): AutoPromptConfig => ({
  kind: 'auto',
  mode: 'grid',
  pointsPerSide: 4,
  filter,
});
/** The grid's points as plain prompts: all, or those `keep` selects. */
const plainPoints = (set: PromptSet, keep: (k: number) => boolean = () => true): PromptSet => ({
  boxes: [],
  points: set.points.filter((_, k) => keep(k)),
});

t.test('predict with an automatic set unites exactly the masks it keeps', async (t) => {
  const permissive = grid({ iouThreshold: 0, stabilityThreshold: 0, boxNmsThreshold: 1 });
  const all = await predict(model, pictures, permissive, { batchSize: 2 });
  const sets = pictures.map((p) => autoPrompts(p, permissive));
  const plain = await predict(
    model,
    pictures,
    sets.map((s) => plainPoints(s)),
    { batchSize: 2 },
  );
  for (const [i, prediction] of all.entries()) {
    t.equal(prediction.iouScores.length, 16);
    t.same(prediction.iouScores, plain[i]!.iouScores, `image ${i}: the same decoder outputs`);
    // Everything passes (an empty mask aside, whose stability is NaN): the plain union.
    t.same(prediction.mask.data, plain[i]!.mask.data, `image ${i}: permissive = plain union`);
  }

  // Thresholds amid the model's IoU predictions, so that some masks pass and some do not.
  const scores = all.flatMap((p) => p.iouScores).sort((a, b) => a - b);
  const median = scores[Math.floor(scores.length / 2)]!;
  const selective = grid({ iouThreshold: median, stabilityThreshold: 0, boxNmsThreshold: 0.7 });
  const selected = await predict(model, pictures, selective, { batchSize: 2 });
  let keptTotal = 0;
  for (const [i, prediction] of selected.entries()) {
    const kept = prediction.kept!;
    keptTotal += kept.filter(Boolean).length;
    kept.forEach((k, n) => {
      if (k) t.ok(prediction.iouScores[n]! > median, `image ${i} prompt ${n}: above the IoU bar`);
    });
    const [only] = await predict(model, [pictures[i]!], [plainPoints(sets[i]!, (k) => kept[k]!)]);
    t.same(prediction.mask.data, only!.mask.data, `image ${i}: the union of the kept prompts`);
  }
  t.ok(keptTotal > 0 && keptTotal < 48, `some kept, some not (${keptTotal} of 48)`);
  t.comment(`IoU bar ${median.toFixed(3)}: ${keptTotal} of 48 masks kept`);

  // Decoded a few prompts at a time: the same selection and masks (a chunk of one image's prompts
  // is decoded from that image's embeddings alone, one straddling two from both).
  const chunked = await predict(
    model,
    pictures,
    pictures.map((p) => ({
      ...autoPrompts(p, selective),
      automatic: { ...autoPrompts(p, selective).automatic!, pointsPerBatch: 3 },
    })),
    { batchSize: 2 },
  );
  t.same(
    chunked.map((p) => [p.kept, [...p.mask.data]]),
    selected.map((p) => [p.kept, [...p.mask.data]]),
  );

  // Nothing passes an IoU bar of 1: empty masks, nothing kept.
  const none = await predict(model, pictures, grid({ ...selective.filter, iouThreshold: 1 }));
  for (const p of none) {
    t.equal(
      p.mask.data.reduce((a, b) => a + b, 0),
      0,
    );
    t.same(p.kept, new Array(16).fill(false));
  }
});

t.test('a batch mixing automatic and plain prompt sets is refused', async (t) => {
  const auto = autoPrompts(pictures[0]!, grid(defaultAutoConfig().filter));
  await t.rejects(
    predict(model, pictures.slice(0, 2), [auto, { boxes: [[1, 1, 20, 20]], points: [] }]),
    /share one automatic selection/,
  );
});

t.test('evaluate --prompts bbox,auto: the automatic config writes its own folder', async (t) => {
  const data = join(dir, 'data');
  await synthesizeDataset({ out: data, train: 0, val: 0, test: 3, width: 96, height: 64, seed: 2 });
  const outputDir = join(dir, 'results');
  const result = await evaluate({
    model,
    dataRoot: data,
    listFile: 'test.txt',
    prompts: parsePromptConfigs('bbox,auto:side=3,auto:box'),
    outputDir,
    numVis: 0,
    workers: 1,
    loadWorkers: 1,
  });
  t.same(
    result.configs.map((c) => c.name),
    ['bbox_prompt', 'auto_side3', 'auto_box'],
  );
  const summary = await readSummary(join(outputDir, 'auto_side3'));
  t.equal(summary.counts.evaluated, 3);
  t.match(summary.metadata, { promptConfig: { kind: 'auto', pointsPerSide: 3 } });
  const csv = await readFile(join(outputDir, 'auto_side3', 'evaluation_results.csv'), 'utf8');
  const [header, ...rows] = csv.trim().split('\n');
  const column = header!.split(',').indexOf('num_prompts');
  t.same(
    rows.map((row) => row.split(',')[column]),
    ['9', '9', '9'],
    '3 × 3 grid points per image, whatever the ground truth',
  );
  t.equal((await readSummary(join(outputDir, 'auto_box'))).counts.evaluated, 3);
  // The run's record: what was evaluated, with which model (its hash), where.
  const sha256 = execFileSync('sha256sum', [modelPath], { encoding: 'utf8' }).split(' ')[0];
  t.match(summary.run, {
    command: 'evaluate',
    model: { path: modelPath, sha256 },
    loraCheckpoint: null,
    device: 'cpu',
    settings: { dataRoot: data, listFile: join(data, 'test.txt'), batchSize: 4, numVis: 0 },
  });
  t.equal((summary.run!.settings.prompts as unknown[]).length, 3);
});
