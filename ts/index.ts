/** crackseg: LoRA fine-tuning and evaluation of SAM 2.1 for crack segmentation, over libtorch. */
export type { Dtype, DtypeArrays, ParameterInfo, Tensor, Value } from './binding.js';
export { runtimeInfo, setThreads, type RuntimeInfo } from './runtime.js';
export { TorchModule, type Device, type LoadOptions } from './torch-module.js';
export { findPython, type PythonInfo } from './python.js';
export { loadModel, defaultDevice, type LoadModelOptions, type SamModel } from './model/load.js';
export { readModelMetadata, MODEL_FORMAT, type ModelMetadata } from './model/metadata.js';
export {
  promptTensors,
  toModelCoordinate,
  POINT_LABEL,
  type ImageSize,
} from './model/prompt-tensors.js';
export {
  predict,
  predictBatch,
  DEFAULT_BATCH_SIZE,
  type ImagePrediction,
  type PredictOptions,
} from './predict.js';
export {
  evaluate,
  DEFAULT_NUM_VIS,
  DEFAULT_SEED,
  REPORT_HTML,
  type ConfigResult,
  type EvaluateOptions,
  type EvaluationProgress,
  type EvaluationResult,
  type SkipOptions,
} from './evaluate/evaluate.js';
export {
  train,
  TRAIN_DEFAULTS,
  LOSS_AND_OPTIMIZER,
  TRAINING_FILES,
  type EpochRecord,
  type TrainOptions,
  type TrainProgress,
  type TrainResult,
} from './train/train.js';
export {
  applyAdapter,
  saveAdapter,
  trainedParameterNames,
  isLoraParameter,
  ADAPTER_FORMAT,
  type AdapterContents,
  type AdapterMetadata,
  type AppliedAdapter,
} from './train/adapter.js';
export {
  readSafetensors,
  writeSafetensors,
  encodeSafetensors,
  decodeSafetensors,
  SafetensorsError,
  type SafetensorsContent,
} from './train/safetensors.js';
export { DEFAULT_AUGMENT, type AugmentOptions } from './train/augment.js';
export {
  demo,
  DEMO_TRAIN_EXTRA,
  type DemoOptions,
  type DemoResult,
  type DemoStage,
} from './demo.js';
