import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel } from '../ts/model/load.js';
import type { RunRecord } from '../ts/run-record.js';
import { runtimeInfo } from '../ts/runtime.js';
import { readSafetensors } from '../ts/model/safetensors.js';
import { readLastState } from '../ts/train/last-checkpoint.js';
import { evaluate } from '../ts/evaluate/evaluate.js';
import { TRAINING_BOX_PROMPT } from '../ts/train/box-prompt.js';
import { validate } from '../ts/train/validate.js';
import type { TrainOptions } from '../ts/train/options.js';
import { TRAINING_FILES } from '../ts/train/resume.js';
import { train, type TrainProgress } from '../ts/train/train.js';
import { coded } from './helpers/errors.js';
import { trainingFixture } from './helpers/training-run.js';

const { dir, model, dataRoot } = await trainingFixture(t, { train: 6, val: 3, test: 0 });

const base: TrainOptions = {
  model,
  device: 'cpu',
  dataRoot,
  epochs: 2,
  batchSize: 2,
  gradientAccumulation: 1,
  learningRate: 1e-3,
  // The decoder's IoU head as an extra, to check extras are trained and saved.
  trainExtra: ['^sam_mask_decoder\\.iou_prediction_head\\.'],
  logEverySteps: 2,
};

const out = (name: string) => join(dir, name);
const file = (run: string, name: keyof typeof TRAINING_FILES) =>
  join(out(run), TRAINING_FILES[name]);

async function lastWeights(run: string) {
  const last = await readLastState(file(run, 'checkpoints'));
  return (await readSafetensors(last!.files.weights)).tensors;
}

t.test('end to end: checkpoints, metrics.jsonl, curves', async (t) => {
  const events: TrainProgress[] = [];
  const result = await train({
    ...base,
    outputDir: out('full'),
    onProgress: (e) => events.push(e),
  });
  t.equal(result.aborted, false);
  t.equal(result.history.length, 2);
  t.equal(result.optimizerSteps, 6, '3 batches of 2 images × 2 epochs');
  t.ok(result.trainedParameters.some((n) => n.endsWith('lora_A')));
  t.ok(result.trainedParameters.some((n) => n.includes('iou_prediction_head')));
  // The best epoch is the first with the highest validation IoU, and only improvements are
  // flagged best.
  const ious = result.history.map((r) => r.val.iou);
  t.equal(result.bestEpoch, ious.indexOf(Math.max(...ious)) + 1);
  t.equal(result.bestValIou, Math.max(...ious));
  t.same(
    result.history.map((r) => r.best),
    ious.map((iou, i) => i === 0 || iou > Math.max(...ious.slice(0, i))),
  );
  t.ok(
    result.history.every((r) => r.val.images === 3),
    'every validation image was scored',
  );

  const best = await readSafetensors(result.bestModel!);
  t.match(best.metadata, {
    format: 'crackseg-lora-adapter',
    lora_strategy: 'A',
    config_name: 'test',
    epoch: String(result.bestEpoch),
  });
  const valMetrics = JSON.parse(best.metadata.val_metrics!) as {
    iou: number;
    dice: number;
    f1: number;
  };
  t.equal(valMetrics.iou, result.bestValIou);
  t.same([...best.tensors.keys()].sort(), [...result.trainedParameters].sort());

  const lines = readFileSync(join(out('full'), 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map(
      (l) => JSON.parse(l) as { type: string; epoch: number; step?: number; val?: { iou: number } },
    );
  t.same(
    lines.filter((l) => l.type === 'epoch').map((l) => l.epoch),
    [1, 2],
  );
  t.same(
    lines.filter((l) => l.type === 'step').map((l) => l.step),
    [2, 4, 6],
  );
  t.same(
    lines.filter((l) => l.type === 'epoch').map((l) => l.val),
    result.history.map((r) => r.val),
    'metrics.jsonl records the validation of each epoch',
  );

  const png = readFileSync(join(out('full'), TRAINING_FILES.curves));
  t.same([...png.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47], 'training_curves.png is a PNG');
  const last = JSON.parse(readFileSync(file('full', 'lastState'), 'utf8')) as {
    epoch: number;
    optimizerSteps: number;
  };
  t.match(last, { epoch: 2, optimizerSteps: 6 });

  const trainEvents = events.filter((e) => e.phase === 'train');
  t.equal(trainEvents.length, 6);
  t.ok(
    trainEvents.every(
      (e) => e.learningRate > 0 && e.imagesPerSecond > 0 && Number.isFinite(e.loss),
    ),
  );
  t.ok(events.some((e) => e.phase === 'validate'));
  // An epoch records the learning rate of its last step, which the cosine has lowered.
  const lastOfEpoch1 = trainEvents.filter((e) => e.epoch === 1).at(-1)!;
  t.equal(result.history[0]!.learningRate, lastOfEpoch1.learningRate);
  t.ok(result.history[1]!.learningRate < result.history[0]!.learningRate);

  // The best adapter loads onto the base model through loadModel, and the weights differ from
  // the untrained model's.
  const trainedModel = await loadModel({
    path: model,
    device: 'cpu',
    loraCheckpoint: result.bestModel!,
  });
  const untrained = await loadModel({ path: model, device: 'cpu' });
  t.teardown(() => [trainedModel, untrained].forEach((m) => m.module.dispose()));
  const name = result.trainedParameters.find((n) => n.endsWith('lora_B'))!;
  t.notSame(
    [...(await trainedModel.module.getParameter(name)).data],
    [...(await untrained.module.getParameter(name)).data],
  );
});

t.test('run.json: settings, model hash, versions and device beside the checkpoints', async (t) => {
  const record = JSON.parse(readFileSync(file('full', 'run'), 'utf8')) as RunRecord;
  t.equal(file('full', 'run'), join(out('full'), 'checkpoints', 'run.json'));
  const sha256 = execFileSync('sha256sum', [model], { encoding: 'utf8' }).split(' ')[0];
  t.same(record.model, { path: model, sha256 });
  t.equal(record.command, 'train');
  t.match(record.settings, {
    dataRoot,
    epochs: 2,
    batchSize: 2,
    gradientAccumulation: 1,
    learningRate: 1e-3,
    trainExtra: base.trainExtra,
    outputDir: out('full'),
    strategy: 'A',
    resumed: false,
  });
  const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
  t.same(record.versions, {
    crackseg: version,
    libtorch: runtimeInfo().torchVersion,
    libtorchFlavour: runtimeInfo().flavour,
    node: process.version,
  });
  t.equal(record.device, 'cpu');
  t.equal(record.loraCheckpoint, null);
});

t.test("validation's means are evaluation's bbox means", async (t) => {
  const loaded = await loadModel({ path: model, device: 'cpu' });
  t.teardown(() => loaded.module.dispose());
  const batches: number[] = [];
  // 3 images in batches of 2: one batch is scored while the next is on the device.
  const val = await validate({
    model: loaded,
    dataRoot,
    listFile: 'val.txt',
    batchSize: 2,
    onBatch: (done) => batches.push(done),
  });
  t.same(batches, [2, 3]);
  const evaluation = await evaluate({
    model: loaded,
    dataRoot,
    listFile: 'val.txt',
    prompts: [TRAINING_BOX_PROMPT],
    outputDir: out('val-evaluation'),
    numVis: 0,
    batchSize: 2,
  });
  const { metrics } = evaluation.configs[0]!.summary!;
  t.ok(metrics.iou.min! < metrics.iou.max!, 'the images score differently');
  t.same(val, {
    iou: metrics.iou.mean,
    dice: metrics.dice.mean,
    f1: metrics.f1.mean,
    images: 3,
  });
});

t.test('abort saves last and resolves; resume continues to the same weights', async (t) => {
  const controller = new AbortController();
  const first: TrainProgress[] = [];
  const aborted = await train({
    ...base,
    outputDir: out('resumed'),
    signal: controller.signal,
    onProgress: (e) => {
      first.push(e);
      if (e.phase === 'train' && e.epoch === 1 && e.batch === 1) controller.abort();
    },
  });
  t.equal(aborted.aborted, true);
  // Batch 2 was queued behind batch 1 when its progress came: it finished, no later one started.
  t.equal(aborted.optimizerSteps, 2, 'the step in flight finished, no later one started');
  t.equal(aborted.history.length, 0);
  t.equal(aborted.bestModel, null);
  const last = JSON.parse(readFileSync(file('resumed', 'lastState'), 'utf8')) as {
    epoch: number;
    batchInEpoch: number;
    optimizerSteps: number;
  };
  t.match(last, { epoch: 0, batchInEpoch: 2, optimizerSteps: 2 });

  const second: TrainProgress[] = [];
  const resumed = await train({
    ...base,
    outputDir: out('resumed'),
    resume: true,
    onProgress: (e) => second.push(e),
  });
  const firstTrain = second.find((e) => e.phase === 'train');
  t.match(firstTrain, { epoch: 1, batch: 3, optimizerSteps: 3 }, 'continues with the third batch');
  t.equal(resumed.optimizerSteps, 6);
  t.same(
    resumed.history.map((r) => r.epoch),
    [1, 2],
  );

  // Same data order, augmentation and optimizer state: the weights match an uninterrupted run.
  const [full, again] = await Promise.all([lastWeights('full'), lastWeights('resumed')]);
  for (const [name, tensor] of full) {
    const other = again.get(name)!.data as Float32Array;
    const worst = Math.max(
      ...[...(tensor.data as Float32Array)].map((v, i) => Math.abs(v - other[i]!)),
    );
    t.ok(worst < 1e-5, `${name}: max |diff| ${worst}`);
  }

  await t.rejects(train({ ...base, outputDir: out('resumed'), resume: true, batchSize: 3 }), {
    message: /cannot resume from .*last\.json: batchSize was 2, now 3/,
  });
  await t.rejects(train({ ...base, outputDir: out('nothing-here'), resume: true }), {
    message: /cannot resume: .*last\.json/,
  });
});

t.test(
  'bf16 with fp32 masters: adapters keep fp32, a resume restores the exact state',
  async (t) => {
    const bf16 = { ...base, epochs: 1, precision: 'bf16' as const };
    // Loss by 1-based batch number.
    const losses = (into: Map<number, number>) => (e: TrainProgress) => {
      if (e.phase === 'train') into.set(e.batch, e.loss);
    };
    const uninterrupted = new Map<number, number>();
    const full = await train({
      ...bf16,
      outputDir: out('bf16-full'),
      onProgress: losses(uninterrupted),
    });
    t.equal(full.optimizerSteps, 3);
    const controller = new AbortController();
    await train({
      ...bf16,
      outputDir: out('bf16-resumed'),
      signal: controller.signal,
      onProgress: (e) => {
        if (e.phase === 'train' && e.batch === 1) controller.abort();
      },
    });
    const afterResume = new Map<number, number>();
    const resumed = await train({
      ...bf16,
      outputDir: out('bf16-resumed'),
      resume: true,
      onProgress: losses(afterResume),
    });
    t.equal(resumed.optimizerSteps, 3);
    // The first step after the resume sees bit for bit the batch and the bf16 weights the
    // uninterrupted run had (test/trainer.test.ts checks the masters themselves); every step runs
    // the module op by op, the same way each time, so the later steps match bit for bit too.
    const [first] = [...afterResume][0]!;
    t.ok(first > 1, `resumed at batch ${first}`);
    for (const [batch, loss] of afterResume)
      t.equal(loss, uninterrupted.get(batch), `batch ${batch}: the uninterrupted run's loss`);

    const weights = await lastWeights('bf16-full');
    for (const [name, tensor] of weights)
      t.equal(tensor.dtype, 'float32', `${name}: saved from the fp32 master`);
    // Masters hold more than bf16 can: some saved value is not a bf16 number.
    const notBf16 = [...weights.values()].some((tensor) =>
      [...new Uint32Array(new Float32Array(tensor.data as Float32Array).buffer)].some(
        (bits) => (bits & 0xffff) !== 0,
      ),
    );
    t.ok(notBf16, "the adapter keeps the masters' fp32 bits");
  },
);

t.test('early stopping after `patience` epochs without a better validation IoU', async (t) => {
  // A vanishing learning rate leaves the predictions, and so the IoU, unchanged.
  const result = await train({
    ...base,
    learningRate: 1e-20,
    epochs: 4,
    earlyStopping: { patience: 1 },
    outputDir: out('early'),
  });
  t.equal(result.stoppedEarly, true);
  t.same(
    result.history.map((r) => r.best),
    [true, false],
  );
  t.equal(result.bestEpoch, 1);
});

t.test('a strategy other than the exported one is refused', async (t) => {
  await t.rejects(train({ ...base, strategy: 'B', outputDir: out('refused') }), {
    message: /LoRA strategy B was asked for, but .*model\.pt was exported with strategy A/,
  });
  await t.rejects(train({ ...base, gradientAccumulation: 4, outputDir: out('refused') }), {
    message: /fewer than the 4 micro-batches of one optimizer step/,
  });
});

t.test('both list files are read, and every sample decoded, before training', async (t) => {
  const events: TrainProgress[] = [];
  await t.rejects(
    train({
      ...base,
      valFile: join(dir, 'missing-val.txt'),
      outputDir: out('no-val'),
      onProgress: (e) => events.push(e),
    }),
    { message: /cannot read list file .*missing-val\.txt/ },
  );
  // A list whose only line names an image that does not decode.
  writeFileSync(join(dataRoot, 'broken.jpg'), 'not a jpeg');
  writeFileSync(join(dataRoot, 'bad-val.txt'), 'broken.jpg valcrop/val_0000.png\n');
  await t.rejects(
    train({
      ...base,
      valFile: 'bad-val.txt',
      outputDir: out('bad-val'),
      onProgress: (e) => events.push(e),
    }),
    { name: 'DatasetError', ...coded('dataset'), message: /^bad-val\.txt:1: .*broken\.jpg/ },
  );
  t.same(events, [], 'no step was taken');
});

t.test(
  'Ctrl-C reaching validation saves last and resolves (val set smaller than a batch)',
  async (t) => {
    const controller = new AbortController();
    // 6 images in batches of 4: 2 micro-batches; 3 validation images, fewer than one batch.
    const options = { ...base, batchSize: 4, epochs: 1, outputDir: out('abort-in-val') };
    const result = await train({
      ...options,
      signal: controller.signal,
      onProgress: (e) => {
        if (e.phase === 'train' && e.batch === e.batches) controller.abort();
      },
    });
    t.equal(result.aborted, true);
    t.equal(result.history.length, 0, 'the aborted validation is no epoch');
    t.equal(result.optimizerSteps, 2);
    const last = JSON.parse(readFileSync(file('abort-in-val', 'lastState'), 'utf8')) as object;
    t.match(last, { epoch: 0, batchInEpoch: 2, optimizerSteps: 2 });
    // The resume validates the trained epoch and finishes it.
    const resumed = await train({ ...options, resume: true });
    t.equal(resumed.optimizerSteps, 2, 'no step repeated');
    t.same(
      resumed.history.map((r) => r.epoch),
      [1],
    );
  },
);

t.test(
  'embedding cache: strategy A with augmentation off; refused with augmentation',
  async (t) => {
    const result = await train({
      ...base,
      trainExtra: [],
      augment: false,
      embeddingCache: 16,
      epochs: 1,
      outputDir: out('cached'),
    });
    t.equal(result.history.length, 1);
    await t.rejects(train({ ...base, embeddingCache: 16, outputDir: out('cached-aug') }), {
      message: /embeddingCache needs augment: false/,
    });
  },
);

t.test('aborted before training (during the scan): resolves at once, writes nothing', async (t) => {
  const controller = new AbortController();
  controller.abort();
  const result = await train({ ...base, outputDir: out('never'), signal: controller.signal });
  t.match(result, { aborted: true, optimizerSteps: 0, history: [], bestModel: null });
  t.notOk(existsSync(out('never')), 'no output folder');
});
