/**
 * TorchModule: a TorchScript file loaded by the addon, with typed, checked access to its methods,
 * metadata and parameters.
 */
import { access, constants } from 'node:fs/promises';
import { resolve } from 'node:path';
import {
  binding,
  type NativeTorchModule,
  type ParameterInfo,
  type Tensor,
  type Value,
} from './binding.js';

/** Where a module lives: the CPU, the current CUDA device, or CUDA device N. */
export type Device = 'cpu' | 'cuda' | `cuda:${number}`;

export interface LoadOptions {
  device?: Device;
}

export class TorchModule {
  private constructor(
    /** @internal The addon's handle, for the native predictor and trainer. */
    readonly native: NativeTorchModule,
    /** The file it was loaded from. */
    readonly path: string,
  ) {}

  /** Loads a TorchScript file (saved by `torch.jit.save`) onto a device. */
  static async load(path: string, options: LoadOptions = {}): Promise<TorchModule> {
    const absolute = resolve(path);
    try {
      await access(absolute, constants.R_OK);
    } catch {
      throw new Error(`cannot read TorchScript file '${absolute}'`);
    }
    try {
      return new TorchModule(
        await binding().loadModule(absolute, options.device ?? 'cpu'),
        absolute,
      );
    } catch (err) {
      // The addon's error, its class and code kept, its message naming the file.
      if (err instanceof Error)
        err.message = `cannot load TorchScript file '${absolute}': ${err.message}`;
      throw err;
    }
  }

  get device(): string {
    return this.native.device;
  }

  /** The dtype of the floating-point parameters, e.g. `float32` or `bfloat16`. */
  get dtype(): string {
    return this.native.dtype;
  }

  /** Casts the floating-point parameters and buffers to `dtype` (e.g. `bfloat16`). */
  async convertTo(dtype: 'float32' | 'float64' | 'bfloat16' | 'float16'): Promise<void> {
    await this.native.convertTo(dtype);
  }

  /** The module's methods, `forward` included when it has one. */
  get methodNames(): string[] {
    return this.native.methodNames();
  }

  /** The extra files saved in the archive, by name. */
  get extraFiles(): Record<string, string> {
    return this.native.extraFiles();
  }

  /** An extra file parsed as JSON, or undefined when the archive has none of that name. */
  extraJson<T = unknown>(name: string): T | undefined {
    const text = this.extraFiles[name];
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text) as T;
    } catch (err) {
      throw new Error(
        `${this.path}: extra file '${name}' is not valid JSON: ${(err as Error).message}`,
      );
    }
  }

  /** Runs `method` on the libuv pool, without autograd. Inputs are checked against its schema. */
  run(method: string, inputs: Value[] = []): Promise<Value> {
    return this.native.run(method, inputs);
  }

  parameters(): ParameterInfo[] {
    return this.native.parameters();
  }

  /** A copy of the parameter's values, read once the module is free (after a step in flight). */
  getParameter(name: string): Promise<Tensor> {
    return this.native.getParameter(name);
  }

  /**
   * Copies `value` into the parameter once the module is free (a training step in flight finishes
   * first); the JS thread never waits.
   */
  setParameter(name: string, value: Tensor): Promise<void> {
    return this.native.setParameter(name, value);
  }

  /** Sets requiresGrad on every parameter whose name matches; resolves to the names it changed. */
  async setRequiresGrad(pattern: RegExp | string, requiresGrad: boolean): Promise<string[]> {
    const matcher = typeof pattern === 'string' ? new RegExp(pattern) : pattern;
    const names = this.parameters()
      .map((p) => p.name)
      .filter((name) => matcher.test(name));
    await this.native.setRequiresGrad(names, requiresGrad);
    return names;
  }

  /** Switches training mode (dropout on) or evaluation mode, recursively. */
  setTraining(training: boolean): Promise<void> {
    return this.native.setTraining(training);
  }

  /** Releases the module; in-flight runs complete, later calls throw. */
  dispose(): void {
    this.native.dispose();
  }
}
