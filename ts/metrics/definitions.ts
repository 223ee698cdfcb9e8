/**
 * The one table of metric definitions. CSV columns, summary JSON keys, plot titles and the HTML
 * report all read names and labels from here, so a metric is added or renamed in one place.
 * Formulas and edge-case conventions are in docs/metrics.md.
 */

/** Which way a metric improves. Every quality metric here lies in [0, 1]. */
export type MetricDirection = 'higher-is-better' | 'lower-is-better';

export interface MetricDefinition<Key extends string = string> {
  /** Identifier in code and in the summary JSON. */
  key: Key;
  /** CSV column name and file stem of the metric's plot. */
  column: string;
  /** Short label for tables and plot axes. */
  label: string;
  /** One line saying what it measures. */
  description: string;
  direction: MetricDirection;
}

/**
 * Per-image metrics computed from a binary prediction and its ground truth. Each is aggregated as
 * mean, std, median over images and pooled over the dataset (from summed counts).
 */
export const MASK_METRICS = [
  {
    key: 'iou',
    column: 'iou',
    label: 'IoU',
    description: 'Intersection over union of predicted and ground-truth crack pixels',
    direction: 'higher-is-better',
  },
  {
    key: 'dice',
    column: 'dice',
    label: 'Dice',
    description: 'Dice coefficient (2·TP / (2·TP + FP + FN))',
    direction: 'higher-is-better',
  },
  {
    key: 'precision',
    column: 'precision',
    label: 'Precision',
    description: 'Share of predicted crack pixels that are ground-truth crack',
    direction: 'higher-is-better',
  },
  {
    key: 'recall',
    column: 'recall',
    label: 'Recall',
    description: 'Share of ground-truth crack pixels that are predicted',
    direction: 'higher-is-better',
  },
  {
    key: 'f1',
    column: 'f1',
    label: 'F1',
    description: 'Harmonic mean of precision and recall',
    direction: 'higher-is-better',
  },
  {
    key: 'skeletonIou',
    column: 'skeleton_iou',
    label: 'Skeleton IoU',
    description: 'IoU of the Zhang–Suen skeletons, matched within a tolerance radius',
    direction: 'higher-is-better',
  },
  {
    key: 'clDice',
    column: 'cldice',
    label: 'clDice',
    description: 'Centerline Dice (Shit et al. 2021): skeleton-in-mask precision and sensitivity',
    direction: 'higher-is-better',
  },
] as const satisfies readonly MetricDefinition[];

export type MaskMetricKey = (typeof MASK_METRICS)[number]['key'];

/**
 * The per-image metric computed from a probability map: the image's best F over the threshold
 * grid. Its mean over images is OIS; it has no pooled form.
 */
export const BEST_F_METRIC = {
  key: 'bestF',
  column: 'best_f',
  label: 'Image-best F',
  description: 'Best F over the threshold grid for this image (its mean is OIS)',
  direction: 'higher-is-better',
} as const satisfies MetricDefinition;

/** Dataset-level metrics from probability maps over the threshold grid. */
export const DATASET_METRICS = [
  {
    key: 'ods',
    column: 'ods',
    label: 'ODS F',
    description: 'Best F at one threshold fixed for the whole dataset (counts pooled)',
    direction: 'higher-is-better',
  },
  {
    key: 'ois',
    column: 'ois',
    label: 'OIS F',
    description: 'Mean over images of each image’s best F',
    direction: 'higher-is-better',
  },
] as const satisfies readonly MetricDefinition[];

export type DatasetMetricKey = (typeof DATASET_METRICS)[number]['key'];

/** Every metric of the table, for look-ups by key. */
export const ALL_METRICS: readonly MetricDefinition[] = [
  ...MASK_METRICS,
  BEST_F_METRIC,
  ...DATASET_METRICS,
];

/** The definition of `key`; throws for an unknown key so a typo fails loudly. */
export function metricDefinition(key: string): MetricDefinition {
  const found = ALL_METRICS.find((m) => m.key === key);
  if (!found) throw new Error(`Unknown metric "${key}"`);
  return found;
}
