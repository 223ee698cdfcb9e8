/**
 * The whole native surface of the addon, declared once as typed interfaces, and its loader.
 * Everything else in the package reaches libtorch through `binding()`.
 */
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMainThread } from 'node:worker_threads';
import { isHeld, type BinaryMask, type HeldPlane, type ProbabilityMap } from './image.js';

/** Element types a tensor can have in JS. 16-bit floats travel as raw bits in a Uint16Array. */
export type Dtype =
  'float32' | 'float64' | 'float16' | 'bfloat16' | 'int32' | 'int64' | 'uint8' | 'bool';

/** The typed array that holds each dtype. */
export interface DtypeArrays {
  float32: Float32Array;
  float64: Float64Array;
  float16: Uint16Array;
  bfloat16: Uint16Array;
  int32: Int32Array;
  int64: BigInt64Array;
  uint8: Uint8Array;
  bool: Uint8Array;
}

/** A dense, row-major tensor: `data.length` is the product of `shape`. */
export interface Tensor<D extends Dtype = Dtype> {
  data: DtypeArrays[D];
  shape: number[];
  dtype: D;
}

/**
 * A TorchScript value: tensors, tuples and lists (arrays), ints (number or bigint), floats,
 * bools, strings and None (null; undefined is accepted for an optional input).
 */
export type Value = Tensor | number | bigint | boolean | string | null | undefined | Value[];

/** One named parameter of a module. */
export interface ParameterInfo {
  name: string;
  shape: number[];
  dtype: Dtype;
  requiresGrad: boolean;
}

/** What the loaded addon and its libtorch can do. */
export interface RuntimeInfo {
  /** The libtorch version the addon was built against. */
  torchVersion: string;
  /** Whether that libtorch is a CPU-only or a CUDA build. */
  flavour: 'cpu' | 'cuda';
  cudaAvailable: boolean;
  cudaDeviceCount: number;
  cudaDevices: string[];
  /** cuDNN's version number (e.g. 90100), or null without CUDA/cuDNN. */
  cudnnVersion: number | null;
  /** libtorch's intra-op thread count. */
  threads: number;
  /** libtorch's CPU allocator (native/host_memory.h): `caching` keeps blocks of 64 KiB and more as
   * mappings of their own, reused by size up to `cacheLimitBytes` and unmapped beyond
   * (`CRACKSEG_HOST_CACHE_MIB`, default 1024); `system` is libtorch's own
   * (`CRACKSEG_HOST_CACHE_MIB=system`), with zero counts. */
  hostMemory: HostMemory;
}

export interface HostMemory {
  allocator: 'caching' | 'system';
  /** Bytes of mapped blocks that tensors hold now. */
  liveBytes: number;
  /** Bytes of mapped blocks kept for reuse. */
  cachedBytes: number;
  cacheLimitBytes: number;
}

/** A loaded TorchScript module (native side; wrapped by `TorchModule`). */
export interface NativeTorchModule {
  /** The device it lives on, e.g. `cpu` or `cuda:0`. */
  readonly device: string;
  /** The dtype of its floating-point parameters (`float32` when it has none). */
  readonly dtype: string;
  /**
   * Casts its floating-point parameters and buffers to `dtype` (`float32`, `float64`, `bfloat16`,
   * `float16`) off the JS thread, waiting for jobs in flight.
   */
  convertTo(dtype: string): Promise<void>;
  methodNames(): string[];
  /** The archive's extra files, by name. */
  extraFiles(): Record<string, string>;
  /** Runs a method off the JS thread, without autograd; outputs come back on the host. */
  run(method: string, inputs: Value[]): Promise<Value>;
  parameters(): ParameterInfo[];
  /** A copy of the parameter's values, read off the JS thread once the module is free. */
  getParameter(name: string): Promise<Tensor>;
  /**
   * Copies `value` (copied at the call) into the parameter off the JS thread, once the module is
   * free (after a training step that holds it); shape and dtype must match.
   */
  setParameter(name: string, value: Tensor): Promise<void>;
  /** Sets requiresGrad on the named parameters off the JS thread, once the module is free. */
  setRequiresGrad(names: string[], requiresGrad: boolean): Promise<void>;
  /** Switches training mode off the JS thread, once the module is free. */
  setTraining(training: boolean): Promise<void>;
  /** Releases the module (in-flight runs finish first); every later call throws. */
  dispose(): void;
}

/**
 * One prompt set for a batch of B images: N prompts of P points each, in model-input pixels
 * (0..S, S the model's image size). Boxes are two points labelled 2 (top-left) and 3
 * (bottom-right); 1 is a positive point, 0 a negative one, -1 padding.
 */
export interface PromptTensors {
  /** `[N, P, 2]` x, y. */
  coords: Tensor<'float32'>;
  /** `[N, P]`. */
  labels: Tensor<'int32'>;
  /** `[N]`: the batch image each prompt belongs to. */
  imageIndex: Tensor<'int64'>;
}

export interface NativePredictOptions {
  /** Also return the sigmoid of each image's union logits (for ODS/OIS). */
  probabilities?: boolean;
  /** Also return the decoder's low-resolution logits. */
  lowResLogits?: boolean;
  /**
   * Keep each image's mask and probabilities in native memory and return {@link TensorHandle}s,
   * so the pixels can go to a worker thread without passing through this one.
   */
  hold?: boolean;
  /**
   * Per prompt set (one entry each, `null` for none): select that set's masks as the official
   * automatic mask generator does ({@link AutoMaskFilter}) and unite only the kept ones.
   */
  automatic?: Array<AutoMaskFilter | null>;
}

/**
 * How an automatic (prompt-free) set's masks are selected, as the official SAM 2 automatic mask
 * generator selects its point grid's masks: a mask (logit > 0 at the image's size) is kept when
 * its predicted IoU is above `iouThreshold` and its stability score, |logit > offset| /
 * |logit > −offset|, at least `stabilityThreshold`; then, per image, in descending predicted IoU,
 * one whose box overlaps a kept one's by more than `boxNmsThreshold` (box IoU) is dropped.
 */
export interface AutoMaskFilter {
  iouThreshold: number;
  stabilityThreshold: number;
  /** In logits. */
  stabilityOffset: number;
  boxNmsThreshold: number;
  /** Prompts decoded and scored at the image's size at once: bounds memory. */
  pointsPerBatch: number;
}

/**
 * A host tensor kept in native memory (one process-wide store, shared by every thread's instance
 * of the addon) until {@link Binding.takeTensor} takes it, once, on any thread, or
 * {@link Binding.releaseTensors} drops it.
 */
export type TensorHandle = number;

/**
 * The predictions of one prompt set for a batch of B images of H×W pixels. The set's prompts come
 * in groups (prompts of one group have one point count); an image's mask and probabilities are the
 * union over all its prompts, whatever their group.
 */
export interface PredictionSet {
  /**
   * Per image, `[H, W]` 0/1: the union over its prompts of (logits > 0), the logits upsampled
   * bilinearly from the decoder's output to the image size (the official predictor's
   * post-processing). All zero for an image without prompts. Each has its own ArrayBuffer.
   */
  masks: Array<Tensor<'uint8'>>;
  /**
   * Per image, `[H, W]`: sigmoid of the per-pixel maximum logit over the image's prompts (0
   * without). Each has its own ArrayBuffer.
   */
  probabilities?: Array<Tensor<'float32'>>;
  /** `[N, 1]`: the decoder's IoU prediction per prompt, the groups' prompts in order. */
  iou: Tensor<'float32'>;
  /** `[N, 1, S/4, S/4]`, the groups' prompts in order. */
  lowResLogits?: Tensor<'float32'>;
  /** With an automatic set: `[N]` 1 where the prompt's mask was kept (made the union). */
  kept?: Tensor<'uint8'>;
}

/** {@link PredictionSet} with `hold`: masks and probabilities as handles. */
export interface HeldPredictionSet extends Omit<PredictionSet, 'masks' | 'probabilities'> {
  masks: TensorHandle[];
  probabilities?: TensorHandle[];
}

/** Hyper-parameters of the native training loop (see docs/training.md). */
export interface TrainerOptions {
  learningRate: number;
  minLearningRate: number;
  weightDecay: number;
  betas: [number, number];
  eps: number;
  /** Optimizer steps of linear warm-up from 0, then cosine decay to minLearningRate. */
  warmupSteps: number;
  /** Optimizer steps in the whole run (the cosine's length). */
  totalSteps: number;
  /** Micro-batches whose gradients are summed per optimizer step. */
  gradientAccumulation: number;
  /** Clip the gradients' global L2 norm to this (0: no clipping). */
  maxGradNorm: number;
  diceWeight: number;
  focalWeight: number;
  focalAlpha: number;
  focalGamma: number;
  /** Weight of the soft-clDice skeleton loss (0: off). */
  skeletonWeight: number;
  /**
   * The dtype the module computes in; the trainer casts it to this. With `bfloat16` the
   * optimizer updates fp32 master copies of the trained parameters (see {@link
   * NativeTrainer.weights}) and copies them into the module after each step.
   */
  precision: 'float32' | 'bfloat16';
  /** Seeds libtorch's global generator (LoRA dropout). */
  seed: number;
  /**
   * Images whose embeddings the trainer keeps on the device (default 0: none). Only embeddings
   * that depend on no trainable parameter are kept (the encoder frozen, as with strategy A), by
   * the batch's `cacheKeys`.
   */
  cacheLimit?: number;
}

/** A training micro-batch: B images with their ground truth, and box prompts for them. */
export interface TrainBatch {
  /** `[B, H, W, 3]` uint8 RGB, interleaved as decoded. */
  images: Tensor<'uint8'>;
  /** `[B, H, W]` 0/1 ground truth. */
  masks: Tensor<'uint8'>;
  prompts: PromptTensors;
  /**
   * One key per image naming its exact pixels (e.g. the sample id when augmentation is off):
   * with `cacheLimit`, an image seen before under its key is not encoded again.
   */
  cacheKeys?: string[];
}

/** What one micro-batch did. Losses are the micro-batch's, before scaling by accumulation. */
export interface StepResult {
  loss: number;
  dice: number;
  focal: number;
  skeleton: number;
  /** The learning rate of the optimizer step this micro-batch belongs to. */
  learningRate: number;
  /** Optimizer steps taken so far. */
  optimizerSteps: number;
  /** Whether this micro-batch completed an optimizer step. */
  stepped: boolean;
  /**
   * Whether this micro-batch ended an accumulation whose optimizer step was skipped, because a
   * micro-batch loss or the gradient norm was not finite: the weights and the AdamW moments stay
   * as they were, the gradients are dropped and `optimizerSteps` does not advance.
   */
  skipped: boolean;
  /** The gradients' global norm before clipping, when `stepped` or `skipped`. */
  gradNorm: number;
  /** Images whose embeddings are cached. */
  cachedImages: number;
}

/** Trains a module's parameters that require grad (AdamW, cosine schedule) in C++. */
export interface NativeTrainer {
  /**
   * Forward, loss and backward for one micro-batch; an optimizer step every
   * `gradientAccumulation`. The trainer's calls run in the order they were made, so a step may be
   * called before the previous one resolved: it queues its device work behind it while the
   * previous loss is read back (train() keeps one step queued ahead). A step holds the module
   * exclusively while queueing (predictions on it wait); after the module's dispose() it rejects.
   */
  step(batch: TrainBatch): Promise<StepResult>;
  readonly optimizerSteps: number;
  readonly cachedImages: number;
  /** The trained parameters by name, float32 (the masters when computing in bf16). */
  weights(): Promise<Record<string, Tensor>>;
  /** The optimizer state and step counters (for resume), serialised as a libtorch archive. */
  stateBytes(): Promise<Uint8Array>;
  /** Loads a state saved from {@link stateBytes}; a bad file leaves the trainer as it was. */
  loadState(path: string): Promise<void>;
  /**
   * From now on, averages the gradients across `group`'s ranks at each optimizer step (the last
   * micro-batch's backward reduces the accumulated sum in fp32 buckets of up to `bucketBytes`,
   * overlapped with backward; earlier micro-batches accumulate locally). Call it between
   * optimizer steps, before any step is queued.
   */
  distribute(group: NativeProcessGroup, bucketBytes: number): void;
  /**
   * Releases the optimizer state and cached embeddings once the calls made before it are done
   * (without waiting on the JS thread); every later call throws.
   */
  dispose(): void;
}

/** Where and how a process joins a c10d process group (as torchrun's environment says). */
export interface ProcessGroupOptions {
  rank: number;
  worldSize: number;
  /** Host of rank 0, which serves the group's TCPStore at `masterPort`. */
  masterAddr: string;
  masterPort: number;
  backend: 'gloo' | 'nccl';
  /** Where the group's own tensors live: `cpu` for Gloo, this rank's `cuda:N` for NCCL. */
  device: string;
  /** Joining, and every collective, fails after this long. */
  timeoutMs: number;
}

/**
 * This process's membership in a c10d process group. Collectives must be called in the same
 * order on every rank, one at a time (ts/distributed/group.ts queues them).
 */
export interface NativeProcessGroup {
  readonly rank: number;
  readonly worldSize: number;
  readonly backend: string;
  /** The element-wise sum over ranks. */
  allreduceSum(values: Float64Array): Promise<Float64Array>;
  /** Every rank's `bytes` (the same length on every rank), concatenated in rank order. */
  allgatherBytes(bytes: Uint8Array): Promise<Uint8Array>;
  barrier(): Promise<void>;
  /** Leaves the group (collectives in flight finish first); every later call throws. */
  close(): void;
}

/** The addon's exports. */
export interface Binding {
  /** Loads a TorchScript file onto `device` ('cpu', 'cuda' or 'cuda:N') off the JS thread. */
  loadModule(path: string, device: string): Promise<NativeTorchModule>;
  /**
   * Encodes B same-sized images (each uint8 `[H, W, 3]`, interleaved RGB as decoded; batched and
   * laid out for the model off the JS thread) once and decodes every prompt set (a list of
   * prompt groups) from those embeddings, on the module's device, off the JS thread. The module follows
   * docs/model-interface.md. The images are read in place, not copied: their data must not change
   * until the promise settles.
   */
  predictMasks(
    module: NativeTorchModule,
    images: Array<Tensor<'uint8'> | TensorHandle>,
    promptSets: PromptTensors[][],
    options: NativePredictOptions & { hold: true },
  ): Promise<HeldPredictionSet[]>;
  predictMasks(
    module: NativeTorchModule,
    images: Array<Tensor<'uint8'> | TensorHandle>,
    promptSets: PromptTensors[][],
    options?: NativePredictOptions & { hold?: false },
  ): Promise<PredictionSet[]>;
  /**
   * The selection an automatic prompt set gets in {@link predictMasks}, on masks given as logits
   * at the image's size (`[N, H, W]`) with their predicted IoUs and images: each mask's stability
   * score and box (x0, y0, x1, y1: first and last column and row, inclusive; zeros when empty),
   * and which masks are kept. On the JS thread (for checks and small inputs).
   */
  selectAutoMasks(
    logits: Tensor<'float32'>,
    iou: Tensor<'float32'>,
    imageIndex: Tensor<'int64'>,
    filter: AutoMaskFilter,
  ): { stability: Tensor<'float32'>; boxes: Tensor<'float32'>; kept: Tensor<'uint8'> };
  /** A copy of `tensor` held in native memory, for another thread to take or read. */
  holdTensor(tensor: Tensor): TensorHandle;
  /** The held tensor, copied into this thread's memory; the handle is spent (taking it again throws). */
  takeTensor(handle: TensorHandle): Tensor;
  /** The held tensor, copied into this thread's memory; it stays held. */
  readTensor(handle: TensorHandle): Tensor;
  /**
   * Drops held tensors; spent and unknown handles are ignored, a non-handle (not a positive
   * integer) rejects them all.
   */
  releaseTensors(handles: TensorHandle[]): void;
  /** Tensors held now (for leak checks). */
  heldTensorCount(): number;
  /**
   * The threshold sweep's histograms (docs/metrics.md): bin r of `all` and `crack` counts the
   * pixels, and the ground-truth crack pixels, with p ≥ exactly the r lowest `thresholds`
   * (ascending; p widened to float64, NaN reaching none). The map is read in place.
   */
  thresholdHistograms(
    probabilities: TensorHandle | Tensor<'float32'>,
    groundTruth: Tensor<'uint8'>,
    thresholds: Float64Array,
  ): { all: Float64Array; crack: Float64Array };
  /**
   * Per skeleton pixel (non-zero), whether `other` has a non-zero pixel at one of `offsets`
   * ((dx, dy) pairs, inside the image) and whether `mask` is non-zero there; all read in place.
   */
  skeletonMatches(
    skeleton: Tensor<'uint8'>,
    other: Tensor<'uint8'>,
    mask: Tensor<'uint8'>,
    offsets: Int32Array,
  ): { pixels: number; matched: number; inMask: number };
  /** The Zhang–Suen skeleton (0/1) of a mask (foreground non-zero), read in place. */
  zhangSuenSkeleton(mask: Tensor<'uint8'>): Uint8Array;
  /** round-half-up(clamp(p, 0, 1) · (2^bits − 1)) per pixel (NaN: 0); the map is read in place. */
  quantizeProbabilities(
    probabilities: TensorHandle | Tensor<'float32'>,
    bits: 8 | 16,
  ): Uint8Array | Uint16Array;
  /** A trainer over the module's parameters that require grad at this moment. */
  createTrainer(module: NativeTorchModule, options: TrainerOptions): NativeTrainer;
  /** Joins a process group once every rank has (Gloo on the CPU, NCCL on CUDA). */
  joinProcessGroup(options: ProcessGroupOptions): Promise<NativeProcessGroup>;
  runtimeInfo(): RuntimeInfo;
  setThreads(threads: number): void;
  /** The CUDA caching allocator's counts for `device`; null for the CPU. */
  deviceMemory(device: string): DeviceMemory | null;
  /** Starts the peaks of {@link deviceMemory} afresh (nothing on the CPU). */
  resetPeakDeviceMemory(device: string): void;
  /** The addon's error codes by key: the same as ts/errors.ts's NATIVE_ERROR_CODES. */
  errorCodes: Record<string, string>;
}

/** Bytes held by libtorch's CUDA caching allocator: in tensors (allocated) and from the driver. */
export interface DeviceMemory {
  allocatedBytes: number;
  peakAllocatedBytes: number;
  reservedBytes: number;
  peakReservedBytes: number;
}

/** A mask as the addon reads it in place: its bytes as a uint8 [H, W] tensor. */
export function maskTensor({ width, height, data }: BinaryMask): Tensor<'uint8'> {
  return { data, shape: [height, width], dtype: 'uint8' };
}

/** A probability map as the addon's statistics take it: its handle if held, else its data. */
export function probabilityArg(map: ProbabilityMap | HeldPlane): TensorHandle | Tensor<'float32'> {
  return isHeld(map)
    ? map.handle
    : { data: map.data, shape: [map.height, map.width], dtype: 'float32' };
}

const packageRoot = fileURLToPath(new URL('..', import.meta.url));
const require = createRequire(import.meta.url);

/** A prebuilt binary and the libtorch it links, read from its file name (`torch-<flavour>-<version>`). */
export interface Prebuild {
  path: string;
  flavour: 'cpu' | 'cuda';
  torchVersion: string;
}

/** The libtorch tag of a prebuild's file name, e.g. `torch-cuda-2_11_0`. */
export function torchTag(flavour: string, torchVersion: string): string {
  return `torch-${flavour}-${torchVersion.replace(/[^0-9a-z]+/gi, '_')}`;
}

/** Prebuilds for this platform and Node-API, CUDA first unless CRACKSEG_TORCH_FLAVOUR says otherwise. */
export function findPrebuilds(root = packageRoot, env = process.env): Prebuild[] {
  const dir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
  if (!existsSync(dir)) return [];
  const nodeGypBuild = require('node-gyp-build') as {
    parseTags(file: string): { file: string } | undefined;
    matchTags(runtime: string, abi: string): (tags: unknown) => boolean;
  };
  const matches = nodeGypBuild.matchTags('node', process.versions.modules);
  const found: Prebuild[] = [];
  for (const file of readdirSync(dir).sort()) {
    const tags = nodeGypBuild.parseTags(file);
    const torch = /\.torch-(cpu|cuda)-([0-9a-z_]+)\./i.exec(file);
    if (!tags || !matches(tags) || !torch) continue;
    found.push({
      path: join(dir, file),
      flavour: torch[1] as 'cpu' | 'cuda',
      torchVersion: torch[2]!.replace(/_/g, '.'),
    });
  }
  const preferred = env.CRACKSEG_TORCH_FLAVOUR ?? 'cuda';
  return found.sort((a, b) => Number(b.flavour === preferred) - Number(a.flavour === preferred));
}

const buildHelp =
  'Build from source for the libtorch you have: `npm run build:native` (Debian: apt install ' +
  'libtorch-dev; another libtorch: set CMAKE_PREFIX_PATH or LIBTORCH, or CRACKSEG_PYTHON to a ' +
  'Python whose torch to use).';

/** The addon's exports and the file they came from. */
export interface LoadedBinding {
  binding: Binding;
  path: string;
}

/**
 * Loads the addon: the file `CRACKSEG_ADDON` names when set (the sanitizer build of
 * `npm run test:asan`, say; nothing else is tried), else `build/Release`, then the prebuilds; the
 * error says what each needed.
 */
export function loadBinding(root = packageRoot, env = process.env): LoadedBinding {
  if (env.CRACKSEG_ADDON) {
    const path = resolve(env.CRACKSEG_ADDON);
    try {
      return { binding: require(path) as Binding, path };
    } catch (err) {
      throw new Error(`crackseg: cannot load CRACKSEG_ADDON=${path}: ${(err as Error).message}`);
    }
  }
  const failures: string[] = [];
  const local = join(root, 'build', 'Release', 'crackseg.node');
  if (existsSync(local)) {
    try {
      return { binding: require(local) as Binding, path: local };
    } catch (err) {
      failures.push(`${local}: ${(err as Error).message}`);
    }
  }
  for (const prebuild of findPrebuilds(root)) {
    try {
      const candidate = require(prebuild.path) as Binding;
      // The file name's tag must be what the binary itself reports, or it is not that build.
      const { flavour, torchVersion } = candidate.runtimeInfo();
      if (torchTag(flavour, torchVersion) !== torchTag(prebuild.flavour, prebuild.torchVersion)) {
        throw new Error(`it reports libtorch ${torchVersion} (${flavour})`);
      }
      return { binding: candidate, path: prebuild.path };
    } catch (err) {
      failures.push(
        `${prebuild.path} needs libtorch ${prebuild.torchVersion} (${prebuild.flavour}) ` +
          `where it was built: ${(err as Error).message}`,
      );
    }
  }
  if (failures.length === 0)
    failures.push('no build/Release/crackseg.node and no prebuild for this platform');
  throw new Error(
    `crackseg: cannot load the native addon.\n  ${failures.join('\n  ')}\n${buildHelp}`,
  );
}

let loaded: LoadedBinding | undefined;

function loadOnce(): LoadedBinding {
  if (!loaded) {
    loaded = loadBinding();
    // libtorch's OpenMP default can be a single thread in containers: use every core unless
    // CRACKSEG_THREADS or OMP_NUM_THREADS says otherwise. Worker threads (which only take held
    // tensors and run pixel statistics) leave the process's setting alone.
    const threads =
      Number(process.env.CRACKSEG_THREADS) ||
      Number(process.env.OMP_NUM_THREADS) ||
      availableParallelism();
    if (isMainThread) loaded.binding.setThreads(threads);
  }
  return loaded;
}

/** The addon, loaded on first use. */
export function binding(): Binding {
  return loadOnce().binding;
}

/** The file the addon was loaded from (loading it if needed). */
export function bindingPath(): string {
  return loadOnce().path;
}
