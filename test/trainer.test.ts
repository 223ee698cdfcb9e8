// The native trainer against a Python reference: the same micro-batches through torch.jit.load of
// the same file, the loss written from its definition, torch.optim.AdamW.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  binding,
  type PromptTensors,
  type Tensor,
  type TrainBatch,
  type TrainerOptions,
} from '../ts/binding.js';
import { exportModel } from '../ts/model/export.js';
import { TorchModule } from '../ts/torch-module.js';
import { runPython } from './helpers/python.js';

const dir = mkdtempSync(join(tmpdir(), 'crackseg-trainer-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const basePath = join(dir, 'base.pt');
const modelPath = join(dir, 'model.pt');
await exportModel({
  config: 'test',
  seed: 3,
  lora: 'A',
  rank: 4,
  alpha: 8,
  dropout: 0,
  out: basePath,
});
await runPython(new URL('./fixtures/randomize_lora.py', import.meta.url).pathname, [
  basePath,
  modelPath,
  '5',
]);

/** A deterministic micro-batch of B images (H×W) with a box around a drawn bar. */
function makeBatch(seed: number, batchSize: number, height: number, width: number): TrainBatch {
  let state = seed;
  const next = () => (state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const images = new Uint8Array(batchSize * 3 * height * width).map(() => Math.floor(next() * 256));
  const masks = new Uint8Array(batchSize * height * width);
  const coords: number[] = [];
  const imageIndex: bigint[] = [];
  for (let b = 0; b < batchSize; b++) {
    const y0 = 5 + b * 3;
    const x0 = 4 + b * 5;
    for (let y = y0; y < y0 + 4; y++)
      for (let x = x0; x < x0 + 30; x++) masks[b * height * width + y * width + x] = 1;
    // Boxes in model space: the test model is 256 px square.
    const sx = 256 / width;
    const sy = 256 / height;
    coords.push(x0 * sx, y0 * sy, (x0 + 30) * sx, (y0 + 4) * sy);
    imageIndex.push(BigInt(b));
    if (b === 0) {
      coords.push((x0 + 2) * sx, (y0 + 1) * sy, (x0 + 12) * sx, (y0 + 3) * sy); // a second box on image 0
      imageIndex.push(0n);
    }
  }
  const n = imageIndex.length;
  const prompts: PromptTensors = {
    coords: { data: Float32Array.from(coords), shape: [n, 2, 2], dtype: 'float32' },
    labels: {
      data: new Int32Array(n * 2).map((_, i) => (i % 2 === 0 ? 2 : 3)),
      shape: [n, 2],
      dtype: 'int32',
    },
    imageIndex: { data: BigInt64Array.from(imageIndex), shape: [n], dtype: 'int64' },
  };
  return {
    images: { data: images, shape: [batchSize, 3, height, width], dtype: 'uint8' },
    masks: { data: masks, shape: [batchSize, height, width], dtype: 'uint8' },
    prompts,
  };
}

function flat(tensor: Tensor): number[] {
  return Array.from(tensor.data as ArrayLike<number | bigint>, Number);
}

const options: TrainerOptions = {
  learningRate: 1e-3,
  minLearningRate: 1e-5,
  weightDecay: 0.01,
  betas: [0.9, 0.999],
  eps: 1e-8,
  warmupSteps: 2,
  totalSteps: 4,
  gradientAccumulation: 2,
  maxGradNorm: 0.05,
  diceWeight: 1,
  focalWeight: 20,
  focalAlpha: 0.25,
  focalGamma: 2,
  skeletonWeight: 0.5,
  amp: false,
  seed: 0,
};

t.test(
  'micro-batches and optimizer steps equal PyTorch (loss and LoRA weights to 1e-5)',
  async (t) => {
    const batches = Array.from({ length: 8 }, (_, i) => makeBatch(i + 1, 2, 40, 56));
    const module = await TorchModule.load(modelPath);
    t.teardown(() => module.dispose());
    module.setRequiresGrad(/.*/, false);
    const trainable = module.setRequiresGrad(/lora_/, true);
    t.ok(trainable.length > 0);
    const trainer = binding().createTrainer(module.native, options);
    const results = [];
    for (const batch of batches) results.push(await trainer.step(batch));
    t.same(
      results.map((r) => r.stepped),
      [false, true, false, true, false, true, false, true],
    );
    t.equal(trainer.optimizerSteps, 4);
    // Warm-up (k+1)/2 · 1e-3; then cosine from 1e-3 at step 2 towards 1e-5 at step 4 (= totalSteps).
    t.same(
      results.filter((r) => r.stepped).map((r) => Number(r.learningRate.toPrecision(6))),
      [5e-4, 1e-3, 1e-3, 5.05e-4],
    );

    const batchesPath = join(dir, 'batches.json');
    writeFileSync(
      batchesPath,
      JSON.stringify(
        batches.map((b) => ({
          images: flat(b.images),
          images_shape: b.images.shape,
          masks: flat(b.masks),
          masks_shape: b.masks.shape,
          coords: flat(b.prompts.coords),
          coords_shape: b.prompts.coords.shape,
          labels: flat(b.prompts.labels),
          labels_shape: b.prompts.labels.shape,
          image_index: flat(b.prompts.imageIndex),
        })),
      ),
    );
    writeFileSync(join(dir, 'options.json'), JSON.stringify(options));
    const outPath = join(dir, 'reference.json');
    await runPython(new URL('./reference/train_step_reference.py', import.meta.url).pathname, [
      modelPath,
      batchesPath,
      join(dir, 'options.json'),
      outPath,
    ]);
    const reference = JSON.parse(readFileSync(outPath, 'utf8')) as {
      steps: {
        loss: number;
        dice: number;
        focal: number;
        skeleton: number;
        learningRate: number;
      }[];
      parameters: Record<string, number[]>;
    };
    for (const [i, step] of reference.steps.entries()) {
      const mine = results[i]!;
      for (const key of ['loss', 'dice', 'focal', 'skeleton', 'learningRate'] as const) {
        t.ok(
          Math.abs(mine[key] - step[key]) <= 1e-5,
          `micro-batch ${i} ${key}: ${mine[key]} vs ${step[key]}`,
        );
      }
    }
    let worst = 0;
    for (const name of trainable) {
      const mine = flat(module.getParameter(name));
      const theirs = reference.parameters[name]!;
      t.equal(mine.length, theirs.length, `${name}: size`);
      for (let i = 0; i < mine.length; i++)
        worst = Math.max(worst, Math.abs(mine[i]! - theirs[i]!));
    }
    t.ok(worst <= 1e-5, `LoRA weights after 4 optimizer steps: max |diff| ${worst} <= 1e-5`);
  },
);

t.test('state saves and loads; bad input is rejected', async (t) => {
  const module = await TorchModule.load(modelPath);
  t.teardown(() => module.dispose());
  module.setRequiresGrad(/.*/, false);
  t.throws(
    () => binding().createTrainer(module.native, options),
    /no parameter that requires grad/,
  );
  module.setRequiresGrad(/lora_/, true);
  const trainer = binding().createTrainer(module.native, { ...options, gradientAccumulation: 1 });
  await trainer.step(makeBatch(1, 1, 24, 32));
  const statePath = join(dir, 'state.pt');
  await trainer.saveState(statePath);
  const resumed = binding().createTrainer(module.native, { ...options, gradientAccumulation: 1 });
  await resumed.loadState(statePath);
  t.equal(resumed.optimizerSteps, 1);
  await t.rejects(resumed.loadState(join(dir, 'missing.pt')), /cannot load trainer state/);

  t.throws(
    () => binding().createTrainer(module.native, { ...options, gradientAccumulation: 0 }),
    /gradientAccumulation must be an integer >= 1/,
  );
  const batch = makeBatch(1, 2, 24, 32);
  t.throws(
    () => trainer.step({ ...batch, masks: { ...batch.masks, shape: [2, 32, 24] } }),
    /must be \[B, H, W\]/,
  );
  const onlyFirst = {
    ...batch.prompts,
    imageIndex: { data: new BigInt64Array(3), shape: [3], dtype: 'int64' as const },
  };
  t.throws(
    () => trainer.step({ ...batch, prompts: onlyFirst }),
    /every image needs at least one prompt/,
  );
});

t.test('misuse is a clear error, never a crash', async (t) => {
  const module = await TorchModule.load(modelPath);
  module.setRequiresGrad(/lora_/, true);
  for (const [bad, message] of [
    [{ betas: [Number.NaN, 0.9] }, /betas\[0\] must be a number in/],
    [{ learningRate: -1 }, /learningRate must be a number in/],
    [{ eps: -1 }, /eps must be a number in/],
    [{ focalAlpha: 2 }, /focalAlpha must be a number in/],
    [{ totalSteps: 1e30 }, /totalSteps must be an integer >= 1/],
    [{ warmupSteps: 1.5 }, /warmupSteps must be an integer >= 0/],
  ] as const) {
    t.throws(
      () => binding().createTrainer(module.native, { ...options, ...bad } as TrainerOptions),
      message,
    );
  }
  const trainer = binding().createTrainer(module.native, options);
  t.throws(
    () => binding().createTrainer(trainer as never, options),
    /module must be a TorchModule/,
  );
  t.throws(() => binding().createTrainer({} as never, options), /module must be a TorchModule/);
  const batch = makeBatch(1, 1, 24, 32);
  t.throws(
    () => binding().predictMasks(trainer as never, batch.images, [batch.prompts]),
    /module must be a TorchModule/,
  );
  const wide = { ...batch.masks, data: batch.masks.data.map((v) => v * 255) };
  t.throws(() => trainer.step({ ...batch, masks: wide }), /0 and 1 only/);

  module.dispose();
  t.throws(() => trainer.step(batch), /TorchModule was disposed/);
  t.throws(() => binding().predictMasks(module.native, batch.images, [batch.prompts]), /disposed/);
  trainer.dispose();
  t.throws(() => trainer.step(batch), /trainer was disposed/);
  t.throws(() => trainer.optimizerSteps, /trainer was disposed/);
});

t.test(
  'a training step holds the module: predictions running beside it are unaffected',
  async (t) => {
    const module = await TorchModule.load(modelPath);
    t.teardown(() => module.dispose());
    module.setRequiresGrad(/lora_/, true);
    // lr 0 and dropout 0: steps leave the weights as they are, only the mode flips during a step.
    const trainer = binding().createTrainer(module.native, {
      ...options,
      learningRate: 0,
      minLearningRate: 0,
    });
    const batch = makeBatch(9, 2, 40, 56);
    const predict = () =>
      binding().predictMasks(module.native, batch.images, [batch.prompts], { lowResLogits: true });
    const [baseline] = await predict();
    const runs = [];
    for (let i = 0; i < 3; i++) runs.push(trainer.step(batch), predict());
    const results = await Promise.all(runs);
    for (const result of results.filter(Array.isArray)) {
      t.same(
        result[0]!.lowResLogits!.data,
        baseline!.lowResLogits!.data,
        'same logits as in eval mode',
      );
    }
    trainer.dispose();
  },
);

t.test('a frozen encoder: embeddings are cached by key and the loss is unchanged', async (t) => {
  const module = await TorchModule.load(modelPath); // strategy A: LoRA in the mask decoder only
  t.teardown(() => module.dispose());
  module.setRequiresGrad(/lora_/, true);
  const frozen = { ...options, learningRate: 0, minLearningRate: 0, gradientAccumulation: 1 };
  const cached = binding().createTrainer(module.native, { ...frozen, cacheLimit: 8 });
  const plain = binding().createTrainer(module.native, frozen);
  const batch = makeBatch(4, 2, 40, 56);
  const keyed = { ...batch, cacheKeys: ['a', 'b'] };
  const first = await cached.step(keyed);
  t.equal(first.cachedImages, 2);
  const again = await cached.step(keyed);
  const reference = await plain.step(batch);
  t.equal(again.loss, reference.loss, 'cached embeddings give the same loss');
  t.equal(cached.cachedImages, 2);
  const limited = binding().createTrainer(module.native, { ...frozen, cacheLimit: 1 });
  t.equal((await limited.step(keyed)).cachedImages, 1, 'no more than cacheLimit images');
  for (const trainer of [cached, plain, limited]) trainer.dispose();

  // With trainable encoder parameters (LoRA B on the trunk), nothing may be cached.
  const encoderTrained = join(dir, 'b.pt');
  await exportModel({ config: 'test', seed: 3, lora: 'B', rank: 4, alpha: 8, out: encoderTrained });
  const moduleB = await TorchModule.load(encoderTrained);
  t.teardown(() => moduleB.dispose());
  const trainerB = binding().createTrainer(moduleB.native, { ...frozen, cacheLimit: 8 });
  t.equal((await trainerB.step(keyed)).cachedImages, 0, 'a trainable encoder is never cached');
  trainerB.dispose();
});

t.test(
  'training steps and predictions alternate on one module (the executor specialises both)',
  async (t) => {
    const module = await TorchModule.load(modelPath);
    t.teardown(() => module.dispose());
    module.setRequiresGrad(/lora_/, true);
    const trainer = binding().createTrainer(module.native, { ...options, gradientAccumulation: 1 });
    const batch = makeBatch(2, 1, 40, 56);
    for (let round = 0; round < 3; round++) {
      t.ok((await trainer.step(batch)).stepped, `round ${round}: step`);
      for (let i = 0; i < 3; i++)
        await binding().predictMasks(module.native, batch.images, [batch.prompts]);
      t.pass(`round ${round}: predictions after a step`);
    }
    trainer.dispose();
  },
);
