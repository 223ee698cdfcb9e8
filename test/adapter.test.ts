import t from 'tap';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Tensor } from '../ts/binding.js';
import { exportModel, type ExportOptions } from '../ts/model/export.js';
import { loadModel, type SamModel } from '../ts/model/load.js';
import { predict } from '../ts/predict.js';
import { synthesizeSample } from '../ts/synth/synthesize.js';
import { TorchModule } from '../ts/torch-module.js';
import { groundTruthBoxes } from '../ts/train/box-prompt.js';
import {
  ADAPTER_FORMAT,
  applyAdapter,
  isLoraParameter,
  saveAdapter,
  trainedParameterNames,
} from '../ts/model/adapter.js';
import { readSafetensors, writeSafetensors } from '../ts/model/safetensors.js';

const dir = mkdtempSync(join(tmpdir(), 'crackseg-adapter-'));
const base: ExportOptions = {
  config: 'test',
  lora: 'A',
  rank: 4,
  alpha: 8,
  dropout: 0,
  seed: 0,
  out: join(dir, 'a.pt'),
};
const [modelA, modelB, modelSeed1] = await Promise.all([
  exportModel(base),
  exportModel({ ...base, lora: 'B', out: join(dir, 'b.pt') }),
  exportModel({ ...base, seed: 1, out: join(dir, 'a-seed1.pt') }),
]);

/** A deterministic non-trivial value for every element of a parameter. */
function filled(module: TorchModule, name: string, salt: number): Tensor<'float32'> {
  const { shape } = module.parameters().find((p) => p.name === name)!;
  const size = shape.reduce((a, b) => a * b, 1);
  return {
    dtype: 'float32',
    shape,
    data: Float32Array.from({ length: size }, (_, i) => Math.sin(i + salt)),
  };
}

/** The named parameters' current values, as a trainer's `weights()` gives them. */
async function parametersOf(module: TorchModule, names: string[]): Promise<Record<string, Tensor>> {
  return Object.fromEntries(
    await Promise.all(names.map(async (name) => [name, await module.getParameter(name)] as const)),
  );
}

async function trainedLookingAdapter(path: string, extra: string[] = []) {
  const module = await TorchModule.load(modelA.out);
  const names = trainedParameterNames(module, extra);
  await Promise.all(names.map((name, k) => module.setParameter(name, filled(module, name, k))));
  await saveAdapter(path, module, {
    tensors: await parametersOf(module, names),
    trainExtra: extra,
    epoch: 3,
    valMetrics: { iou: 0.25, dice: 0.4, f1: 0.4 },
  });
  const values = new Map(
    Object.entries(await parametersOf(module, names)).map(([name, p]) => [name, [...p.data]]),
  );
  module.dispose();
  return values;
}

t.test('save then apply restores the LoRA (and extra) parameters', async (t) => {
  const path = join(dir, 'adapter.safetensors');
  const extra = ['^sam_mask_decoder\\.iou_prediction_head\\.'];
  const saved = await trainedLookingAdapter(path, extra);
  const lora = [...saved.keys()].filter(isLoraParameter);
  t.ok(
    lora.length > 0 && lora.every((n) => n.startsWith('sam_mask_decoder.transformer.')),
    'strategy A adapts the decoder',
  );
  t.ok(
    [...saved.keys()].some((n) => n.includes('iou_prediction_head')),
    'extra parameters are saved',
  );

  const { metadata } = await readSafetensors(path);
  t.match(metadata, {
    format: ADAPTER_FORMAT,
    config_name: 'test',
    base_checkpoint_sha256: '',
    base_seed: '0',
    lora_strategy: 'A',
    lora_rank: '4',
    lora_alpha: '8',
    epoch: '3',
  });
  t.same(JSON.parse(metadata.val_metrics!), { iou: 0.25, dice: 0.4, f1: 0.4 });
  t.same(JSON.parse(metadata.trained_extra!), extra);

  const module = await TorchModule.load(modelA.out);
  t.teardown(() => module.dispose());
  const before = await module.getParameter(lora[0]!);
  const applied = await applyAdapter(module, path);
  t.same(applied.names.sort(), [...saved.keys()].sort());
  for (const [name, values] of saved)
    t.same([...(await module.getParameter(name)).data], values, name);
  t.notSame([...before.data], saved.get(lora[0]!));
});

t.test('adapter keys are official SAM 2.1 module names', async (t) => {
  const module = await TorchModule.load(modelB.out);
  t.teardown(() => module.dispose());
  const official = new Set(
    Object.keys(
      (
        JSON.parse(
          readFileSync(new URL('./fixtures/sam2.1-image-keys.json', import.meta.url), 'utf8'),
        ) as {
          image_keys: { tiny: Record<string, number[]> };
        }
      ).image_keys.tiny,
    ),
  );
  const names = trainedParameterNames(module);
  t.ok(
    names.some((n) => n.startsWith('image_encoder.trunk.blocks.')),
    'strategy B adapts the trunk',
  );
  for (const name of names) {
    t.ok(official.has(name.replace(/lora_[AB]$/, 'weight')), `${name} adapts an official Linear`);
  }
});

t.test('mismatched adapters are refused and leave the model unchanged', async (t) => {
  const path = join(dir, 'good.safetensors');
  await trainedLookingAdapter(path);
  const good = await readSafetensors(path);
  const variant = async (
    name: string,
    edit: (tensors: Map<string, Tensor>, meta: Record<string, string>) => void,
  ) => {
    const tensors = new Map(good.tensors);
    const meta = { ...good.metadata };
    edit(tensors, meta);
    const out = join(dir, name);
    await writeSafetensors(out, tensors, meta);
    return out;
  };
  const someLora = [...good.tensors.keys()].find(isLoraParameter)!;

  const strategyB = await TorchModule.load(modelB.out);
  const seed1 = await TorchModule.load(modelSeed1.out);
  const module = await TorchModule.load(modelA.out);
  t.teardown(() => [strategyB, seed1, module].forEach((m) => m.dispose()));

  await t.rejects(applyAdapter(strategyB, path), {
    message: /LoRA strategy differs: adapter 'A', model 'B'/,
  });
  await t.rejects(applyAdapter(seed1, path), {
    message: /random-init base seed differs: adapter '0', model '1'/,
  });
  const cases: Array<[string, Parameters<typeof variant>[1], RegExp]> = [
    [
      'sha.safetensors',
      (_, m) => (m.base_checkpoint_sha256 = 'ab'.repeat(32)),
      /base checkpoint sha256 differs/,
    ],
    [
      'config.safetensors',
      (_, m) => (m.config_name = 'small'),
      /model config differs: adapter 'small', model 'test'/,
    ],
    ['alpha.safetensors', (_, m) => (m.lora_alpha = '16'), /LoRA alpha differs/],
    ['format.safetensors', (_, m) => delete m.format, /not a crackseg adapter/],
    [
      'shape.safetensors',
      (ts) => ts.set(someLora, { dtype: 'float32', shape: [1, 2], data: new Float32Array(2) }),
      new RegExp(`'${someLora.replace(/\./g, '\\.')}' is \\[1, 2\\] in the adapter`),
    ],
    [
      'unknown.safetensors',
      (ts) =>
        ts.set('sam_mask_decoder.nothing.lora_A', {
          dtype: 'float32',
          shape: [1],
          data: new Float32Array(1),
        }),
      /the model has no parameter 'sam_mask_decoder\.nothing\.lora_A'/,
    ],
    ['missing.safetensors', (ts) => ts.delete(someLora), /lacks 1 LoRA parameter/],
  ];
  const before = [...(await module.getParameter(someLora)).data];
  for (const [name, edit, message] of cases) {
    const file = await variant(name, edit);
    await t.rejects(applyAdapter(module, file), { message }, name);
    await t.rejects(applyAdapter(module, file), {
      message: new RegExp(`cannot apply LoRA adapter '.*${name}'`),
    });
  }
  t.same([...(await module.getParameter(someLora)).data], before, 'nothing was applied');
});

t.test(
  'an adapter applied to a fresh base model predicts bit for bit as the trained model',
  async (t) => {
    const path = join(dir, 'predict-adapter.safetensors');
    const extra = ['^sam_mask_decoder\\.iou_prediction_head\\.'];
    // The "trained" model: its LoRA factors and extras set to non-trivial values, then saved.
    const trainedModel = await loadModel({ path: modelA.out, device: 'cpu' });
    t.teardown(() => trainedModel.module.dispose());
    const names = trainedParameterNames(trainedModel.module, extra);
    await Promise.all(
      names.map((name, k) =>
        trainedModel.module.setParameter(name, filled(trainedModel.module, name, k)),
      ),
    );
    await saveAdapter(path, trainedModel.module, {
      tensors: await parametersOf(trainedModel.module, names),
      trainExtra: extra,
      epoch: 1,
      valMetrics: null,
    });
    const [applied, untrained] = await Promise.all([
      loadModel({ path: modelA.out, device: 'cpu', loraCheckpoint: path }),
      loadModel({ path: modelA.out, device: 'cpu' }),
    ]);
    t.teardown(() => [applied, untrained].forEach((m) => m.module.dispose()));

    const samples = [0, 1, 2].map((k) => synthesizeSample(160, 96, 100 + k, false));
    const images = samples.map((s) => s.image);
    const prompts = samples.map((s) => groundTruthBoxes(s.mask));
    const run = (model: SamModel) => predict(model, images, prompts, { probabilities: true });
    const [expected, actual, base] = [
      await run(trainedModel),
      await run(applied),
      await run(untrained),
    ];
    const bytes = (a: { buffer: ArrayBufferLike; byteOffset: number; byteLength: number }) =>
      Buffer.from(a.buffer, a.byteOffset, a.byteLength);
    expected.forEach((prediction, i) => {
      t.ok(bytes(prediction.mask.data).equals(bytes(actual[i]!.mask.data)), `image ${i}: mask`);
      t.ok(
        bytes(prediction.probabilities!.data).equals(bytes(actual[i]!.probabilities!.data)),
        `image ${i}: probabilities bit for bit`,
      );
      t.same(actual[i]!.iouScores, prediction.iouScores, `image ${i}: IoU scores`);
    });
    t.notOk(
      expected.every((p, i) =>
        bytes(p.probabilities!.data).equals(bytes(base[i]!.probabilities!.data)),
      ),
      'the adapter changes the predictions (the comparison is not vacuous)',
    );
  },
);
