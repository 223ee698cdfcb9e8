// The native layer under bad input and concurrency: every entry point turns bad arguments into a JS
// error of the right kind and code (never a crash), and no call waits on the JS thread for a
// training step that holds the module.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { binding, type TrainBatch, type TrainerOptions } from '../../ts/binding.js';
import { NATIVE_ERROR_CODES } from '../../ts/errors.js';
import { exportModel } from '../../ts/model/export.js';
import { TorchModule } from '../../ts/torch-module.js';
import { coded, type CodeKey } from '../helpers/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'crackseg-native-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const modelPath = join(dir, 'model.pt');
await exportModel({ config: 'test', seed: 1, lora: 'A', rank: 4, alpha: 8, out: modelPath });

const native = binding();
const u8 = (shape: number[], data = new Uint8Array(shape.reduce((a, b) => a * b, 1))) => ({
  data,
  shape,
  dtype: 'uint8' as const,
});
const f32 = (shape: number[]) => ({
  data: new Float32Array(shape.reduce((a, b) => a * b, 1)),
  shape,
  dtype: 'float32' as const,
});
const thresholds = Float64Array.of(0.25, 0.5);

t.test("the addon's codes are ts/errors.ts's", async (t) => {
  t.same(native.errorCodes, NATIVE_ERROR_CODES);
});

t.test('every plain entry point: bad arguments are a JS error with its code', async (t) => {
  const cases: Array<[string, () => unknown, CodeKey]> = [
    ['holdTensor(undefined)', () => native.holdTensor(undefined as never), 'argument'],
    ['holdTensor(short data)', () => native.holdTensor({ ...f32([3]), shape: [4] }), 'shape'],
    [
      'holdTensor(complex64)',
      () => native.holdTensor({ ...f32([1]), dtype: 'c64' as never }),
      'dtype',
    ],
    ['takeTensor("1")', () => native.takeTensor('1' as never), 'argument'],
    ['takeTensor(1.5)', () => native.takeTensor(1.5), 'range'],
    ['takeTensor(-1)', () => native.takeTensor(-1), 'range'],
    ['takeTensor(NaN)', () => native.takeTensor(Number.NaN), 'range'],
    ['takeTensor(2^60)', () => native.takeTensor(2 ** 60), 'range'],
    ['takeTensor(never issued)', () => native.takeTensor(2 ** 52), 'handle'],
    ['readTensor(0)', () => native.readTensor(0), 'range'],
    ['readTensor(never issued)', () => native.readTensor(2 ** 52), 'handle'],
    ['releaseTensors(3)', () => native.releaseTensors(3 as never), 'argument'],
    ['releaseTensors([0.5])', () => native.releaseTensors([0.5]), 'range'],
    ['thresholdHistograms()', () => (native.thresholdHistograms as () => void)(), 'argument'],
    [
      'thresholdHistograms(sizes differ)',
      () => native.thresholdHistograms(f32([2, 2]), u8([2, 3]), thresholds),
      'shape',
    ],
    [
      'thresholdHistograms(Float32Array thresholds)',
      () => native.thresholdHistograms(f32([2, 2]), u8([2, 2]), new Float32Array(2) as never),
      'argument',
    ],
    [
      'thresholdHistograms(no thresholds)',
      () => native.thresholdHistograms(f32([2, 2]), u8([2, 2]), new Float64Array(0)),
      'shape',
    ],
    [
      'thresholdHistograms(descending)',
      () => native.thresholdHistograms(f32([2, 2]), u8([2, 2]), Float64Array.of(0.5, 0.25)),
      'range',
    ],
    [
      'thresholdHistograms(a held handle never issued)',
      () => native.thresholdHistograms(2 ** 52, u8([2, 2]), thresholds),
      'handle',
    ],
    [
      'skeletonMatches(sizes differ)',
      () => native.skeletonMatches(u8([2, 2]), u8([2, 2]), u8([3, 2]), new Int32Array(2)),
      'shape',
    ],
    [
      'skeletonMatches(odd offsets)',
      () => native.skeletonMatches(u8([2, 2]), u8([2, 2]), u8([2, 2]), new Int32Array(3)),
      'argument',
    ],
    ['quantizeProbabilities(rank 1)', () => native.quantizeProbabilities(f32([2]), 8), 'shape'],
    [
      'quantizeProbabilities(bits 12)',
      () => native.quantizeProbabilities(f32([2, 2]), 12 as 8),
      'range',
    ],
    [
      'quantizeProbabilities(bits "8")',
      () => native.quantizeProbabilities(f32([2, 2]), '8' as never),
      'argument',
    ],
    [
      'zhangSuenSkeleton(undefined)',
      () => native.zhangSuenSkeleton(undefined as never),
      'argument',
    ],
    ['zhangSuenSkeleton(rank 3)', () => native.zhangSuenSkeleton(u8([2, 2, 1])), 'shape'],
    ['zhangSuenSkeleton(float32)', () => native.zhangSuenSkeleton(f32([2, 2]) as never), 'dtype'],
    ['setThreads()', () => (native.setThreads as () => void)(), 'argument'],
    ['setThreads(0)', () => native.setThreads(0), 'range'],
    ['setThreads(2.5)', () => native.setThreads(2.5), 'range'],
    ['deviceMemory(3)', () => native.deviceMemory(3 as never), 'argument'],
    ['deviceMemory("gpu")', () => native.deviceMemory('gpu'), 'range'],
    ['resetPeakDeviceMemory("cuda:x")', () => native.resetPeakDeviceMemory('cuda:x'), 'range'],
    ['predictMasks()', () => (native.predictMasks as () => void)(), 'argument'],
    ['loadModule(1)', () => native.loadModule(1 as never, 'cpu'), 'argument'],
    ['loadModule(path, "tpu")', () => native.loadModule(modelPath, 'tpu'), 'range'],
    ['createTrainer()', () => (native.createTrainer as () => void)(), 'argument'],
  ];
  for (const [name, call, code] of cases) t.throws(call, coded(code), name);
  t.equal(native.heldTensorCount(), 0, 'nothing was held by the failed calls');
});

t.test('every TorchModule method: bad arguments are a JS error with its code', async (t) => {
  const module = await native.loadModule(modelPath, 'cpu');
  t.teardown(() => module.dispose());
  const cases: Array<[string, () => unknown, CodeKey]> = [
    ['run(3)', () => module.run(3 as never, []), 'argument'],
    ['run("forward", 3)', () => module.run('forward', 3 as never), 'argument'],
    ['run("nope")', () => module.run('nope', []), 'notFound'],
    ['getParameter(5)', () => module.getParameter(5 as never), 'argument'],
    ['setParameter("w", 3)', () => module.setParameter('w', 3 as never), 'argument'],
    ['setRequiresGrad("x", true)', () => module.setRequiresGrad('x' as never, true), 'argument'],
    ['setRequiresGrad([1], true)', () => module.setRequiresGrad([1] as never, true), 'argument'],
    ['setTraining("yes")', () => module.setTraining('yes' as never), 'argument'],
    ['convertTo(5)', () => module.convertTo(5 as never), 'argument'],
    ['convertTo("int8")', () => module.convertTo('int8'), 'dtype'],
  ];
  for (const [name, call, code] of cases) t.throws(call, coded(code), name);
  // Checked in the job, once the module is free: still a coded rejection.
  await t.rejects(module.setParameter('nope', f32([1])), coded('notFound'));
  await t.rejects(module.getParameter('nope'), coded('notFound'));
  module.dispose();
  t.throws(() => module.dtype, coded('disposed'));
  t.throws(() => module.setTraining(true), coded('disposed'));
});

/** One micro-batch of `size`² images with a box each. */
function batchOf(size: number, images: number): TrainBatch {
  const masks = new Uint8Array(images * size * size);
  for (let b = 0; b < images; b++)
    for (let y = 8; y < 16; y++)
      masks.fill(1, b * size * size + y * size + 4, b * size * size + y * size + 60);
  const coords = Array.from({ length: images }, () => [16, 32, 240, 64]).flat();
  return {
    images: u8([images, size, size, 3], new Uint8Array(images * size * size * 3).fill(90)),
    masks: u8([images, size, size], masks),
    prompts: {
      coords: { data: Float32Array.from(coords), shape: [images, 2, 2], dtype: 'float32' },
      labels: {
        data: Int32Array.from({ length: 2 * images }, (_, k) => 2 + (k % 2)),
        shape: [images, 2],
        dtype: 'int32',
      },
      imageIndex: {
        data: BigInt64Array.from({ length: images }, (_, b) => BigInt(b)),
        shape: [images],
        dtype: 'int64',
      },
    },
  };
}

const trainerOptions: TrainerOptions = {
  learningRate: 1e-4,
  minLearningRate: 0,
  weightDecay: 0.01,
  betas: [0.9, 0.999],
  eps: 1e-8,
  warmupSteps: 0,
  totalSteps: 100,
  gradientAccumulation: 1,
  maxGradNorm: 1,
  diceWeight: 1,
  focalWeight: 1,
  focalAlpha: 0.25,
  focalGamma: 2,
  skeletonWeight: 0,
  precision: 'float32',
  seed: 0,
};

t.test('calls issued during a training step do not block the event loop', async (t) => {
  const module = await TorchModule.load(modelPath);
  t.teardown(() => module.dispose());
  await module.setRequiresGrad(/lora_/, true);
  const trainer = native.createTrainer(module.native, trainerOptions);
  const batch = batchOf(64, 1);
  await trainer.step(batch); // the first runs profile and optimise the graphs
  let started = performance.now();
  await trainer.step(batch);
  const stepMs = performance.now() - started;

  const name = module.parameters().find((p) => p.requiresGrad)!.name;
  const value = await module.getParameter(name);
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  const steps = [trainer.step(batch), trainer.step(batch), trainer.step(batch)];
  // Well inside the first step, which holds the module exclusively.
  await new Promise((resolve) => setTimeout(resolve, stepMs / 3));
  const calls: Array<[string, () => unknown]> = [
    ['setParameter', () => module.setParameter(name, value)],
    ['setTraining', () => module.setTraining(false)],
    ['setRequiresGrad', () => module.native.setRequiresGrad([name], true)],
    ['getParameter', () => module.getParameter(name)],
    ['parameters', () => module.parameters()],
    ['dtype', () => module.dtype],
    ['methodNames', () => module.methodNames],
    ['trainer.dispose', () => trainer.dispose()],
  ];
  const pending: unknown[] = [];
  for (const [call, run] of calls) {
    started = performance.now();
    pending.push(run());
    const callMs = performance.now() - started;
    t.ok(
      callMs < stepMs / 4,
      `${call} returned in ${callMs.toFixed(2)} ms (a step: ${stepMs.toFixed(0)} ms)`,
    );
  }
  const results = await Promise.all(steps);
  await Promise.all(pending);
  delay.disable();
  const maxDelayMs = delay.max / 1e6;
  t.ok(
    maxDelayMs < stepMs / 2,
    `event-loop delay at most ${maxDelayMs.toFixed(1)} ms while steps of ${stepMs.toFixed(0)} ms ran`,
  );
  t.equal(results.length, 3, 'the steps queued before dispose() finished');
  t.throws(() => trainer.step(batch), coded('disposed'), 'later calls are refused');
});
