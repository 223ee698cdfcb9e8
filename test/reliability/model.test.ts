/**
 * A model and its inputs that lie (issue 15, items 4, 5, 7 and 13): metadata that disagrees with
 * the module, adapters of non-finite or integer values, impossible prompts, and modules whose
 * methods break the interface. Each row is a bad input and the error it must give.
 */
import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Tensor } from '../../ts/binding.js';
import type { RgbImage } from '../../ts/image.js';
import { exportModel } from '../../ts/model/export.js';
import { loadModel } from '../../ts/model/load.js';
import { predict } from '../../ts/predict.js';
import type { PromptSet } from '../../ts/prompts/prompts.js';
import { isLoraParameter, saveAdapter } from '../../ts/model/adapter.js';
import { readSafetensors } from '../../ts/model/safetensors.js';
import { runPython } from '../helpers/python.js';

const variantsScript = fileURLToPath(new URL('model_variants.py', import.meta.url));
const dir = await mkdtemp(join(tmpdir(), 'crackseg-model-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));
const modelPath = join(dir, 'model.pt');
await exportModel({ config: 'test', lora: 'A', rank: 4, alpha: 8, seed: 0, out: modelPath });
await runPython(variantsScript, [modelPath, dir]);
const variant = (name: string) => join(dir, `${name}.pt`);

t.test('metadata that disagrees with the module is an error naming both values', async (t) => {
  // The module: test config (256 px, trunk width 16 in 5 blocks), LoRA A of rank 4 on 28 targets.
  const table: Array<[string, RegExp | null]> = [
    ['honest', null],
    ['image-size-512', /image_size is 512 in metadata\.json, 256 in the module/],
    ['image-size-1e12', /image_size is 1000000000000 in metadata\.json, 256 in the module/],
    ['config-name-large', /config_name is "large" in metadata\.json, "test" in the module/],
    [
      'config-tiny',
      /config\.trunk\.embed_dim is 96 in metadata\.json, 16 in the module; trunk blocks \(config\.trunk\.stages\) is 12 in metadata\.json, 5 in the module/,
    ],
    ['lora-rank-8', /lora_rank is 8 in metadata\.json, 4 in the module/],
    [
      'lora-targets-short',
      /lora_targets is "27 name\(s\)" in metadata\.json, "28 name\(s\), e\.g\. '[^']+' only here" in the module/,
    ],
  ];
  for (const [name, error] of table) {
    const load = loadModel({ path: variant(name), device: 'cpu' });
    if (!error) {
      const model = await load;
      t.equal(model.imageSize, 256, name);
      model.module.dispose();
      continue;
    }
    await t.rejects(
      load,
      {
        name: 'ModelMetadataError',
        code: 'ERR_CRACKSEG_MODEL_METADATA',
        path: variant(name),
        message: new RegExp(`^${variant(name)}: metadata\\.json disagrees`),
      },
      name,
    );
    await t.rejects(loadModel({ path: variant(name), device: 'cpu' }), { message: error }, name);
  }
});

/** The model's LoRA factors, each filled by `value(element)`. */
function loraTensors(
  parameters: Array<{ name: string; shape: number[] }>,
  value: (i: number) => number,
): Record<string, Tensor> {
  return Object.fromEntries(
    parameters
      .filter((p) => isLoraParameter(p.name))
      .map((p) => {
        const size = p.shape.reduce((a, b) => a * b, 1);
        return [
          p.name,
          {
            dtype: 'float32',
            shape: p.shape,
            data: Float32Array.from({ length: size }, (_, i) => value(i)),
          },
        ];
      }),
  );
}

t.test(
  'adapters: non-finite values and integer tensors are errors naming file and tensor',
  async (t) => {
    const model = await loadModel({ path: modelPath, device: 'cpu' });
    const parameters = model.module.parameters();
    const save = async (name: string, tensors: Record<string, Tensor>) => {
      const path = join(dir, `${name}.safetensors`);
      await saveAdapter(path, model.module, {
        tensors,
        trainExtra: [],
        epoch: 1,
        valMetrics: null,
      });
      return path;
    };
    const first = parameters.find((p) => isLoraParameter(p.name))!.name;
    const fine = loraTensors(parameters, (i) => (i % 7) * 1e-3);
    const poisoned = (bad: number) => ({
      ...fine,
      [first]: {
        ...fine[first]!,
        data: Float32Array.from(fine[first]!.data as Float32Array, (v, i) => (i === 5 ? bad : v)),
      },
    });
    const integer = {
      ...fine,
      [first]: {
        dtype: 'int32',
        shape: fine[first]!.shape,
        data: new Int32Array(fine[first]!.data.length),
      },
    } as Record<string, Tensor>;
    // [adapter, error or null]
    const table: Array<[string, Record<string, Tensor>, RegExp | null]> = [
      ['finite', fine, null],
      [
        'nan',
        poisoned(Number.NaN),
        new RegExp(`'${first}' holds a non-finite value \\(NaN at element 5\\)`),
      ],
      ['inf', poisoned(Number.POSITIVE_INFINITY), /non-finite value \(Infinity at element 5\)/],
      [
        'minus-inf',
        poisoned(Number.NEGATIVE_INFINITY),
        /non-finite value \(-Infinity at element 5\)/,
      ],
      ['int32', integer, new RegExp(`'${first}' is int32 in the adapter, float32 expected`)],
    ];
    const paths = new Map<string, string>();
    for (const [name, tensors] of table) paths.set(name, await save(name, tensors));
    model.module.dispose();
    for (const [name, , error] of table) {
      const path = paths.get(name)!;
      const load = loadModel({ path: modelPath, device: 'cpu', loraCheckpoint: path });
      if (!error) {
        const loaded = await load;
        t.same(
          [...(await loaded.module.getParameter(first)).data].slice(0, 8),
          [...fine[first]!.data].slice(0, 8),
          name,
        );
        loaded.module.dispose();
        continue;
      }
      await t.rejects(
        load,
        {
          name: 'AdapterError',
          code: 'ERR_CRACKSEG_ADAPTER',
          path,
          message: new RegExp(`^cannot apply LoRA adapter '${path}'`),
        },
        name,
      );
      await t.rejects(
        loadModel({ path: modelPath, device: 'cpu', loraCheckpoint: path }),
        { message: error },
        name,
      );
    }
    // The file holds what was saved: the check is on load, not a writer's accident.
    const { tensors } = await readSafetensors(join(dir, 'int32.safetensors'));
    t.equal(tensors.get(first)!.dtype, 'int32');
  },
);

t.test('predict(): impossible prompts are rejected, naming the image and prompt', async (t) => {
  const model = await loadModel({ path: modelPath, device: 'cpu' });
  t.teardown(() => model.module.dispose());
  const image: RgbImage = { width: 32, height: 24, data: new Uint8Array(32 * 24 * 3).fill(100) };
  const good: PromptSet = { boxes: [[2, 2, 20, 20]], points: [] };
  // Image 1's prompts: a good box first, so the bad prompt is prompt 1 (boxes, then point groups).
  const table: Array<[string, PromptSet, ErrorConstructor, RegExp]> = [
    [
      'NaN box',
      {
        boxes: [
          [2, 2, 20, 20],
          [Number.NaN, 0, 10, 10],
        ],
        points: [],
      },
      RangeError,
      /image 1, prompt 1: a box .* must be finite, got \[NaN, 0, 10, 10\]/,
    ],
    [
      'Inf box',
      {
        boxes: [
          [2, 2, 20, 20],
          [0, 0, Number.POSITIVE_INFINITY, 10],
        ],
        points: [],
      },
      RangeError,
      /image 1, prompt 1: .*must be finite/,
    ],
    [
      '-Inf box',
      {
        boxes: [
          [2, 2, 20, 20],
          [0, Number.NEGATIVE_INFINITY, 5, 10],
        ],
        points: [],
      },
      RangeError,
      /image 1, prompt 1/,
    ],
    [
      'box of 3 numbers',
      {
        boxes: [[2, 2, 20, 20], [0, 0, 10] as unknown as [number, number, number, number]],
        points: [],
      },
      TypeError,
      /image 1, prompt 1: a box \[x0, y0, x1, y1\] must be 4 numbers, got \[0,0,10\]/,
    ],
    [
      'box of strings',
      {
        boxes: [[2, 2, 20, 20], ['0', 0, 1, 1] as unknown as [number, number, number, number]],
        points: [],
      },
      TypeError,
      /image 1, prompt 1: .*must be 4 numbers/,
    ],
    [
      'point label 7',
      { boxes: [[2, 2, 20, 20]], points: [{ coords: [[3, 3]], labels: [7] }] },
      RangeError,
      /image 1, prompt 1: point 0 has label 7; labels are 1 \(positive\) or 0 \(negative\)/,
    ],
    [
      'NaN point',
      {
        boxes: [[2, 2, 20, 20]],
        points: [
          {
            coords: [
              [3, 3],
              [Number.NaN, 1],
            ],
            labels: [1, 0],
          },
        ],
      },
      RangeError,
      /image 1, prompt 1: point 1 must be finite/,
    ],
    [
      'labels ≠ points',
      { boxes: [[2, 2, 20, 20]], points: [{ coords: [[3, 3]], labels: [1, 1] }] },
      TypeError,
      /image 1, prompt 1: a point prompt needs one label per point/,
    ],
    [
      'no boxes array',
      { points: [] } as unknown as PromptSet,
      TypeError,
      /image 1: prompts must have 'boxes' and 'points' arrays/,
    ],
  ];
  for (const [label, prompts, type, error] of table) {
    await t.rejects(predict(model, [image, image], [good, prompts]), type, label);
    await t.rejects(
      predict(model, [image, image], [good, prompts]),
      { code: type === TypeError ? 'ERR_CRACKSEG_ARGUMENT' : 'ERR_CRACKSEG_RANGE' },
      label,
    );
    await t.rejects(predict(model, [image, image], [good, prompts]), { message: error }, label);
  }
  const [first, second] = await predict(model, [image, image], [good, good]);
  t.same(first!.mask.data, second!.mask.data, 'good prompts still predict');
});

t.test(
  'a module whose methods return the wrong shapes: the error names file, method and expected',
  async (t) => {
    const image: RgbImage = { width: 32, height: 24, data: new Uint8Array(32 * 24 * 3) };
    const prompts: PromptSet = {
      boxes: [
        [2, 2, 20, 20],
        [1, 1, 5, 5],
      ],
      points: [],
    };
    const table: Array<[string, RegExp]> = [
      [
        'wrong-decode',
        /decode returned low_res_logits as a tensor of shape \[1, 1, 64, 64\], expected \[2, 1, H, W\] \(one mask per prompt given\)/,
      ],
      [
        'wrong-encode',
        /encode_image returned image_embed as a tensor of shape \[2, 64, 16, 16\], expected \[1, C, H, W\] \(one per image given\)/,
      ],
    ];
    for (const [name, error] of table) {
      // Old files without config_name() still load: these have none.
      const model = await loadModel({ path: variant(name), device: 'cpu' });
      t.notOk(model.module.methodNames.includes('config_name'), `${name}: no config_name()`);
      await t.rejects(
        predict(model, [image], [prompts]),
        { code: 'ERR_CRACKSEG_MODULE', message: new RegExp(`^${variant(name)}: `) },
        name,
      );
      await t.rejects(predict(model, [image], [prompts]), { message: error }, name);
      model.module.dispose();
    }
  },
);
