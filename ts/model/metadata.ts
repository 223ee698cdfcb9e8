/** An exported model's embedded `metadata.json` (docs/model-interface.md), read and checked. */
import type { Tensor } from '../binding.js';
import { ModelMetadataError } from '../errors.js';
import type { TorchModule } from '../torch-module.js';
import { isLoraParameter } from './adapter.js';
import type { ExportMetadata } from './export.js';

/** The `format` an exported model's metadata declares. */
export const MODEL_FORMAT: ExportMetadata['format'] = 'crackseg-sam2-image';

/** The methods prediction and the checks below need (docs/model-interface.md). */
const REQUIRED_METHODS = ['encode_image', 'decode', 'preprocess'];

/** An exported model's `metadata.json` (docs/model-interface.md). */
export type ModelMetadata = ExportMetadata;

/** The module's checked `metadata.json`; the error names the file and what is wrong. */
export function readModelMetadata(module: TorchModule): ModelMetadata {
  const metadata = module.extraJson<ModelMetadata>('metadata.json');
  const problem = !metadata
    ? 'has no metadata.json'
    : // Unchecked JSON: any value may stand in `format`.
      (metadata.format as unknown) !== MODEL_FORMAT
      ? `has format '${String(metadata.format)}', expected '${MODEL_FORMAT}'`
      : !Number.isInteger(metadata.image_size) || metadata.image_size <= 0
        ? 'has no valid image_size'
        : undefined;
  const missing = REQUIRED_METHODS.filter((m) => !module.methodNames.includes(m));
  if (problem || missing.length > 0) {
    throw new ModelMetadataError(
      module.path,
      `${module.path} is not an exported crackseg model: it ` +
        (problem ?? `lacks the method(s) ${missing.join(', ')}`) +
        ' (export one with `crackseg export`, see docs/model-interface.md)',
    );
  }
  return metadata!;
}

/** `…lora_A` parameters: their module name and rank. */
const LORA_A = /^(.*)\.lora_A$/;

/**
 * Checks `metadata` against what the module itself is: its input side (what `preprocess` resizes
 * to), its configuration's name (`config_name()`, in files exported since it exists), the
 * structure the configuration implies (trunk width and depth, FPN width, decoder depth and MLP
 * width), its LoRA targets and rank, and its parameter counts. Metadata is only a description:
 * a disagreement is an error naming the file and both values, never a run with wrong masks.
 */
export async function checkMetadata(module: TorchModule, metadata: ModelMetadata): Promise<void> {
  const parameters = module.parameters();
  const shapeOf = (name: string) => parameters.find((p) => p.name === name)?.shape;
  const count = (pattern: RegExp) =>
    new Set(parameters.flatMap((p) => pattern.exec(p.name)?.[1] ?? [])).size;
  const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
  const pixel: Tensor<'uint8'> = { data: new Uint8Array(3), shape: [1, 3, 1, 1], dtype: 'uint8' };
  const side = ((await module.run('preprocess', [pixel])) as Tensor).shape[2];
  const lora = parameters.flatMap((p) => {
    const match = LORA_A.exec(p.name);
    return match ? [{ target: match[1]!, rank: p.shape[0] }] : [];
  });
  const config = (metadata.config ?? {}) as {
    image_size?: unknown;
    trunk?: { embed_dim?: unknown; stages?: unknown };
    neck?: { d_model?: unknown };
    decoder?: { transformer_depth?: unknown; transformer_mlp_dim?: unknown };
  };
  const stages = config.trunk?.stages;
  const blocks = Array.isArray(stages) ? stages.reduce((a: number, b) => a + Number(b), 0) : stages;
  const ranks = [...new Set(lora.map((l) => l.rank))];
  const loraParameters = parameters.filter((p) => isLoraParameter(p.name));
  // [what, metadata.json says, the module is]
  const facts: Array<[string, unknown, unknown]> = [
    ['image_size', metadata.image_size, side],
    ['config.image_size', config.image_size, side],
    ['embed_size', metadata.embed_size, side === undefined ? side : side / 16],
    ['mask_size', metadata.mask_size, side === undefined ? side : side / 4],
    [
      'config.trunk.embed_dim',
      config.trunk?.embed_dim,
      shapeOf('image_encoder.trunk.patch_embed.proj.weight')?.[0],
    ],
    ['trunk blocks (config.trunk.stages)', blocks, count(/^image_encoder\.trunk\.blocks\.(\d+)\./)],
    [
      'config.neck.d_model',
      config.neck?.d_model,
      shapeOf('image_encoder.neck.convs.0.conv.weight')?.[0],
    ],
    [
      'config.decoder.transformer_depth',
      config.decoder?.transformer_depth,
      count(/^sam_mask_decoder\.transformer\.layers\.(\d+)\./),
    ],
    [
      'config.decoder.transformer_mlp_dim',
      config.decoder?.transformer_mlp_dim,
      shapeOf('sam_mask_decoder.transformer.layers.0.mlp.layers.0.weight')?.[0],
    ],
    targetsFact(
      metadata.lora_targets,
      lora.map((l) => l.target),
    ),
    [
      'total_parameters',
      metadata.total_parameters,
      parameters.reduce((n, p) => n + numel(p.shape), 0),
    ],
    [
      'trainable_parameters',
      metadata.trainable_parameters,
      loraParameters.reduce((n, p) => n + numel(p.shape), 0),
    ],
  ];
  // A rank is only the module's when it has LoRA factors (`none` keeps the rank it was given).
  if (lora.length > 0)
    facts.push(['lora_rank', metadata.lora_rank, ranks.length === 1 ? ranks[0] : ranks.join('/')]);
  if (module.methodNames.includes('config_name'))
    facts.push(['config_name', metadata.config_name, await module.run('config_name')]);
  const wrong = facts.filter(([, said, is]) => said !== is);
  if (wrong.length > 0) {
    throw new ModelMetadataError(
      module.path,
      `${module.path}: metadata.json disagrees with the module: ` +
        wrong
          .map(
            ([what, said, is]) =>
              `${what} is ${JSON.stringify(said)} in metadata.json, ${JSON.stringify(is)} in the module`,
          )
          .join('; '),
    );
  }
}

/**
 * The LoRA-targets fact as counts and the first name only one side has (equal descriptions when
 * they agree), instead of two lists of dozens of names.
 */
function targetsFact(said: unknown, is: string[]): [string, unknown, unknown] {
  const listed = Array.isArray(said) ? (said as string[]) : [];
  const only = (a: string[], b: string[]) => a.find((name) => !b.includes(name));
  const metadataOnly = only(listed, is);
  const moduleOnly = only(is, listed);
  const describe = (names: string[], extra: string | undefined) =>
    `${names.length} name(s)` + (extra ? `, e.g. '${extra}' only here` : '');
  return [
    'lora_targets',
    Array.isArray(said) ? describe(listed, metadataOnly) : said,
    describe(is, moduleOnly),
  ];
}
