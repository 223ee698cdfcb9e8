/** crackseg: LoRA fine-tuning and evaluation of SAM 2.1 for crack segmentation, over libtorch. */
export type { Dtype, DtypeArrays, ParameterInfo, Tensor, Value } from './binding.js';
export { runtimeInfo, setThreads, type RuntimeInfo } from './runtime.js';
export { TorchModule, type Device, type LoadOptions } from './torch-module.js';
export { findPython, type PythonInfo } from './python.js';
