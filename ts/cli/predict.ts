/**
 * `crackseg predict`: a model on new images, no ground truth needed.
 *
 *   crackseg predict --model m.pt --images photos/ --box 10,20,300,200 --points 50,60
 *   crackseg predict --model m.pt --images list.txt --auto            (point grid, docs/evaluation.md)
 *   crackseg predict --model m.pt --images photos/ --auto box         (one whole-image box)
 *
 * Every `--box` and `--points` group is one prompt for every image (original pixels); their masks
 * are ORed. Writes `masks/<stem>.png` (0/255), `probabilities/<stem>.png`, `overlays/<stem>.png`
 * (the prediction in magenta) and `predictions.json` into --out.
 */
import { InvalidArgumentError, type Command } from 'commander';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { decodeImage } from '../data/decode.js';
import type { RgbImage } from '../image.js';
import { defaultDevice, loadModel, type Precision } from '../model/load.js';
import { defaultBatchSize, predict } from '../predict.js';
import { parsePromptConfig, type AutoPromptConfig } from '../prompts/config.js';
import type { Box, PointGroup, PromptSet } from '../prompts/prompts.js';
import { encodeRgbPng, predictionOverlay } from '../report/figures.js';
import {
  imageFileStem,
  writeMaskPng,
  writeProbabilityPng,
  type ProbabilityBitDepth,
} from '../report/predictions.js';
import type { Device } from '../torch-module.js';
import { writeFileAtomic } from '../util/atomic.js';
import {
  collect,
  parsePositiveInteger,
  parsePrecision,
  parseProbabilityBits,
  PRECISION_HELP,
} from './options.js';

/** File names `--images DIR` picks up (case-insensitive), as the decoders read them. */
const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp']);

/** Folders and the summary file inside --out. */
export const PREDICT_OUTPUTS = {
  masks: 'masks',
  probabilities: 'probabilities',
  overlays: 'overlays',
  summary: 'predictions.json',
} as const;

interface PredictFlags {
  model: string;
  images: string;
  out: string;
  box?: string[];
  points?: string[];
  auto?: string | true;
  loraCheckpoint?: string;
  device?: Device;
  precision?: Precision;
  batchSize?: number;
  probabilityBits: ProbabilityBitDepth;
}

/** `x0,y0,x1,y1` in original pixels, x0 < x1 and y0 < y1. */
export function parseBox(text: string): Box {
  const values = text.split(',').map((v) => Number(v.trim()));
  const [x0, y0, x1, y1] = values;
  if (values.length !== 4 || !values.every(Number.isFinite) || !(x0! < x1! && y0! < y1!)) {
    throw new InvalidArgumentError(`expected x0,y0,x1,y1 with x0 < x1 and y0 < y1, got '${text}'`);
  }
  return [x0!, y0!, x1!, y1!];
}

/** `x,y[,label]` points separated by `;` (label 1 positive, the default, or 0 negative). */
export function parsePointGroup(text: string): PointGroup {
  const group: PointGroup = { coords: [], labels: [] };
  for (const point of text.split(';')) {
    const values = point.split(',').map((v) => Number(v.trim()));
    const [x, y, label = 1] = values;
    const valid =
      (values.length === 2 || values.length === 3) &&
      values.every(Number.isFinite) &&
      (label === 0 || label === 1);
    if (!valid) {
      throw new InvalidArgumentError(
        `expected x,y[,label] points separated by ';' (label 1 or 0), got '${point}'`,
      );
    }
    group.coords.push([x!, y!]);
    group.labels.push(label);
  }
  return group;
}

/**
 * What `--auto [spec]` asks for: the `auto` prompt config (grammar in ts/prompts/config.ts, e.g.
 * `box`, `side=16:iou=0.7`).
 */
export function autoConfig(spec: string | true): AutoPromptConfig {
  const config = parsePromptConfig(spec === true ? 'auto' : `auto:${spec}`);
  return config as AutoPromptConfig;
}

/**
 * The images to predict: a folder's image files (sorted by name), or a list file's first field
 * per line (relative to the list file's folder; blank and `#` lines skipped).
 */
export async function listImages(source: string): Promise<string[]> {
  const path = resolve(source);
  if ((await stat(path)).isDirectory()) {
    const names = (await readdir(path)).filter((name) =>
      IMAGE_EXTENSIONS.has(extname(name).toLowerCase()),
    );
    if (names.length === 0) throw new Error(`${path}: no image files`);
    return names.sort().map((name) => join(path, name));
  }
  const lines = (await readFile(path, 'utf8')).replace(/^\uFEFF/, '').split(/\r\n|\r|\n/);
  const images = lines
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => resolve(dirname(path), line.split(/\s+/)[0]!));
  if (images.length === 0) throw new Error(`${path}: lists no images`);
  return images;
}

/** One image's entry in `predictions.json` (paths relative to --out). */
export interface PredictedImage {
  image: string;
  width: number;
  height: number;
  mask: string;
  probabilities: string;
  overlay: string;
  prompts: number;
  /** Automatic grid: the masks selected of the grid's; otherwise null. */
  selectedMasks: number | null;
  maskPixels: number;
}

async function predictCommand(flags: PredictFlags): Promise<void> {
  const userPrompts: PromptSet = {
    boxes: (flags.box ?? []).map(parseBox),
    points: (flags.points ?? []).map(parsePointGroup),
  };
  const given = userPrompts.boxes.length + userPrompts.points.length;
  if (flags.auto !== undefined && given > 0)
    throw new Error('give --box/--points or --auto, not both');
  if (flags.auto === undefined && given === 0)
    throw new Error('say what to prompt with: --box, --points or --auto');
  const auto = flags.auto === undefined ? null : autoConfig(flags.auto);
  const paths = await listImages(flags.images);
  const stems = paths.map((path) => imageFileStem(basename(path, extname(path))));
  const repeated = stems.find((stem, i) => stems.indexOf(stem) !== i);
  if (repeated) throw new Error(`two images would both be written as '${repeated}.png'`);

  const model = await loadModel({
    path: flags.model,
    device: flags.device ?? defaultDevice(),
    ...(flags.precision ? { precision: flags.precision } : {}),
    ...(flags.loraCheckpoint ? { loraCheckpoint: flags.loraCheckpoint } : {}),
  });
  console.error(`model ${model.metadata.config_name} on ${model.device} (${model.precision})`);
  const out = resolve(flags.out);
  const batchSize = flags.batchSize ?? defaultBatchSize(model.device);
  const results: PredictedImage[] = [];
  try {
    // A batch's images are read, predicted and written before the next batch is read.
    for (let start = 0; start < paths.length; start += batchSize) {
      const batch = paths.slice(start, start + batchSize);
      const images: RgbImage[] = [];
      for (const path of batch) {
        try {
          images.push(await decodeImage(await readFile(path)));
        } catch (error) {
          throw new Error(
            `cannot read image '${path}': ${error instanceof Error ? error.message : String(error)}`,
          );
        }
      }
      const predictions = await predict(model, images, auto ?? images.map(() => userPrompts), {
        probabilities: true,
        batchSize,
      });
      for (const [i, prediction] of predictions.entries()) {
        const stem = stems[start + i]!;
        const image = images[i]!;
        const files = {
          mask: join(PREDICT_OUTPUTS.masks, `${stem}.png`),
          probabilities: join(PREDICT_OUTPUTS.probabilities, `${stem}.png`),
          overlay: join(PREDICT_OUTPUTS.overlays, `${stem}.png`),
        };
        await writeMaskPng(join(out, files.mask), prediction.mask);
        await writeProbabilityPng(
          join(out, files.probabilities),
          prediction.probabilities!,
          flags.probabilityBits,
        );
        const overlay = await encodeRgbPng(predictionOverlay(image, prediction.mask));
        await writeFileAtomic(join(out, files.overlay), overlay);
        const maskPixels = prediction.mask.data.reduce((sum, v) => sum + (v ? 1 : 0), 0);
        results.push({
          image: batch[i]!,
          width: image.width,
          height: image.height,
          ...files,
          prompts: prediction.iouScores.length,
          selectedMasks: prediction.kept ? prediction.kept.filter(Boolean).length : null,
          maskPixels,
        });
        console.log(
          `${batch[i]}: ${maskPixels} crack pixels` +
            (prediction.kept ? ` (${results.at(-1)!.selectedMasks} masks selected)` : ''),
        );
      }
    }
  } finally {
    model.module.dispose();
  }
  const summary = {
    model: resolve(flags.model),
    loraCheckpoint: flags.loraCheckpoint ? resolve(flags.loraCheckpoint) : null,
    device: model.device,
    prompts: auto ?? userPrompts,
    images: results,
  };
  await writeFileAtomic(
    join(out, PREDICT_OUTPUTS.summary),
    JSON.stringify(summary, null, 2) + '\n',
  );
  console.log(`${results.length} images: ${out}`);
}

export function register(program: Command): void {
  program
    .command('predict')
    .description('Predict crack masks for new images, from given prompts or none (--auto)')
    .requiredOption('--model <file>', 'exported TorchScript model (crackseg export)')
    .requiredOption('--images <dir|list>', 'a folder of images, or a file listing one per line')
    .option('--out <dir>', 'output folder', './predictions')
    .option('--box <x0,y0,x1,y1>', 'a box prompt in image pixels (repeatable)', collect)
    .option(
      '--points <x,y[,label];...>',
      'a point prompt: points with label 1 (default) or 0, separated by ; (repeatable)',
      collect,
    )
    .option(
      '--auto [spec]',
      'no prompts: a point grid as the official automatic mask generator (side=N, iou=T, ' +
        'stability=T, nms=T, joined by :), or `box` for one whole-image box',
    )
    .option('--lora-checkpoint <file>', 'LoRA adapter (safetensors) saved by training')
    .option('--device <device>', 'cpu, cuda or cuda:N (default: cuda when available)')
    .option('--precision <p>', PRECISION_HELP, parsePrecision)
    .option(
      '--batch-size <n>',
      'images per device batch (default: 4 on the CPU, 32 on CUDA)',
      parsePositiveInteger,
    )
    .option('--probability-bits <bits>', 'probability PNG depth, 8 or 16', parseProbabilityBits, 8)
    .action((flags: PredictFlags) => predictCommand(flags));
}
