/**
 * LoRA adapters as safetensors files: the trained parameters only (every `lora_` parameter, plus
 * any fully trained ones), under the exported model's parameter names, which are the official
 * SAM 2.1 module names (docs/checkpoints.md). `__metadata__` says which base model and LoRA set-up
 * they belong to, so applying one to another model is refused instead of silently wrong.
 */
import type { Tensor } from '../binding.js';
import { readModelMetadata, type ModelMetadata } from './metadata.js';
import type { TorchModule } from '../torch-module.js';
import { readSafetensors, writeSafetensors } from './safetensors.js';

/** `__metadata__.format` of our adapters. */
export const ADAPTER_FORMAT = 'crackseg-lora-adapter';
const ADAPTER_FORMAT_VERSION = '1';

/** Whether a parameter is a LoRA factor (`…q_proj.lora_A`, `…q_proj.lora_B`). */
export function isLoraParameter(name: string): boolean {
  return /(^|\.)lora_[AB]$/.test(name);
}

/**
 * What an adapter records in its `__metadata__` (all values are strings there; see
 * docs/checkpoints.md). The first block identifies the base model; it must match on apply.
 */
export interface AdapterMetadata {
  format: typeof ADAPTER_FORMAT;
  format_version: string;
  config_name: string;
  /** SHA-256 of the official checkpoint the base model was exported from; '' for random init. */
  base_checkpoint_sha256: string;
  /** The export seed: it defines the weights of a random-init base model. */
  base_seed: string;
  lora_strategy: string;
  lora_rank: string;
  lora_alpha: string;
  /** JSON array of the name patterns trained in full besides LoRA (`trainExtra`). */
  trained_extra: string;
  /** Epochs completed when saved. */
  epoch: string;
  /** JSON object of the validation metrics at that epoch (iou, dice, f1), or `null`. */
  val_metrics: string;
  /** Optimizer steps taken when saved (checked against the trainer state on resume). */
  optimizer_steps?: string;
}

/** The base-model identity fields, compared on apply, with their human names for errors. */
const IDENTITY_FIELDS = [
  ['config_name', 'model config'],
  ['base_checkpoint_sha256', 'base checkpoint sha256'],
  ['lora_strategy', 'LoRA strategy'],
  ['lora_rank', 'LoRA rank'],
  ['lora_alpha', 'LoRA alpha'],
] as const;

/** The identity of `metadata`'s model in adapter-metadata form. */
function identityOf(
  metadata: ModelMetadata,
): Omit<AdapterMetadata, 'trained_extra' | 'epoch' | 'val_metrics' | 'optimizer_steps'> {
  const sha = metadata.checkpoint_sha256;
  return {
    format: ADAPTER_FORMAT,
    format_version: ADAPTER_FORMAT_VERSION,
    config_name: metadata.config_name,
    base_checkpoint_sha256: typeof sha === 'string' ? sha : '',
    base_seed: String(metadata.seed ?? ''),
    lora_strategy: metadata.lora_strategy,
    lora_rank: String(metadata.lora_rank ?? ''),
    lora_alpha: String(metadata.lora_alpha ?? ''),
  };
}

/** What a saved adapter holds besides the identity. */
export interface AdapterContents {
  /** The trained parameters by name (the trainer's `weights()`: fp32 masters). */
  tensors: Readonly<Record<string, Tensor>>;
  trainExtra: readonly string[];
  epoch: number;
  valMetrics: Record<string, number> | null;
  optimizerSteps?: number;
}

/**
 * The parameters training updates and adapters hold: every LoRA factor, plus those whose name
 * matches one of `trainExtra` (regular expressions).
 */
export function trainedParameterNames(
  module: TorchModule,
  trainExtra: readonly string[] = [],
): string[] {
  const extra = trainExtra.map((pattern) => new RegExp(pattern));
  return module
    .parameters()
    .map((p) => p.name)
    .filter((name) => isLoraParameter(name) || extra.some((re) => re.test(name)));
}

/** Saves trained parameters of `module` to `path` (atomically) with the metadata above. */
export async function saveAdapter(
  path: string,
  module: TorchModule,
  contents: AdapterContents,
): Promise<void> {
  const tensors = new Map(Object.entries(contents.tensors));
  const metadata: AdapterMetadata = {
    ...identityOf(readModelMetadata(module)),
    trained_extra: JSON.stringify(contents.trainExtra),
    epoch: String(contents.epoch),
    val_metrics: JSON.stringify(contents.valMetrics),
    ...(contents.optimizerSteps === undefined
      ? {}
      : { optimizer_steps: String(contents.optimizerSteps) }),
  };
  await writeSafetensors(path, tensors, { ...metadata });
}

/** What {@link applyAdapter} loaded. */
export interface AppliedAdapter {
  path: string;
  metadata: AdapterMetadata;
  /** The parameters set, in file order. */
  names: string[];
}

/**
 * Loads an adapter saved by training into `module`: checks that it was trained on this base model
 * (config, checkpoint sha256, random-init seed) with this LoRA set-up (strategy, rank, alpha), that
 * every tensor names a parameter of the same shape and that every LoRA factor of the model is
 * present, then sets the parameters. Nothing is changed when a check fails.
 */
export async function applyAdapter(module: TorchModule, path: string): Promise<AppliedAdapter> {
  const { tensors, metadata } = await readSafetensors(path);
  const fail = (reason: string) =>
    new Error(`cannot apply LoRA adapter '${path}' to '${module.path}': ${reason}`);
  if (metadata.format !== ADAPTER_FORMAT)
    throw fail(
      `it is not a crackseg adapter (__metadata__.format is ${JSON.stringify(metadata.format ?? null)})`,
    );
  const model = identityOf(readModelMetadata(module));
  for (const [field, label] of IDENTITY_FIELDS) {
    if (metadata[field] !== model[field])
      throw fail(`${label} differs: adapter '${metadata[field] ?? ''}', model '${model[field]}'`);
  }
  // Random-init models are told apart by their export seed (they have no checkpoint hash).
  if (model.base_checkpoint_sha256 === '' && metadata.base_seed !== model.base_seed)
    throw fail(
      `random-init base seed differs: adapter '${metadata.base_seed ?? ''}', model '${model.base_seed}'`,
    );

  const shapes = new Map(module.parameters().map((p) => [p.name, p.shape]));
  for (const [name, tensor] of tensors) {
    const shape = shapes.get(name);
    if (!shape) throw fail(`the model has no parameter '${name}'`);
    if (shape.join(',') !== tensor.shape.join(','))
      throw fail(
        `'${name}' is [${tensor.shape.join(', ')}] in the adapter, [${shape.join(', ')}] in the model`,
      );
  }
  const missing = [...shapes.keys()].filter((name) => isLoraParameter(name) && !tensors.has(name));
  if (missing.length > 0)
    throw fail(`it lacks ${missing.length} LoRA parameter(s) of the model, e.g. '${missing[0]}'`);
  await Promise.all([...tensors].map(([name, tensor]) => module.setParameter(name, tensor)));
  return { path, metadata: metadata as unknown as AdapterMetadata, names: [...tensors.keys()] };
}
