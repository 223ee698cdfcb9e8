/**
 * Loading an exported SAM 2.1 model (docs/model-interface.md) for prediction: the TorchScript
 * module, its checked metadata and, optionally, a trained LoRA adapter on top.
 */
import { runtimeInfo } from '../runtime.js';
import { TorchModule, type Device } from '../torch-module.js';
import { applyAdapter } from './adapter.js';
import { readModelMetadata, type ModelMetadata } from './metadata.js';

/**
 * The dtype a model computes in: `bf16` (bfloat16 weights and activations: the GPUs' fast path)
 * or `fp32`.
 */
export type Precision = 'fp32' | 'bf16';

/** The libtorch dtype of each precision. */
export const PRECISION_DTYPE = { fp32: 'float32', bf16: 'bfloat16' } as const;

/** bf16 on CUDA, fp32 on the CPU (where bf16 is slower on most processors). */
export function defaultPrecision(device: string): Precision {
  return device === 'cpu' ? 'fp32' : 'bf16';
}

/** A model ready for {@link predict}: module, metadata and where it runs. */
export interface SamModel {
  module: TorchModule;
  metadata: ModelMetadata;
  /** The model's input side S (prompt coordinates are mapped to 0..S). */
  imageSize: number;
  device: string;
  precision: Precision;
  /** The LoRA checkpoint applied on load, if any. */
  loraCheckpoint: string | null;
  /** Seconds spent loading (module and adapter). */
  loadSeconds: number;
}

export interface LoadModelOptions {
  /** An exported TorchScript file. */
  path: string;
  /** Default: {@link defaultDevice}. */
  device?: Device;
  /** A LoRA adapter (safetensors) saved by training, loaded into the module's LoRA weights. */
  loraCheckpoint?: string;
  /** Default: {@link defaultPrecision} of the device. The adapter is applied before the cast. */
  precision?: Precision;
}

/** `cuda` when the addon's libtorch sees a GPU, else `cpu`. */
export function defaultDevice(): Device {
  return runtimeInfo().cudaAvailable ? 'cuda' : 'cpu';
}

/** Loads and checks an exported model; applies `loraCheckpoint` when given. */
export async function loadModel(options: LoadModelOptions): Promise<SamModel> {
  const started = performance.now();
  const module = await TorchModule.load(options.path, {
    device: options.device ?? defaultDevice(),
  });
  try {
    const metadata = readModelMetadata(module);
    if (options.loraCheckpoint) await applyAdapter(module, options.loraCheckpoint);
    const precision = options.precision ?? defaultPrecision(module.device);
    if (!Object.hasOwn(PRECISION_DTYPE, precision))
      throw new Error(`precision must be 'fp32' or 'bf16', got '${precision}'`);
    await module.convertTo(PRECISION_DTYPE[precision]);
    await module.setTraining(false);
    return {
      module,
      metadata,
      imageSize: metadata.image_size,
      device: module.device,
      precision,
      loraCheckpoint: options.loraCheckpoint ?? null,
      loadSeconds: (performance.now() - started) / 1000,
    };
  } catch (err) {
    module.dispose();
    throw err;
  }
}
