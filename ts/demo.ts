/**
 * The demo: the whole pipeline on built-in data, on a CPU in minutes. Synthesises a small crack
 * dataset, exports the narrow `test` model with random weights (there are no real ones to
 * download here), evaluates it untrained, fine-tunes it, evaluates it again and writes a
 * report comparing the two evaluations.
 */
import { join, resolve } from 'node:path';
import { DemoStoppedError } from './errors.js';
import { evaluate, REPORT_HTML } from './evaluate/evaluate.js';
import { EXPORT_DEFAULTS, exportModel } from './model/export.js';
import { loadModel } from './model/load.js';
import { writeHtmlReport } from './report/html.js';
import { synthesizeDataset } from './synth/synthesize.js';
import { TRAINING_BOX_PROMPT } from './train/box-prompt.js';
import { train, type TrainProgress, type TrainResult } from './train/train.js';

/**
 * What trains besides the LoRA adapters (strategy A, the decoder's attention): everything. With
 * random weights there is nothing for low-rank updates to adapt — the trunk's features are random
 * projections of the image — so the whole model trains in full (docs/benchmarks.md, "Measurements
 * behind code choices"). With a real checkpoint, LoRA (plus perhaps the decoder) is the point.
 */
export const DEMO_TRAIN_EXTRA = [
  '^image_encoder\\.trunk\\.',
  '^image_encoder\\.neck\\.',
  '^sam_prompt_encoder\\.',
  '^sam_mask_decoder\\.',
  '^no_mem_embed$',
];

/**
 * The demo's runs: the full one, and the quick one the tests use (small enough for CI, long
 * enough that training reliably beats the untrained model). A higher rate than the default:
 * short runs from random weights.
 */
export const DEMO_RUNS = {
  full: {
    data: { train: 96, val: 16, test: 24, width: 256, height: 192 },
    training: {
      epochs: 24,
      batchSize: 4,
      gradientAccumulation: 1,
      learningRate: 2e-3,
      warmup: 0.05,
      seed: 0,
    },
  },
  quick: {
    data: { train: 16, val: 8, test: 16, width: 128, height: 96 },
    training: {
      epochs: 8,
      batchSize: 2,
      gradientAccumulation: 1,
      learningRate: 2e-3,
      warmup: 0.05,
      seed: 0,
    },
  },
};

export interface DemoOptions {
  /** Output folder (default `demo`). */
  out?: string;
  /** A reduced run (fewer, smaller images, 8 short epochs): about 25 s on 2 CPU cores. */
  quick?: boolean;
  /** What happens, for the terminal. */
  onStage?: (stage: DemoStage) => void;
  onTrainProgress?: (progress: TrainProgress) => void;
  signal?: AbortSignal;
}

export type DemoStage =
  | { stage: 'synthesize' | 'export' | 'evaluate-before' | 'train' | 'evaluate-after' | 'report' }
  | { stage: 'done'; result: DemoResult };

export interface DemoResult {
  out: string;
  /** Mean per-image test IoU with box prompts, untrained and trained. */
  iouBefore: number;
  iouAfter: number;
  diceBefore: number;
  diceAfter: number;
  training: TrainResult;
  reportHtml: string;
  seconds: number;
}

/** Runs the demo; see the module comment. Everything goes under `out`. */
export async function demo(options: DemoOptions = {}): Promise<DemoResult> {
  const started = performance.now();
  const out = resolve(options.out ?? 'demo');
  const { data: size, training: settings } = DEMO_RUNS[options.quick ? 'quick' : 'full'];
  const signal = options.signal;
  let current: Exclude<DemoStage, { stage: 'done' }>['stage'] = 'synthesize';
  const stopped = () => new DemoStoppedError(current);
  /** Runs a stage; an abort before, during (the stage failing because of it) or after it stops. */
  const stage = async <T>(
    name: Exclude<DemoStage, { stage: 'done' }>['stage'],
    work: () => Promise<T>,
  ): Promise<T> => {
    current = name;
    if (signal?.aborted) throw stopped();
    options.onStage?.({ stage: name });
    let result: T;
    try {
      result = await work();
    } catch (err) {
      // Ctrl-C reaches the exporter's Python too, which then fails: that is the abort.
      throw signal?.aborted ? stopped() : err;
    }
    if (signal?.aborted) throw stopped();
    return result;
  };
  const dataRoot = join(out, 'data');
  const modelPath = join(out, 'model.pt');
  const prompts = [TRAINING_BOX_PROMPT];

  await stage('synthesize', () =>
    synthesizeDataset({ out: dataRoot, ...size, seed: 0, ...(signal ? { signal } : {}) }),
  );
  // The exporter's defaults (LoRA rank 8, alpha 16, no dropout, seed 0) with strategy A.
  await stage('export', () =>
    exportModel({ ...EXPORT_DEFAULTS, config: 'test', lora: 'A', out: modelPath }),
  );

  const evaluateTest = async (outputDir: string, loraCheckpoint?: string) => {
    const model = await loadModel({
      path: modelPath,
      device: 'cpu',
      ...(loraCheckpoint ? { loraCheckpoint } : {}),
    });
    try {
      const result = await evaluate({
        model,
        dataRoot,
        listFile: 'test.txt',
        prompts,
        outputDir,
        numVis: 3,
        ...(signal ? { signal } : {}),
      });
      const metrics = result.configs[0]!.summary!.metrics;
      return { iou: metrics.iou.mean!, dice: metrics.dice.mean! };
    } finally {
      model.module.dispose();
    }
  };
  const before = await stage('evaluate-before', () => evaluateTest(join(out, 'before')));

  const training = await stage('train', () =>
    train({
      model: modelPath,
      device: 'cpu',
      dataRoot,
      outputDir: join(out, 'training'),
      ...settings,
      trainExtra: DEMO_TRAIN_EXTRA,
      ...(options.onTrainProgress ? { onProgress: options.onTrainProgress } : {}),
      ...(signal ? { signal } : {}),
    }),
  );
  if (training.aborted || !training.bestModel) throw stopped();
  const bestModel = training.bestModel;

  const after = await stage('evaluate-after', () => evaluateTest(join(out, 'after'), bestModel));

  const reportHtml = join(out, REPORT_HTML);
  await stage('report', () =>
    writeHtmlReport(
      reportHtml,
      [
        { label: 'untrained (random init)', outputDir: join(out, 'before') },
        { label: `trained (best epoch ${training.bestEpoch})`, outputDir: join(out, 'after') },
      ],
      { title: 'crackseg demo: test set, box prompts, before and after training' },
    ),
  );
  const result: DemoResult = {
    out,
    iouBefore: before.iou,
    iouAfter: after.iou,
    diceBefore: before.dice,
    diceAfter: after.dice,
    training,
    reportHtml,
    seconds: (performance.now() - started) / 1000,
  };
  options.onStage?.({ stage: 'done', result });
  return result;
}
