/**
 * Loading an exported SAM 2.1 model (docs/model-interface.md) for prediction: the TorchScript
 * module, its checked metadata and, optionally, a trained LoRA adapter on top.
 */
import { runtimeInfo } from '../runtime.js';
import { TorchModule, type Device } from '../torch-module.js';
import { applyAdapter } from '../train/adapter.js';
import { readModelMetadata, type ModelMetadata } from './metadata.js';

/** A model ready for {@link predict}: module, metadata and where it runs. */
export interface SamModel {
  module: TorchModule;
  metadata: ModelMetadata;
  /** The model's input side S (prompt coordinates are mapped to 0..S). */
  imageSize: number;
  device: string;
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
    module.setTraining(false);
    return {
      module,
      metadata,
      imageSize: metadata.image_size,
      device: module.device,
      loraCheckpoint: options.loraCheckpoint ?? null,
      loadSeconds: (performance.now() - started) / 1000,
    };
  } catch (err) {
    module.dispose();
    throw err;
  }
}
