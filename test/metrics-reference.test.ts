// Metrics against an independent numpy/OpenCV/skimage implementation on generated masks.
import t from 'tap';
import { cpuMilliseconds } from './helpers/cpu-time.js';
import { fileURLToPath } from 'node:url';
import { spawn } from 'node:child_process';
import type { BinaryMask, ProbabilityMap } from '../ts/image.js';
import { findPython } from '../ts/python.js';
import {
  MASK_METRICS,
  MetricAccumulator,
  THRESHOLD_GRID,
  bestF,
  confusionCounts,
  evaluateImage,
  maskMetricsFromCounts,
  skeletonCounts,
  thresholdCounts,
  type ImageEvaluation,
} from '../ts/index.js';

const script = fileURLToPath(new URL('./reference/metrics_reference.py', import.meta.url));
const TOLERANCE = 1e-9;

interface Case {
  prediction: BinaryMask;
  groundTruth: BinaryMask;
  probabilities: ProbabilityMap;
}

interface ReferenceImage {
  skeletonPrediction: string;
  skeletonGroundTruth: string;
  counts: Record<string, number>;
  metrics: Record<string, number>;
  bestF: number;
  bestThreshold: number;
  predictedPixels: number[];
  truePositives: number[];
}

interface Reference {
  images: ReferenceImage[];
  aggregate: Record<string, Record<string, number>>;
  ods: { f: number; threshold: number };
  ois: number;
}

/** mulberry32: a small seeded generator so every run checks the same masks. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** Thick random segments (crack-like) plus a few specks. */
function crackMask(
  width: number,
  height: number,
  rand: () => number,
  segments: number,
): BinaryMask {
  const data = new Uint8Array(width * height);
  for (let s = 0; s < segments; s++) {
    const [x0, y0, x1, y1] = [rand() * width, rand() * height, rand() * width, rand() * height];
    const half = 0.5 + rand() * 3;
    const dx = x1 - x0;
    const dy = y1 - y0;
    const length2 = dx * dx + dy * dy || 1;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const along = Math.max(0, Math.min(1, ((x - x0) * dx + (y - y0) * dy) / length2));
        const ex = x - (x0 + along * dx);
        const ey = y - (y0 + along * dy);
        if (ex * ex + ey * ey <= half * half) data[y * width + x] = 1;
      }
    }
  }
  for (let k = 0; k < 4; k++) data[Math.floor(rand() * data.length)] = 1;
  return { width, height, data };
}

/** A prediction: the ground truth shifted a little, with one extra segment and some pixels dropped. */
function perturbed(gt: BinaryMask, rand: () => number): BinaryMask {
  const { width, height } = gt;
  const shiftX = Math.floor(rand() * 5) - 2;
  const shiftY = Math.floor(rand() * 5) - 2;
  const extra = crackMask(width, height, rand, 1);
  const data = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const sx = x - shiftX;
      const sy = y - shiftY;
      const shifted =
        sx >= 0 && sx < width && sy >= 0 && sy < height ? gt.data[sy * width + sx]! : 0;
      const keep = rand() > 0.05;
      data[y * width + x] = (shifted && keep) || extra.data[y * width + x] ? 1 : 0;
    }
  }
  return { width, height, data };
}

/** Probabilities high on the prediction, low elsewhere, with some values exactly on the grid. */
function probabilitiesFor(prediction: BinaryMask, rand: () => number): ProbabilityMap {
  const data = new Float32Array(prediction.data.length);
  for (let i = 0; i < data.length; i++) {
    const onGrid = rand() < 0.1;
    data[i] = onGrid
      ? THRESHOLD_GRID[Math.floor(rand() * THRESHOLD_GRID.length)]!
      : prediction.data[i]
        ? 0.3 + 0.7 * rand()
        : 0.6 * rand() ** 3;
  }
  return { width: prediction.width, height: prediction.height, data };
}

function makeCases(): Case[] {
  const rand = random(20240611);
  const cases: Case[] = [];
  for (let i = 0; i < 12; i++) {
    const width = 48 + Math.floor(rand() * 48);
    const height = 32 + Math.floor(rand() * 40);
    const groundTruth = crackMask(width, height, rand, 1 + Math.floor(rand() * 4));
    const prediction = perturbed(groundTruth, rand);
    cases.push({ prediction, groundTruth, probabilities: probabilitiesFor(prediction, rand) });
  }
  // The empty cases: both empty, ground truth empty, prediction empty.
  const blank = (): BinaryMask => ({ width: 20, height: 10, data: new Uint8Array(200) });
  const some = crackMask(20, 10, rand, 2);
  for (const [prediction, groundTruth] of [
    [blank(), blank()],
    [some, blank()],
    [blank(), some],
  ] as const) {
    cases.push({ prediction, groundTruth, probabilities: probabilitiesFor(prediction, rand) });
  }
  return cases;
}

async function reference(cases: Case[], radius: number): Promise<Reference> {
  const base64 = (a: Uint8Array | Float32Array) =>
    Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
  const request = JSON.stringify({
    radius,
    images: cases.map((c) => ({
      width: c.groundTruth.width,
      height: c.groundTruth.height,
      prediction: base64(c.prediction.data),
      groundTruth: base64(c.groundTruth.data),
      probabilities: base64(c.probabilities.data),
    })),
  });
  const { executable } = await findPython();
  const child = spawn(executable, [script], { stdio: ['pipe', 'pipe', 'inherit'] });
  const chunks: Buffer[] = [];
  child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
  const exit = new Promise<number | null>((resolve) => child.on('close', resolve));
  child.stdin.end(request);
  const code = await exit;
  if (code !== 0) throw new Error(`${script} exited with ${code}`);
  return JSON.parse(Buffer.concat(chunks).toString()) as Reference;
}

function decodeMask(text: string, like: BinaryMask): BinaryMask {
  return {
    width: like.width,
    height: like.height,
    data: new Uint8Array(Buffer.from(text, 'base64')),
  };
}

function close(t: Tap, actual: number | null, expected: number, message: string): void {
  t.ok(
    actual !== null && Math.abs(actual - expected) <= TOLERANCE,
    `${message}: ${actual} vs ${expected}`,
  );
}
type Tap = { ok(pass: boolean, message: string): unknown };

const cases = makeCases();

for (const radius of [2, 1, 3.5]) {
  t.test(`matches the Python reference, tolerance radius ${radius}`, async (t) => {
    const ref = await reference(cases, radius);
    const accumulator = new MetricAccumulator();
    cases.forEach((c, i) => {
      const expected = ref.images[i]!;
      // Skeletons from skimage drive the TypeScript counts, so tolerance matching and clDice are
      // checked independently of the thinning implementation.
      const confusion = confusionCounts(c.prediction, c.groundTruth);
      const skeleton = skeletonCounts(
        c.prediction,
        c.groundTruth,
        decodeMask(expected.skeletonPrediction, c.prediction),
        decodeMask(expected.skeletonGroundTruth, c.groundTruth),
        radius,
      );
      const fromPythonSkeletons = maskMetricsFromCounts(confusion, skeleton);
      const counts = thresholdCounts(c.probabilities, c.groundTruth);
      const manual: ImageEvaluation = {
        width: c.prediction.width,
        height: c.prediction.height,
        confusion,
        skeleton,
        metrics: fromPythonSkeletons,
        sweep: { counts, best: bestF(counts) },
      };
      // The whole pipeline, with the TypeScript Zhang–Suen skeleton.
      const evaluation = evaluateImage(c.prediction, c.groundTruth, {
        toleranceRadius: radius,
        probabilities: c.probabilities,
      });
      t.same(evaluation, manual, `image ${i}: evaluateImage agrees (same skeletons as skimage)`);
      t.same(
        [skeleton.predictionSkeletonMatched, skeleton.groundTruthSkeletonMatched],
        [expected.counts.mp, expected.counts.mg],
        `image ${i}: matched skeleton pixels`,
      );
      for (const { key } of MASK_METRICS) {
        close(t, fromPythonSkeletons[key], expected.metrics[key]!, `image ${i} ${key}`);
      }
      t.same([...counts.predictedPixels], expected.predictedPixels, `image ${i}: sweep counts`);
      t.same([...counts.truePositives], expected.truePositives, `image ${i}: sweep hits`);
      close(t, manual.sweep!.best.f, expected.bestF, `image ${i} best F`);
      t.equal(manual.sweep!.best.threshold, expected.bestThreshold, `image ${i} best threshold`);
      accumulator.add(evaluation);
    });
    const result = accumulator.result();
    for (const { key } of MASK_METRICS) {
      for (const stat of ['mean', 'std', 'median', 'min', 'max', 'pooled'] as const) {
        close(t, result.metrics[key][stat], ref.aggregate[key]![stat]!, `${stat} ${key}`);
      }
    }
    close(t, result.sweep!.ods.f, ref.ods.f, 'ODS');
    t.equal(result.sweep!.ods.threshold, ref.ods.threshold, 'ODS threshold');
    close(t, result.sweep!.ois, ref.ois, 'OIS');
  });
}

t.test('the basic counts take well under a millisecond at 640×360', async (t) => {
  const rand = random(7);
  const gt = crackMask(640, 360, rand, 3);
  const prediction = perturbed(gt, rand);
  for (let i = 0; i < 20; i++) confusionCounts(prediction, gt);
  const runs = 200;
  const perImage =
    cpuMilliseconds(() => {
      for (let i = 0; i < runs; i++) confusionCounts(prediction, gt);
    }) / runs;
  t.ok(perImage < 1, `${perImage.toFixed(3)} CPU ms per image`);
  const full = cpuMilliseconds(() =>
    evaluateImage(prediction, gt, { probabilities: probabilitiesFor(prediction, rand) }),
  );
  t.comment(`full evaluation incl. skeletons and sweep: ${full.toFixed(1)} CPU ms`);
});
