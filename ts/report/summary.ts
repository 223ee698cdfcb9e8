/**
 * `evaluation_summary.json`: the aggregates and bookkeeping of one prompt config's evaluation.
 * Written by the report writer, read back by the HTML report.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Distribution, MetricAggregate } from '../metrics/accumulator.js';
import type { MaskMetricKey, MetricDefinition } from '../metrics/definitions.js';
import type { ConfusionCounts, SkeletonCounts } from '../metrics/formulas.js';
import type { BestF } from '../metrics/thresholds.js';
import type { SkipCategory, SkippedEntry } from '../data/dataset.js';
import type { RunRecord } from '../run-record.js';

export type { SkipCategory };

/** File name of the summary inside a prompt config's folder. */
export const SUMMARY_JSON = 'evaluation_summary.json';

/** An image (or list line) left out of an evaluation: id, list file, line, path, category, message. */
export type SkipRecord = SkippedEntry;

/** A best or worst example by IoU. */
export interface ExtremeExample {
  imageId: string;
  iou: number;
  /** The 4-panel figure, relative to the prompt config's folder; null without visualizations. */
  figure: string | null;
}

export interface EvaluationSummary {
  schemaVersion: 1;
  /** False while the run is in progress (or if it was aborted): counts cover what finished. */
  complete: boolean;
  promptConfig: string;
  startedAt: string;
  updatedAt: string;
  /** Caller-provided: prompt config details, model metadata, dataset, … */
  metadata: Record<string, unknown>;
  /** What the run was (settings, model SHA-256, versions, device); null when not given. */
  run: RunRecord | null;
  /** Caller-provided at finish, e.g. model load and wall times. */
  timings: Record<string, unknown>;
  counts: {
    /** Evaluated + skipped (distinct list lines). */
    images: number;
    evaluated: number;
    emptyGroundTruth: number;
    emptyPrediction: number;
    /** Evaluated images that had no prompt (their prediction is whatever the caller passed). */
    noPrompt: number;
    skipped: number;
    /** Skip records per {@link SkipCategory}. */
    skippedByReason: Partial<Record<SkipCategory, number>>;
  };
  skipped: SkipRecord[];
  /** Names, labels and directions of the metrics below, from the metric table. */
  definitions: MetricDefinition[];
  toleranceRadius: number;
  metrics: Record<MaskMetricKey, MetricAggregate>;
  pooledCounts: { confusion: ConfusionCounts; skeleton: SkeletonCounts };
  /** ODS/OIS over the images that had probability maps; null when none had. */
  sweep: {
    images: number;
    thresholds: { first: number; last: number; step: number };
    ods: BestF;
    ois: number;
    bestF: Distribution;
  } | null;
  /**
   * Per image: the wall time of its batch's device call (one encoder pass plus the decoding of
   * every prompt config of the run) divided by the batch's images; the same for every config of a
   * run, 0 when re-scoring. Not a per-config decode time.
   */
  batchMsPerImage: Distribution & { total: number };
  /** Paths relative to the prompt config's folder. */
  files: {
    csv: string;
    predictions: string;
    probabilities: string | null;
    visualizations: string | null;
    /** Histogram PNG per metric key. */
    histograms: Record<string, string>;
  };
  /**
   * Best and worst by IoU over the images with cracks; crack-free images (empty ground truth,
   * IoU 1 by convention when nothing is predicted, else 0) are kept apart in `crackFree`, worst
   * first, so they never fill the best rows. Their count is `counts.emptyGroundTruth`.
   */
  extremes: { best: ExtremeExample[]; worst: ExtremeExample[]; crackFree: ExtremeExample[] };
}

/** Reads `<configDir>/evaluation_summary.json`. */
export async function readSummary(configDir: string): Promise<EvaluationSummary> {
  const summary = JSON.parse(
    await readFile(join(configDir, SUMMARY_JSON), 'utf8'),
  ) as EvaluationSummary;
  const file = join(configDir, SUMMARY_JSON);
  if (summary?.schemaVersion !== 1) throw new Error(`${file}: unknown schema version`);
  const complete =
    typeof summary.promptConfig === 'string' &&
    [summary.counts, summary.metrics, summary.extremes, summary.files].every(
      (part) => typeof part === 'object' && part !== null,
    );
  if (!complete) throw new Error(`${file}: not an evaluation summary`);
  return summary;
}
