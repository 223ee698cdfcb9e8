/** Crack-segmentation metrics: per-image evaluation, streaming aggregation, the metric table. */
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
} from './definitions.js';
export {
  ratio,
  fMeasure,
  pixelMetricsFromCounts,
  maskMetricsFromCounts,
  type ConfusionCounts,
  type SkeletonCounts,
  type PixelMetricKey,
} from './formulas.js';
export {
  thresholdCounts,
  fPerThreshold,
  bestF,
  addThresholdCounts,
  emptyThresholdCounts,
  THRESHOLD_GRID,
  type ThresholdCounts,
  type BestF,
} from './thresholds.js';
export {
  evaluateImage,
  confusionCounts,
  skeletonCounts,
  diskOffsets,
  DEFAULT_TOLERANCE_RADIUS,
  type ImageEvaluationOptions,
  type ImageEvaluation,
} from './image.js';
export {
  distribution,
  MetricAccumulator,
  type Distribution,
  type MetricAggregate,
  type MetricAggregates,
} from './accumulator.js';
