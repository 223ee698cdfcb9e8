// Hand-worked expectations for every metric and every empty-case convention.
import t from 'tap';
import type { BinaryMask, ProbabilityMap } from '../ts/image.js';
import {
  ALL_METRICS,
  DATASET_METRICS,
  MASK_METRICS,
  MetricAccumulator,
  THRESHOLD_GRID,
  bestF,
  confusionCounts,
  diskOffsets,
  distribution,
  fPerThreshold,
  maskMetricsFromCounts,
  metricDefinition,
  skeletonCounts,
  thresholdCounts,
  type ImageEvaluation,
  type SkeletonCounts,
} from '../ts/index.js';

/** A mask from rows of '#' (crack) and '.' (background). */
function mask(...rows: string[]): BinaryMask {
  const width = rows[0]!.length;
  const data = Uint8Array.from(rows.join('').split(''), (c) => (c === '#' ? 1 : 0));
  return { width, height: rows.length, data };
}

function probabilities(width: number, height: number, values: number[]): ProbabilityMap {
  return { width, height, data: Float32Array.from(values) };
}

const noSkeleton: SkeletonCounts = {
  predictionSkeletonPixels: 0,
  groundTruthSkeletonPixels: 0,
  predictionSkeletonMatched: 0,
  groundTruthSkeletonMatched: 0,
  predictionSkeletonInGroundTruth: 0,
  groundTruthSkeletonInPrediction: 0,
};

function closeTo(
  t: { ok(pass: boolean, message: string): unknown },
  actual: number,
  expected: number,
  message: string,
): void {
  t.ok(Math.abs(actual - expected) < 1e-12, `${message}: ${actual} ≈ ${expected}`);
}

t.test('confusion counts and pixel metrics on a 4×4 example', async (t) => {
  const prediction = mask('##..', '#...', '....', '....');
  const groundTruth = mask('##..', '....', '.#..', '....');
  const counts = confusionCounts(prediction, groundTruth);
  t.same(counts, { truePositives: 2, falsePositives: 1, falseNegatives: 1, trueNegatives: 12 });
  const m = maskMetricsFromCounts(counts, noSkeleton);
  closeTo(t, m.iou, 2 / 4, 'IoU');
  closeTo(t, m.dice, 4 / 6, 'Dice');
  closeTo(t, m.precision, 2 / 3, 'precision');
  closeTo(t, m.recall, 2 / 3, 'recall');
  closeTo(t, m.f1, 2 / 3, 'F1');
});

t.test('non-zero bytes other than 1 count as crack', async (t) => {
  const prediction: BinaryMask = { width: 2, height: 1, data: Uint8Array.from([255, 0]) };
  const groundTruth: BinaryMask = { width: 2, height: 1, data: Uint8Array.from([1, 7]) };
  t.same(confusionCounts(prediction, groundTruth), {
    truePositives: 1,
    falsePositives: 0,
    falseNegatives: 1,
    trueNegatives: 0,
  });
});

t.test('word-wise and byte-wise counting agree, aligned or not', async (t) => {
  const values = [0, 1, 255, 7, 0, 0, 128, 1, 2, 0, 0, 3, 9];
  const truth = [1, 1, 0, 9, 0, 4, 0, 1, 0, 0, 200, 3, 0];
  const expected = { truePositives: 4, falsePositives: 4, falseNegatives: 3, trueNegatives: 2 };
  const aligned = (v: number[]): BinaryMask => ({ width: 13, height: 1, data: Uint8Array.from(v) });
  const unaligned = (v: number[]): BinaryMask => ({
    width: 13,
    height: 1,
    data: Uint8Array.from([0, ...v]).subarray(1),
  });
  t.same(confusionCounts(aligned(values), aligned(truth)), expected);
  t.same(confusionCounts(unaligned(values), unaligned(truth)), expected);
  t.same(confusionCounts(aligned(values), unaligned(truth)), expected);
});

t.test('empty-case conventions', async (t) => {
  const empty = mask('...', '...');
  const some = mask('.#.', '.#.');
  const skeletonOf = (pred: BinaryMask, gt: BinaryMask) => skeletonCounts(pred, gt, pred, gt, 2);

  const both = maskMetricsFromCounts(confusionCounts(empty, empty), skeletonOf(empty, empty));
  t.same(
    both,
    { iou: 1, dice: 1, precision: 1, recall: 1, f1: 1, skeletonIou: 1, clDice: 1 },
    'both empty: perfect agreement',
  );

  const falseAlarm = maskMetricsFromCounts(confusionCounts(some, empty), skeletonOf(some, empty));
  t.same(
    falseAlarm,
    { iou: 0, dice: 0, precision: 0, recall: 0, f1: 0, skeletonIou: 0, clDice: 0 },
    'ground truth empty, prediction not: all 0 (recall 0/0 → 0)',
  );

  const missed = maskMetricsFromCounts(confusionCounts(empty, some), skeletonOf(empty, some));
  t.same(
    missed,
    { iou: 0, dice: 0, precision: 0, recall: 0, f1: 0, skeletonIou: 0, clDice: 0 },
    'prediction empty, ground truth not: all 0 (precision 0/0 → 0)',
  );

  const vanished = maskMetricsFromCounts(
    { truePositives: 4, falsePositives: 0, falseNegatives: 0, trueNegatives: 0 },
    noSkeleton,
  );
  t.equal(vanished.iou, 1);
  t.equal(vanished.skeletonIou, 0, 'skeletons vanished but masks are not empty: 0');
  t.equal(vanished.clDice, 0);
});

t.test('disk offsets: dx² + dy² ≤ r², nearest first', async (t) => {
  t.equal(diskOffsets(0).length / 2, 1);
  t.equal(diskOffsets(1).length / 2, 5);
  t.equal(diskOffsets(Math.SQRT2).length / 2, 9);
  t.equal(diskOffsets(2).length / 2, 13, 'radius 2 is 13 pixels, not OpenCV’s 5×5 ellipse (21)');
  t.same([...diskOffsets(2).subarray(0, 2)], [0, 0]);
  t.throws(() => diskOffsets(-1));
  t.throws(() => diskOffsets(Number.NaN));
});

t.test('skeleton IoU with tolerance', async (t) => {
  // Prediction skeleton: row 2, x = 1..5. Ground-truth skeleton: row 4, x = 1..3.
  const sp = mask('.......', '.......', '.#####.', '.......', '.......', '.......');
  const sg = mask('.......', '.......', '.......', '.......', '.###...', '.......');
  const full = mask('#######', '#######', '#######', '#######', '#######', '#######');

  const at2 = skeletonCounts(full, full, sp, sg, 2);
  t.equal(at2.predictionSkeletonMatched, 3, 'x = 1..3 lie straight above a GT pixel');
  t.equal(at2.groundTruthSkeletonMatched, 3);
  closeTo(t, maskMetricsFromCounts(confusionCounts(full, full), at2).skeletonIou, 6 / 10, 'r = 2');

  // r = 2.5 reaches one column further: (x - gx)² ≤ 2.25.
  const at25 = skeletonCounts(full, full, sp, sg, 2.5);
  t.equal(at25.predictionSkeletonMatched, 4);
  closeTo(
    t,
    maskMetricsFromCounts(confusionCounts(full, full), at25).skeletonIou,
    7 / 9,
    'r = 2.5',
  );

  const at1 = skeletonCounts(full, full, sp, sg, 1);
  t.equal(at1.predictionSkeletonMatched + at1.groundTruthSkeletonMatched, 0, 'r = 1: 2 rows apart');
  t.equal(maskMetricsFromCounts(confusionCounts(full, full), at1).skeletonIou, 0);

  // Radius 0 is the exact IoU of the skeletons: |∩| = 1, |∪| = 3.
  const a = mask('##.', '...');
  const b = mask('.##', '...');
  const small = mask('###', '###');
  const exact = skeletonCounts(small, small, a, b, 0);
  t.equal(exact.predictionSkeletonMatched, 1);
  closeTo(
    t,
    maskMetricsFromCounts(confusionCounts(small, small), exact).skeletonIou,
    1 / 3,
    'r = 0',
  );
});

t.test('clDice', async (t) => {
  // Ground truth: 3-pixel-thick bar, skeleton its middle row (7 px). Prediction: left 4 columns.
  const gt = mask('.......', '#######', '#######', '#######', '.......');
  const sg = mask('.......', '.......', '#######', '.......', '.......');
  const pred = mask('.......', '####...', '####...', '####...', '.......');
  const spr = mask('.......', '.......', '####...', '.......', '.......');
  const counts = skeletonCounts(pred, gt, spr, sg, 2);
  t.equal(counts.predictionSkeletonInGroundTruth, 4, '|S_P ∩ V_G|');
  t.equal(counts.groundTruthSkeletonInPrediction, 4, '|S_G ∩ V_P|');
  // Tprec = 4/4, Tsens = 4/7 → 2·(4/7) / (11/7) = 8/11.
  closeTo(t, maskMetricsFromCounts(confusionCounts(pred, gt), counts).clDice, 8 / 11, 'clDice');
});

t.test('sizes must match', async (t) => {
  t.throws(() => confusionCounts(mask('..'), mask('.', '.')), /sizes differ/);
  t.throws(() => thresholdCounts(probabilities(1, 1, [0.5]), mask('..')), /Probability map is 1×1/);
});

t.test('threshold grid: 0.01..0.99, p ≥ t compared in float64', async (t) => {
  t.equal(THRESHOLD_GRID.length, 99);
  t.equal(THRESHOLD_GRID[0], 0.01);
  t.equal(THRESHOLD_GRID[98], 0.99);
  // float32(0.29) = 0.28999999165… < 0.29 but float32(0.3) = 0.30000001192… ≥ 0.3.
  const c = thresholdCounts(probabilities(4, 1, [0.29, 0.3, 1, Number.NaN]), mask('####'));
  t.equal(c.predictedPixels[27], 3, 't = 0.28: 0.29, 0.3 and 1');
  t.equal(c.predictedPixels[28], 2, 't = 0.29: float32(0.29) falls short');
  t.equal(c.predictedPixels[29], 2, 't = 0.30: float32(0.3) reaches it');
  t.equal(c.predictedPixels[30], 1);
  t.equal(c.predictedPixels[98], 1, 'p = 1 reaches every threshold; NaN none');
  t.same([...c.predictedPixels], [...c.truePositives]);
  const outOfRange = thresholdCounts(
    probabilities(4, 1, [-0.5, 1.5, Infinity, 0.995]),
    mask('....'),
  );
  t.equal(outOfRange.predictedPixels[0], 3, 'negative reaches nothing');
  t.equal(outOfRange.predictedPixels[98], 3, '> 1, ∞ and 0.995 reach 0.99');
});

t.test('ODS and OIS on two hand-worked images', async (t) => {
  const a = thresholdCounts(probabilities(4, 1, [0.9, 0.6, 0.3, 0.1]), mask('##..'));
  const b = thresholdCounts(probabilities(4, 1, [0.8, 0.4, 0.2, 0.05]), mask('#.#.'));
  t.same(bestF(a), { f: 1, threshold: 0.31 }, 'image A: perfect for t in (0.3, 0.6]');
  const bestB = bestF(b);
  closeTo(t, bestB.f, 0.8, 'image B best F');
  t.equal(bestB.threshold, 0.06, 'lowest threshold of the tie over (0.05, 0.2]');
  closeTo(t, fPerThreshold(a)[98]!, 0, 'nothing predicted at 0.99');

  const accumulator = new MetricAccumulator();
  for (const counts of [a, b]) accumulator.add(withSweep(counts));
  const sweep = accumulator.result().sweep!;
  closeTo(t, sweep.ois, 0.9, 'OIS = (1 + 0.8) / 2');
  closeTo(t, sweep.ods.f, 6 / 7, 'ODS: pooled 3 TP of 3 predicted, 4 GT over (0.4, 0.6]');
  t.equal(sweep.ods.threshold, 0.41);
  t.equal(sweep.images, 2);
});

t.test('empty ground truth in the sweep follows the same convention', async (t) => {
  const counts = thresholdCounts(probabilities(2, 1, [0.5, 0.2]), mask('..'));
  const fs = fPerThreshold(counts);
  t.equal(fs[0], 0, 'false alarms at 0.01');
  t.equal(fs[50], 1, 'nothing predicted at 0.51 and nothing to find');
  t.same(bestF(counts), { f: 1, threshold: 0.51 });
});

t.test('accumulator: mean, population std, median, pooled from summed counts', async (t) => {
  const accumulator = new MetricAccumulator();
  t.equal(accumulator.result().metrics.iou.mean, null, 'no images: null');
  accumulator.add(evaluationOf({ truePositives: 1, falsePositives: 0, falseNegatives: 0 }));
  accumulator.add(evaluationOf({ truePositives: 1, falsePositives: 3, falseNegatives: 0 }));
  const result = accumulator.result();
  t.equal(accumulator.count, 2);
  t.same(result.metrics.iou, {
    mean: 0.625,
    std: 0.375,
    median: 0.625,
    min: 0.25,
    max: 1,
    pooled: 0.4,
  });
  t.same(result.confusion, {
    truePositives: 2,
    falsePositives: 3,
    falseNegatives: 0,
    trueNegatives: 0,
  });
  t.equal(result.sweep, null, 'no probability maps: no ODS/OIS');
});

t.test('distribution: odd and even medians', async (t) => {
  t.equal(distribution([3, 1, 2]).median, 2);
  t.equal(distribution([4, 1, 3, 2]).median, 2.5);
  t.equal(distribution([5]).std, 0);
});

t.test('metric table: unique keys and columns, used by look-ups', async (t) => {
  const keys = ALL_METRICS.map((m) => m.key);
  const columns = ALL_METRICS.map((m) => m.column);
  t.equal(new Set(keys).size, keys.length);
  t.equal(new Set(columns).size, columns.length);
  // Every metric an image is scored on has a definition, and every definition is scored.
  const m = mask('##.', '...');
  const scored = maskMetricsFromCounts(confusionCounts(m, m), skeletonCounts(m, m, m, m, 2));
  t.same(MASK_METRICS.map((d) => d.key).sort(), Object.keys(scored).sort());
  // The dataset-level metrics are the threshold sweep's two (docs/metrics.md).
  t.same(
    DATASET_METRICS.map((d) => d.key),
    ['ods', 'ois'],
  );
  t.equal(metricDefinition('clDice').label, 'clDice');
  t.throws(() => metricDefinition('nope'), /Unknown metric/);
});

function withSweep(counts: ReturnType<typeof thresholdCounts>): ImageEvaluation {
  return {
    ...evaluationOf({ truePositives: 0, falsePositives: 0, falseNegatives: 0 }),
    sweep: { counts, best: bestF(counts) },
  };
}

function evaluationOf(c: {
  truePositives: number;
  falsePositives: number;
  falseNegatives: number;
}): ImageEvaluation {
  const confusion = { ...c, trueNegatives: 0 };
  return {
    width: 1,
    height: 1,
    confusion,
    skeleton: noSkeleton,
    metrics: maskMetricsFromCounts(confusion, noSkeleton),
  };
}
