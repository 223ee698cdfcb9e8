/**
 * The per-image results table, `evaluation_results.csv`: RFC 4180 quoting, one row per image per
 * prompt config. Metric columns come from the metric table in ts/metrics/definitions.ts.
 */
import { BEST_F_METRIC, MASK_METRICS } from '../metrics/definitions.js';
import type { ImageEvaluation } from '../metrics/image.js';

/** File name of the per-image table inside a prompt config's folder. */
export const RESULTS_CSV = 'evaluation_results.csv';

/** What a row says about an image besides its evaluation. */
export interface ResultRowInfo {
  imageId: string;
  imagePath: string;
  groundTruthPath: string;
  /** Relative to the prompt config's folder. */
  predictionPath: string;
  promptConfig: string;
  promptCount: number;
  /** The batch's device time divided by its images (see `EvaluationSummary.batchMsPerImage`). */
  batchMsPerImage: number;
}

/** The header, in column order. */
export const RESULT_COLUMNS: readonly string[] = [
  'image_id',
  'image_path',
  'ground_truth_path',
  'prediction_path',
  'prompt_config',
  'num_prompts',
  ...MASK_METRICS.map((m) => m.column),
  BEST_F_METRIC.column,
  'best_threshold',
  'true_positives',
  'false_positives',
  'false_negatives',
  'ground_truth_pixels',
  'predicted_pixels',
  'batch_ms_per_image',
];

/**
 * Text that a spreadsheet would run as a formula: a cell starting with `=`, `+`, `-`, `@`, tab or
 * CR (OWASP's "CSV Injection" list).
 */
const FORMULA_START = /^[=+\-@\t\r]/;

/**
 * One field: quoted when it holds a comma, quote, CR/LF or edge spaces; quotes doubled. Text that
 * starts like a formula is neutralised as OWASP advises: prefixed with `'` and quoted, so a
 * spreadsheet shows it as text. Numbers are written as numbers (`-0.5` stays `-0.5`).
 */
export function csvField(value: string | number | null | undefined): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : '';
  const text = FORMULA_START.test(value) ? `'${value}` : value;
  return text !== value || /[",\r\n]|^\s|\s$/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** One line, newline-terminated. */
export function csvLine(fields: ReadonlyArray<string | number | null | undefined>): string {
  return fields.map(csvField).join(',') + '\n';
}

/** The row for one evaluated image, in {@link RESULT_COLUMNS} order (full-precision numbers). */
export function resultRow(info: ResultRowInfo, evaluation: ImageEvaluation): string {
  const { confusion } = evaluation;
  return csvLine([
    info.imageId,
    info.imagePath,
    info.groundTruthPath,
    info.predictionPath,
    info.promptConfig,
    info.promptCount,
    ...MASK_METRICS.map((m) => evaluation.metrics[m.key]),
    evaluation.sweep?.best.f,
    evaluation.sweep?.best.threshold,
    confusion.truePositives,
    confusion.falsePositives,
    confusion.falseNegatives,
    confusion.truePositives + confusion.falseNegatives,
    confusion.truePositives + confusion.falsePositives,
    info.batchMsPerImage,
  ]);
}
