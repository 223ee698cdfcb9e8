/**
 * The streaming report writer the evaluator drives, one prompt config at a time:
 *
 *   const w = await ReportWriter.open(outDir, 'bbox_2pts', { metadata });
 *   await w.add(result);   // per scored image: an ImageResult, its `evaluation` included
 *   w.skip(record);        // per image left out: a SkipRecord ({ id, listFile, line, …, reason })
 *   const summary = await w.finish({ timings });
 *
 * Everything lands in `<outDir>/<promptConfig>/`. Every file is written atomically; the CSV and a
 * `complete: false` summary are rewritten every `flushEvery` rows (or `flushIntervalMs`), so an
 * aborted run leaves valid files covering what finished (the images since the last flush aside).
 * Only numbers are kept per image — plus, with `visualizations: 'extremes'`, the inputs of the
 * current best and worst few.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { BinaryMask, ProbabilityMap, RgbImage } from '../image.js';
import { MetricAccumulator, distribution } from '../metrics/accumulator.js';
import { ALL_METRICS, BEST_F_METRIC, MASK_METRICS } from '../metrics/definitions.js';
import { DEFAULT_TOLERANCE_RADIUS, type ImageEvaluation } from '../metrics/image.js';
import { THRESHOLD_GRID } from '../metrics/thresholds.js';
import type { RunRecord } from '../run-record.js';
import { writeFileAtomic } from '../util/atomic.js';
import { RESULTS_CSV, RESULT_COLUMNS, csvLine, resultRow } from './csv.js';
import { encodeRgbPng, errorOverlay, renderFigure } from './figures.js';
import { histogramSvg, svgToPng } from './plots.js';
import {
  PREDICTIONS_DIR,
  PROBABILITIES_DIR,
  assertSafeName,
  imageFileStem,
  predictionPath,
  probabilityPath,
  readMaskPng,
  relativePredictionPath,
  writeMaskPng,
  writeProbabilityPng,
  type ProbabilityBitDepth,
} from './predictions.js';
import {
  SUMMARY_JSON,
  type EvaluationSummary,
  type ExtremeExample,
  type SkipRecord,
} from './summary.js';

/** Folder of overlays and figures inside a prompt config's folder. */
export const VISUALIZATIONS_DIR = 'visualizations';
/** Folder of metric histograms inside a prompt config's folder. */
export const PLOTS_DIR = 'plots';
/** Best and worst examples kept per config unless told otherwise. */
export const DEFAULT_EXTREMES = 5;
/** Spacing of the ODS/OIS threshold grid, as recorded in the summary. */
const THRESHOLD_STEP = Number((THRESHOLD_GRID[1]! - THRESHOLD_GRID[0]!).toFixed(12));

/** One evaluated image, as the evaluator hands it over. */
export interface ImageResult {
  imageId: string;
  imagePath: string;
  groundTruthPath: string;
  promptCount: number;
  /**
   * Wall time of the device call that predicted the image's batch (one encoder pass and the
   * decoding of every prompt config of the run) divided by the batch's images; 0 when re-scoring.
   */
  batchMsPerImage: number;
  /** Needed unless `saved`; with `visualizations: 'all'`, always. */
  prediction?: BinaryMask;
  /** Needed for figures unless `loadInputs` can read it. */
  groundTruth?: BinaryMask;
  /** Needed for figures (`visualizations` other than 'none') unless `loadInputs` can read it. */
  image?: RgbImage;
  /** Saved when `saveProbabilities` is set (unless `saved`). */
  probabilities?: ProbabilityMap;
  /** The image's scores, from `evaluateImage` (the evaluator's scoring threads run it). */
  evaluation: ImageEvaluation;
  /**
   * The prediction's PNGs are already at {@link predictionPath} (and {@link probabilityPath} with
   * `saveProbabilities`), written atomically by whoever scored it (a worker thread): not again.
   */
  saved?: boolean;
}

/**
 * What an image adds to the report once its files exist: its row and scores, no pixels (what a
 * rank of a sharded evaluation hands to rank 0).
 */
export type ImageRecord = Omit<
  ImageResult,
  'prediction' | 'groundTruth' | 'image' | 'probabilities' | 'saved'
>;

export interface ReportWriterOptions {
  /**
   * 'all': overlay and figure for every image; 'extremes': overlays and figures only for the best
   * and worst `extremes` images by IoU, rendered at finish; 'none'. Default 'all'.
   */
  visualizations?: 'all' | 'extremes' | 'none';
  /** How many best and worst examples to keep (default {@link DEFAULT_EXTREMES}). */
  extremes?: number;
  /** Save probability maps as 8- or 16-bit PNGs for re-scoring; default: not saved. */
  saveProbabilities?: ProbabilityBitDepth | false;
  /** Skeleton matching radius the evaluations were made with, recorded in the summary (default 2). */
  toleranceRadius?: number;
  /** Rewrite the CSV and partial summary after this many new rows (default 25). */
  flushEvery?: number;
  /** …or when this long has passed since the last rewrite (default 10 000 ms). */
  flushIntervalMs?: number;
  /** Figure panels wider than this are scaled down (default 480). */
  maxPanelWidth?: number;
  /** Stored in the summary as is: prompt config details, model, dataset, … (JSON-serialisable). */
  metadata?: Record<string, unknown>;
  /** The folder under `outDir` (default: the prompt config's name). */
  folder?: string;
  /** What the run was (settings, model hash, versions, device): the summary's `run`. */
  run?: RunRecord;
  /**
   * Reads an image and its ground truth again, for the figure of an extreme that was added
   * without them (`visualizations: 'extremes'`): drawn at finish, so they need not be kept.
   */
  loadInputs?: (imageId: string) => Promise<{ image: RgbImage; groundTruth: BinaryMask }>;
  /**
   * One rank's share of a sharded evaluation (docs/distributed.md): {@link add} writes the
   * image's files and keeps its {@link ImageRecord} ({@link records}); this writer writes no CSV,
   * summary, histogram or extreme's figure and is not finished. Rank 0's writer {@link record}s
   * every rank's records in list order instead.
   */
  shard?: boolean;
}

/** What the caller adds at the end. */
export interface FinishExtras {
  timings?: Record<string, unknown>;
  metadata?: Record<string, unknown>;
  /** False when the run stopped early (aborted or failed): the summary says it is partial. */
  complete?: boolean;
}

interface Candidate extends ExtremeExample {
  /** Held only with `visualizations: 'extremes'`, to draw the figure at finish. */
  inputs?: {
    /** Absent when added without: read again through `loadInputs` for the figure. */
    image?: RgbImage;
    /** Absent when it was saved by its scorer: read back from its file for the figure. */
    prediction?: BinaryMask;
    groundTruth?: BinaryMask;
    title: string;
  };
  metrics: ImageEvaluation['metrics'];
}

export class ReportWriter {
  private readonly accumulator = new MetricAccumulator();
  private readonly rows: string[] = [];
  private readonly skipped: SkipRecord[] = [];
  private readonly batchMs: number[] = [];
  private readonly best: Candidate[] = [];
  private readonly worst: Candidate[] = [];
  private readonly crackFree: Candidate[] = [];
  private readonly startedAt = new Date();
  private readonly options: Required<
    Omit<ReportWriterOptions, 'metadata' | 'folder' | 'loadInputs' | 'run' | 'shard'>
  >;
  /** A shard's records, in the order added; null unless `shard`. */
  private readonly shardRecords: ImageRecord[] | null;
  private readonly loadInputs: ReportWriterOptions['loadInputs'];
  private readonly run: RunRecord | null;
  private metadata: Record<string, unknown>;
  private emptyGroundTruth = 0;
  private emptyPrediction = 0;
  private noPrompt = 0;
  private rowsAtLastFlush = 0;
  private lastFlush = Date.now();
  private writes: Promise<void> = Promise.resolve();
  private readonly inFlight = new Set<Promise<ImageEvaluation>>();
  private finished = false;

  private constructor(
    /** `<outDir>/<promptConfig>`. */
    readonly configDir: string,
    readonly promptConfig: string,
    options: ReportWriterOptions,
  ) {
    this.options = {
      visualizations: options.visualizations ?? 'all',
      extremes: options.extremes ?? DEFAULT_EXTREMES,
      saveProbabilities: options.saveProbabilities ?? false,
      toleranceRadius: options.toleranceRadius ?? DEFAULT_TOLERANCE_RADIUS,
      flushEvery: options.flushEvery ?? 25,
      flushIntervalMs: options.flushIntervalMs ?? 10_000,
      maxPanelWidth: options.maxPanelWidth ?? 480,
    };
    this.loadInputs = options.loadInputs;
    this.shardRecords = options.shard ? [] : null;
    this.run = options.run ?? null;
    this.metadata = { ...options.metadata };
  }

  /**
   * Creates `<outDir>/<folder>/` and writes a header-only CSV and an empty summary (a shard's
   * writer: the folder only).
   */
  static async open(
    outDir: string,
    promptConfig: string,
    options: ReportWriterOptions = {},
  ): Promise<ReportWriter> {
    const folder = options.folder ?? promptConfig;
    assertSafeName(folder, 'Report folder name');
    const writer = new ReportWriter(join(outDir, folder), promptConfig, options);
    await mkdir(join(writer.configDir, PREDICTIONS_DIR), { recursive: true });
    if (!options.shard) await writer.flush(false);
    return writer;
  }

  /** Whether {@link add} needs every image's prediction even when it was saved (a figure each). */
  get drawsEveryImage(): boolean {
    return this.options.visualizations === 'all';
  }

  /**
   * Saves the prediction (unless `saved`) and figures, adds the image's row and scores.
   * Calls may overlap; rows appear in completion order.
   */
  async add(result: ImageResult): Promise<ImageEvaluation> {
    this.assertOpen();
    const work = this.addNow(result);
    this.inFlight.add(work);
    try {
      return await work;
    } finally {
      this.inFlight.delete(work);
    }
  }

  /** A shard's records so far (`shard` writers only). */
  records(): readonly ImageRecord[] {
    if (!this.shardRecords) throw new Error('records() is for the writers of a shard');
    return this.shardRecords;
  }

  /**
   * Adds the row and scores of an image whose files are written already (by whichever rank
   * predicted it): as {@link add} with `saved` and nothing to draw.
   */
  async record(record: ImageRecord): Promise<void> {
    this.assertOpen();
    await this.recordNow(record);
  }

  private async addNow(result: ImageResult): Promise<ImageEvaluation> {
    const { evaluation } = result;
    const title = figureTitle(result.imageId, this.promptConfig, result.promptCount);

    const files: Array<Promise<void>> = [];
    if (!result.saved) {
      files.push(
        writeMaskPng(predictionPath(this.configDir, result.imageId), requirePrediction(result)),
      );
      if (this.options.saveProbabilities && result.probabilities) {
        const path = probabilityPath(this.configDir, result.imageId);
        files.push(writeProbabilityPng(path, result.probabilities, this.options.saveProbabilities));
      }
    }
    if (this.options.visualizations === 'all') {
      const image = requireImage(result);
      const prediction = requirePrediction(result);
      const groundTruth = requireGroundTruth(result);
      const overlay = errorOverlay(image, prediction, groundTruth);
      files.push(
        encodeRgbPng(overlay).then((png) =>
          writeFileAtomic(this.visualizationPath(result.imageId, 'overlay'), png),
        ),
        renderFigure({
          image,
          overlay,
          prediction,
          groundTruth,
          title,
          metrics: evaluation.metrics,
          maxPanelWidth: this.options.maxPanelWidth,
        }).then((png) => writeFileAtomic(this.visualizationPath(result.imageId, 'figure'), png)),
      );
    }
    // The row is recorded only once its files exist, so the CSV never points at missing files.
    await Promise.all(files);
    if (this.shardRecords) {
      this.shardRecords.push({
        imageId: result.imageId,
        imagePath: result.imagePath,
        groundTruthPath: result.groundTruthPath,
        promptCount: result.promptCount,
        batchMsPerImage: result.batchMsPerImage,
        evaluation,
      });
    } else {
      await this.recordNow(result);
    }
    return evaluation;
  }

  /** The bookkeeping of {@link add}: row, scores, extremes, and a flush when one is due. */
  private async recordNow(result: ImageResult): Promise<void> {
    const { evaluation } = result;
    this.accumulator.add(evaluation);
    this.batchMs.push(result.batchMsPerImage);
    const { confusion } = evaluation;
    if (confusion.truePositives + confusion.falseNegatives === 0) this.emptyGroundTruth++;
    if (confusion.truePositives + confusion.falsePositives === 0) this.emptyPrediction++;
    if (result.promptCount === 0) this.noPrompt++;
    this.rows.push(
      resultRow(
        {
          imageId: result.imageId,
          imagePath: result.imagePath,
          groundTruthPath: result.groundTruthPath,
          predictionPath: relativePredictionPath(result.imageId),
          promptConfig: this.promptConfig,
          promptCount: result.promptCount,
          batchMsPerImage: result.batchMsPerImage,
        },
        evaluation,
      ),
    );
    const title = figureTitle(result.imageId, this.promptConfig, result.promptCount);
    this.considerExtreme(result, evaluation, title);

    const due =
      this.rows.length - this.rowsAtLastFlush >= this.options.flushEvery ||
      Date.now() - this.lastFlush >= this.options.flushIntervalMs;
    if (due) await this.flush(false);
  }

  /**
   * Records an image that was not evaluated: where it came from, the full message and its
   * category (the summary counts skips per category).
   */
  skip(record: SkipRecord): void {
    this.assertOpen();
    this.skipped.push({ ...record });
  }

  /**
   * Renders remaining figures and the histograms, then writes the final CSV and the summary
   * (`complete: true` unless `extras.complete` is false). Returns the summary.
   */
  async finish(extras: FinishExtras = {}): Promise<EvaluationSummary> {
    this.assertOpen();
    this.finished = true;
    await Promise.allSettled([...this.inFlight]);
    this.metadata = { ...this.metadata, ...extras.metadata };
    if (this.options.visualizations === 'extremes') await this.renderExtremeFigures();
    const histograms = await this.writeHistograms();
    return this.flush(extras.complete ?? true, histograms, extras.timings ?? {});
  }

  /** The summary of what has been added so far. */
  summary(
    complete = false,
    histograms: Record<string, string> = {},
    timings: Record<string, unknown> = {},
  ): EvaluationSummary {
    const aggregates = this.accumulator.result();
    const skippedByReason: Record<string, number> = {};
    for (const { category } of this.skipped)
      skippedByReason[category] = (skippedByReason[category] ?? 0) + 1;
    const total = this.batchMs.reduce((sum, ms) => sum + ms, 0);
    const figures = this.options.visualizations !== 'none';
    return {
      schemaVersion: 1,
      complete,
      promptConfig: this.promptConfig,
      startedAt: this.startedAt.toISOString(),
      updatedAt: new Date().toISOString(),
      metadata: this.metadata,
      run: this.run,
      timings,
      counts: {
        images: aggregates.images + new Set(this.skipped.map((s) => s.line)).size,
        evaluated: aggregates.images,
        emptyGroundTruth: this.emptyGroundTruth,
        emptyPrediction: this.emptyPrediction,
        noPrompt: this.noPrompt,
        skipped: this.skipped.length,
        skippedByReason,
      },
      skipped: [...this.skipped],
      definitions: [...ALL_METRICS],
      toleranceRadius: this.options.toleranceRadius,
      metrics: aggregates.metrics,
      pooledCounts: { confusion: aggregates.confusion, skeleton: aggregates.skeleton },
      sweep: aggregates.sweep && {
        ...aggregates.sweep,
        thresholds: {
          first: THRESHOLD_GRID[0]!,
          last: THRESHOLD_GRID.at(-1)!,
          step: THRESHOLD_STEP,
        },
      },
      batchMsPerImage: { ...distribution(this.batchMs), total },
      files: {
        csv: RESULTS_CSV,
        predictions: PREDICTIONS_DIR,
        probabilities: this.options.saveProbabilities ? PROBABILITIES_DIR : null,
        visualizations: figures ? VISUALIZATIONS_DIR : null,
        histograms,
      },
      extremes: {
        best: this.best.map((c) => this.example(c)),
        worst: this.worst.map((c) => this.example(c)),
        crackFree: this.crackFree.map((c) => this.example(c)),
      },
    };
  }

  /** Rewrites CSV and summary atomically; writes are serialised so they never interleave. */
  private flush(
    complete: boolean,
    histograms: Record<string, string> = {},
    timings: Record<string, unknown> = {},
  ): Promise<EvaluationSummary> {
    this.rowsAtLastFlush = this.rows.length;
    this.lastFlush = Date.now();
    const csv = csvLine(RESULT_COLUMNS) + this.rows.join('');
    const summary = this.summary(complete, histograms, timings);
    const done = this.writes.then(async () => {
      await writeFileAtomic(join(this.configDir, RESULTS_CSV), csv);
      await writeFileAtomic(
        join(this.configDir, SUMMARY_JSON),
        JSON.stringify(summary, null, 2) + '\n',
      );
    });
    this.writes = done.catch(() => undefined);
    return done.then(() => summary);
  }

  private example(candidate: Candidate): ExtremeExample {
    return {
      imageId: candidate.imageId,
      iou: candidate.iou,
      figure:
        this.options.visualizations === 'none'
          ? null
          : join(VISUALIZATIONS_DIR, `${imageFileStem(candidate.imageId)}_figure.png`),
    };
  }

  /**
   * Keeps the `extremes` best and worst by IoU (ties: lower image id first) among images with
   * cracks, and the `extremes` worst crack-free ones apart.
   */
  private considerExtreme(result: ImageResult, evaluation: ImageEvaluation, title: string): void {
    const limit = this.options.extremes;
    if (limit <= 0) return;
    const candidate: Candidate = {
      imageId: result.imageId,
      iou: evaluation.metrics.iou,
      figure: null,
      metrics: evaluation.metrics,
      ...(this.options.visualizations === 'extremes'
        ? {
            inputs: {
              // Without loadInputs the inputs must come now.
              ...(result.image || !this.loadInputs ? { image: requireImage(result) } : {}),
              ...(result.groundTruth || !this.loadInputs
                ? { groundTruth: requireGroundTruth(result) }
                : {}),
              ...(result.prediction ? { prediction: result.prediction } : {}),
              title,
            },
          }
        : {}),
    };
    const byId = (a: Candidate, b: Candidate) => (a.imageId < b.imageId ? -1 : 1);
    const worstFirst = (a: Candidate, b: Candidate) => a.iou - b.iou || byId(a, b);
    const { truePositives, falseNegatives } = evaluation.confusion;
    if (truePositives + falseNegatives === 0) {
      insertBounded(this.crackFree, candidate, limit, worstFirst);
      return;
    }
    insertBounded(this.best, candidate, limit, (a, b) => b.iou - a.iou || byId(a, b));
    insertBounded(this.worst, candidate, limit, worstFirst);
  }

  private async renderExtremeFigures(): Promise<void> {
    const shown = [...this.best, ...this.worst, ...this.crackFree];
    const unique = new Map(shown.map((c) => [c.imageId, c]));
    for (const candidate of unique.values()) {
      const { inputs } = candidate;
      if (!inputs) continue;
      const prediction =
        inputs.prediction ?? (await readMaskPng(predictionPath(this.configDir, candidate.imageId)));
      const { image, groundTruth } =
        inputs.image && inputs.groundTruth
          ? { image: inputs.image, groundTruth: inputs.groundTruth }
          : await this.loadInputs!(candidate.imageId);
      const overlay = errorOverlay(image, prediction, groundTruth);
      const [overlayPng, figurePng] = await Promise.all([
        encodeRgbPng(overlay),
        renderFigure({
          image,
          groundTruth,
          title: inputs.title,
          prediction,
          overlay,
          metrics: candidate.metrics,
          maxPanelWidth: this.options.maxPanelWidth,
        }),
      ]);
      await writeFileAtomic(this.visualizationPath(candidate.imageId, 'overlay'), overlayPng);
      await writeFileAtomic(this.visualizationPath(candidate.imageId, 'figure'), figurePng);
    }
  }

  /** A histogram PNG per metric; returns metric key → path relative to the config folder. */
  private async writeHistograms(): Promise<Record<string, string>> {
    const paths: Record<string, string> = {};
    if (this.accumulator.count === 0) return paths;
    const metrics = [...MASK_METRICS, BEST_F_METRIC];
    for (const metric of metrics) {
      const values = this.accumulator.perImageValues(metric.key);
      if (values.length === 0) continue;
      const svg = await histogramSvg(values, {
        title: `${metric.label} — ${this.promptConfig}`,
        subtitle: `${values.length} images`,
        axisLabel: metric.label,
      });
      const relative = join(PLOTS_DIR, `${metric.column}_histogram.png`);
      await writeFileAtomic(join(this.configDir, relative), await svgToPng(svg));
      paths[metric.key] = relative;
    }
    return paths;
  }

  private visualizationPath(imageId: string, kind: 'overlay' | 'figure'): string {
    return join(this.configDir, VISUALIZATIONS_DIR, `${imageFileStem(imageId)}_${kind}.png`);
  }

  private assertOpen(): void {
    if (this.finished) throw new Error(`Report for "${this.promptConfig}" is already finished`);
  }
}

function figureTitle(imageId: string, promptConfig: string, promptCount: number): string {
  return `${imageId} — ${promptConfig} (${promptCount} prompt${promptCount === 1 ? '' : 's'})`;
}

function requirePrediction(result: ImageResult): BinaryMask {
  if (!result.prediction) {
    throw new Error(
      `Image ${result.imageId}: the prediction is needed (it was not saved, or every figure is drawn)`,
    );
  }
  return result.prediction;
}

function requireGroundTruth(result: ImageResult): BinaryMask {
  if (!result.groundTruth) {
    throw new Error(
      `Image ${result.imageId}: the ground truth is needed (to score it, or for figures)`,
    );
  }
  return result.groundTruth;
}

function requireImage(result: ImageResult): RgbImage {
  if (!result.image) {
    throw new Error(
      `Image ${result.imageId}: visualizations need the image (or visualizations: 'none')`,
    );
  }
  return result.image;
}

/** Inserts `item` into the sorted `list`, keeping at most `limit` entries. */
function insertBounded<T>(list: T[], item: T, limit: number, order: (a: T, b: T) => number): void {
  let index = list.findIndex((existing) => order(item, existing) < 0);
  if (index === -1) index = list.length;
  if (index >= limit) return;
  list.splice(index, 0, item);
  if (list.length > limit) list.pop();
}
