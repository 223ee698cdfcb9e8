/** crackseg: LoRA fine-tuning and evaluation of SAM 2.1 for crack segmentation, over libtorch. */
export type {
  AutoMaskFilter,
  Dtype,
  DtypeArrays,
  ParameterInfo,
  Tensor,
  Value,
} from './binding.js';
export {
  deviceMemory,
  resetPeakDeviceMemory,
  runtimeInfo,
  setThreads,
  type DeviceMemory,
  type RuntimeInfo,
} from './runtime.js';
export { TorchModule, type Device, type LoadOptions } from './torch-module.js';
export { findPython, type PythonInfo } from './python.js';
export {
  defaultDevice,
  defaultPrecision,
  loadModel,
  PRECISION_DTYPE,
  type LoadModelOptions,
  type Precision,
  type SamModel,
} from './model/load.js';
export { readModelMetadata, MODEL_FORMAT, type ModelMetadata } from './model/metadata.js';
export {
  promptTensors,
  promptTensorGroups,
  toModelCoordinate,
  POINT_LABEL,
  type ImageSize,
  type PromptTensorGroup,
} from './model/prompt-tensors.js';
export {
  predict,
  predictBatch,
  sameSizeBatches,
  defaultBatchSize,
  type ImagePrediction,
  type LowResLogits,
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
export { train, type EpochRecord, type TrainProgress, type TrainResult } from './train/train.js';
export { TRAIN_DEFAULTS, LOSS_AND_OPTIMIZER, type TrainOptions } from './train/options.js';
export { TRAINING_FILES } from './train/resume.js';
export { readLastState, type LastCheckpointFiles } from './train/last-checkpoint.js';
export {
  applyAdapter,
  saveAdapter,
  trainedParameterNames,
  isLoraParameter,
  ADAPTER_FORMAT,
  type AdapterContents,
  type AdapterMetadata,
  type AppliedAdapter,
} from './model/adapter.js';
export {
  readSafetensors,
  writeSafetensors,
  encodeSafetensors,
  decodeSafetensors,
  type SafetensorsContent,
} from './model/safetensors.js';
export { DEFAULT_AUGMENT, type AugmentOptions } from './data/augment.js';
export { distributedEnv, type DistributedEnv } from './distributed/env.js';
export { DEFAULT_TIMEOUT_SECONDS, ProcessGroup } from './distributed/group.js';
export { launchWorkers, type LaunchOptions, type LaunchResult } from './distributed/launch.js';
export {
  demo,
  DEMO_TRAIN_EXTRA,
  type DemoOptions,
  type DemoResult,
  type DemoStage,
} from './demo.js';
export {
  exportModel,
  LORA_STRATEGIES,
  MODEL_CONFIGS,
  type ExportMetadata,
  type ExportOptions,
  type ExportResult,
  type LoraStrategy,
  type ModelConfig,
} from './model/export.js';
export {
  cacheDirectory,
  fetchOfficialCheckpoint,
  officialCheckpoint,
  OFFICIAL_CHECKPOINTS,
  type FetchCheckpointOptions,
  type FetchedCheckpoint,
  type OfficialCheckpoint,
} from './model/official-checkpoints.js';
export { downloadFile, type DownloadProgress, type DownloadResult } from './model/download.js';
export type { BinaryMask, ProbabilityMap, RgbImage } from './image.js';
export {
  AdapterError,
  CracksegError,
  DatasetError,
  DemoStoppedError,
  DownloadError,
  ERROR_CODES,
  errorCode,
  ModelMetadataError,
  NATIVE_ERROR_CODES,
  SafetensorsError,
  SavedPredictionError,
  type DownloadErrorCode,
  type ErrorCode,
} from './errors.js';
export {
  readDataset,
  readList,
  loadSample,
  DEFAULT_CONCURRENCY,
  type Dataset,
  type DatasetOptions,
  type Sample,
  type SkippedEntry,
} from './data/dataset.js';
export { parseListFile, type ListEntry } from './data/list-file.js';
export {
  decodeImage,
  decodeMask,
  maskCoding,
  MASK_RULES,
  type MaskCoding,
  type DecodeOptions,
  type MaskRule,
} from './data/decode.js';
export { DEFAULT_MAX_PIXELS } from './data/pixel-limit.js';
export {
  checkData,
  DEFAULT_CHECK_LISTS,
  type CheckFinding,
  type DataCheck,
  type ListReport,
} from './data/check.js';
export { fileSha256, runRecord, RUN_JSON, type RunRecord } from './run-record.js';
export {
  synthesizeDataset,
  SYNTH_DEFAULTS,
  type SynthOptions,
  type SynthSummary,
} from './synth/synthesize.js';
export {
  connectedComponents,
  componentsAtLeast,
  DEFAULT_MIN_AREA,
  type ComponentStats,
  type Components,
} from './vision/components.js';
export { zhangSuenSkeleton } from './vision/skeleton.js';
export {
  parsePromptConfig,
  parsePromptConfigs,
  promptConfigName,
  DEFAULT_EXPAND_RATIO,
  defaultAutoConfig,
  type AutoPromptConfig,
  type BoxPromptConfig,
  type PointPromptConfig,
  type PromptConfig,
} from './prompts/config.js';
export {
  autoPrompts,
  pointGrid,
  DEFAULT_AUTO_FILTER,
  DEFAULT_POINTS_PER_SIDE,
} from './prompts/auto.js';
export {
  buildPrompts,
  expandedBox,
  hasPrompts,
  type Box,
  type Point,
  type PointGroup,
  type PromptOptions,
  type PromptSet,
} from './prompts/prompts.js';
export {
  metricDefinition,
  MASK_METRICS,
  BEST_F_METRIC,
  DATASET_METRICS,
  ALL_METRICS,
  type MetricDirection,
  type MetricDefinition,
  type MaskMetricKey,
  type DatasetMetricKey,
} from './metrics/definitions.js';
export {
  ratio,
  fMeasure,
  pixelMetricsFromCounts,
  maskMetricsFromCounts,
  type ConfusionCounts,
  type SkeletonCounts,
  type PixelMetricKey,
} from './metrics/formulas.js';
export {
  thresholdCounts,
  fPerThreshold,
  bestF,
  addThresholdCounts,
  emptyThresholdCounts,
  THRESHOLD_GRID,
  type ThresholdCounts,
  type BestF,
} from './metrics/thresholds.js';
export {
  evaluateImage,
  confusionCounts,
  skeletonCounts,
  diskOffsets,
  DEFAULT_TOLERANCE_RADIUS,
  type ImageEvaluationOptions,
  type ImageEvaluation,
} from './metrics/image.js';
export {
  distribution,
  MetricAccumulator,
  type Distribution,
  type MetricAggregate,
  type MetricAggregates,
} from './metrics/accumulator.js';
export {
  assertSafeName,
  imageFileStem,
  relativePredictionPath,
  predictionPath,
  probabilityPath,
  encodeMaskPng,
  writeMaskPng,
  readMaskPng,
  writeProbabilityPng,
  encodeProbabilityPng,
  readProbabilityPng,
  PREDICTIONS_DIR,
  PROBABILITIES_DIR,
  type ProbabilityBitDepth,
} from './report/predictions.js';
export {
  csvField,
  csvLine,
  resultRow,
  RESULTS_CSV,
  RESULT_COLUMNS,
  type ResultRowInfo,
} from './report/csv.js';
export {
  errorOverlay,
  encodeRgbPng,
  renderFigure,
  escapeXml,
  OVERLAY_COLORS,
  DEFAULT_OVERLAY_ALPHA,
  MIN_PANEL_WIDTH,
  type FigureInput,
} from './report/figures.js';
export {
  renderVegaLite,
  svgToPng,
  histogramSvg,
  comparisonChartSvg,
  type ComparisonBar,
} from './report/plots.js';
export {
  readSummary,
  SUMMARY_JSON,
  type SkipRecord,
  type ExtremeExample,
  type EvaluationSummary,
  type SkipCategory,
} from './report/summary.js';
export {
  VISUALIZATIONS_DIR,
  PLOTS_DIR,
  DEFAULT_EXTREMES,
  ReportWriter,
  type ImageResult,
  type ReportWriterOptions,
  type FinishExtras,
} from './report/writer.js';
export {
  loadEvaluation,
  writeHtmlReport,
  renderHtmlReport,
  MAX_HTML_EXAMPLES,
  type LabelledEvaluation,
  type HtmlReportOptions,
} from './report/html.js';
