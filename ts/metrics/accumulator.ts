/**
 * Streaming aggregation: per-image evaluations go in one at a time, dataset aggregates come out.
 * Only numbers are kept (one value per image per metric for the median, plus summed counts),
 * never masks.
 */
import { BEST_F_METRIC, MASK_METRICS, type MaskMetricKey } from './definitions.js';
import { maskMetricsFromCounts, type ConfusionCounts, type SkeletonCounts } from './formulas.js';
import type { ImageEvaluation } from './image.js';
import {
  addThresholdCounts,
  bestF,
  emptyThresholdCounts,
  type BestF,
  type ThresholdCounts,
} from './thresholds.js';

/** Statistics of one metric over images; null when there were no images. */
export interface Distribution {
  mean: number | null;
  /** Population standard deviation (ddof = 0, as numpy's default). */
  std: number | null;
  /** Median; the mean of the two middle values for an even count (as numpy). */
  median: number | null;
  min: number | null;
  max: number | null;
}

/** A mask metric's distribution plus its pooled value from counts summed over the dataset. */
export interface MetricAggregate extends Distribution {
  pooled: number | null;
}

export interface MetricAggregates {
  images: number;
  metrics: Record<MaskMetricKey, MetricAggregate>;
  confusion: ConfusionCounts;
  skeleton: SkeletonCounts;
  /** Probability-map metrics over the images that had a probability map; null if none had. */
  sweep: {
    images: number;
    /** Pooled counts at the best threshold: ODS and that threshold. */
    ods: BestF;
    /** Mean of each image's best F. */
    ois: number;
    /** The distribution of the per-image best F (its mean is `ois`). */
    bestF: Distribution;
  } | null;
}

/** Collects {@link ImageEvaluation}s and yields {@link MetricAggregates}. */
export class MetricAccumulator {
  private readonly values = new Map<MaskMetricKey, number[]>(MASK_METRICS.map((m) => [m.key, []]));
  private readonly bestFValues: number[] = [];
  private readonly confusion: ConfusionCounts = {
    truePositives: 0,
    falsePositives: 0,
    falseNegatives: 0,
    trueNegatives: 0,
  };
  private readonly skeleton: SkeletonCounts = {
    predictionSkeletonPixels: 0,
    groundTruthSkeletonPixels: 0,
    predictionSkeletonMatched: 0,
    groundTruthSkeletonMatched: 0,
    predictionSkeletonInGroundTruth: 0,
    groundTruthSkeletonInPrediction: 0,
  };
  private readonly sweepCounts: ThresholdCounts = emptyThresholdCounts();
  private images = 0;

  /** Number of evaluations added so far. */
  get count(): number {
    return this.images;
  }

  /** The per-image values of one metric so far, in the order added (for histograms). */
  perImageValues(key: MaskMetricKey | typeof BEST_F_METRIC.key): readonly number[] {
    return key === BEST_F_METRIC.key ? this.bestFValues : this.values.get(key)!;
  }

  add(evaluation: ImageEvaluation): void {
    this.images++;
    for (const { key } of MASK_METRICS) this.values.get(key)!.push(evaluation.metrics[key]);
    addInto(this.confusion, evaluation.confusion);
    addInto(this.skeleton, evaluation.skeleton);
    if (evaluation.sweep) {
      addThresholdCounts(this.sweepCounts, evaluation.sweep.counts);
      this.bestFValues.push(evaluation.sweep.best.f);
    }
  }

  /** The aggregates of everything added so far (can be called repeatedly, e.g. for checkpoints). */
  result(): MetricAggregates {
    const pooled = this.images > 0 ? maskMetricsFromCounts(this.confusion, this.skeleton) : null;
    const metrics = Object.fromEntries(
      MASK_METRICS.map(({ key }) => [
        key,
        { ...distribution(this.values.get(key)!), pooled: pooled ? pooled[key] : null },
      ]),
    ) as Record<MaskMetricKey, MetricAggregate>;
    const bestFDistribution = distribution(this.bestFValues);
    return {
      images: this.images,
      metrics,
      confusion: { ...this.confusion },
      skeleton: { ...this.skeleton },
      sweep:
        this.bestFValues.length === 0
          ? null
          : {
              images: this.bestFValues.length,
              ods: bestF(this.sweepCounts),
              ois: bestFDistribution.mean!,
              bestF: bestFDistribution,
            },
    };
  }
}

/** Mean, population std, median, min and max of `values`. */
export function distribution(values: readonly number[]): Distribution {
  const n = values.length;
  if (n === 0) return { mean: null, std: null, median: null, min: null, max: null };
  const sorted = Float64Array.from(values).sort();
  let sum = 0;
  for (const v of sorted) sum += v;
  const mean = sum / n;
  let squares = 0;
  for (const v of sorted) squares += (v - mean) * (v - mean);
  const middle = n >> 1;
  return {
    mean,
    std: Math.sqrt(squares / n),
    median: n % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2,
    min: sorted[0]!,
    max: sorted[n - 1]!,
  };
}

function addInto<T extends object>(total: T, part: T): void {
  const target = total as Record<string, number>;
  for (const [key, value] of Object.entries(part) as Array<[string, number]>) target[key]! += value;
}
