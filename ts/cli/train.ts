/**
 * `crackseg train`: the seed project's training command in kebab-case, e.g.
 *
 *   crackseg train --model model.pt --data-root ./crack500 --lora-strategy B --epochs 50 \
 *     --batch-size 4 --gradient-accumulation-steps 4 --learning-rate 1e-4 --use-skeleton-loss
 *
 * List files given on the command line are relative to the current directory (as in
 * `crackseg evaluate --test-file`); without them, `<data-root>/train.txt` and `val.txt`.
 * A progress bar on a TTY, a line per epoch; Ctrl-C (or SIGTERM) stops at the next optimizer step,
 * saves `last` and exits with 130 (143); a second one quits at once.
 */
import { Option, type Command } from 'commander';
import { defaultDevice, type Precision } from '../model/load.js';
import { LORA_STRATEGIES, type LoraStrategy } from '../model/export.js';
import type { Device } from '../torch-module.js';
import { TRAIN_DEFAULTS } from '../train/options.js';
import { train, type EpochRecord, type TrainProgress } from '../train/train.js';
import {
  addDistributedOptions,
  joinFromEnv,
  launchIfAsked,
  type DistributedFlags,
} from './distributed.js';
import {
  collect,
  DEFAULT_DATA_ROOT,
  formatDuration,
  handleInterrupts,
  listFileHelp,
  listFilePath,
  parseInteger,
  parseNonNegativeInteger,
  parseNonNegativeNumber,
  parsePositiveInteger,
  parsePrecision,
  PRECISION_HELP,
  DECODE_FLAG_OPTIONS,
  decodeOptions,
  type DecodeFlags,
  STOP_SIGNALS,
} from './options.js';
import { addRunConfig, requireFlag } from './run-config.js';

interface TrainFlags extends DistributedFlags, DecodeFlags {
  model: string;
  device?: Device;
  precision?: Precision;
  dataRoot: string;
  trainFile?: string;
  valFile?: string;
  loraStrategy?: LoraStrategy;
  epochs: number;
  batchSize: number;
  gradientAccumulationSteps: number;
  learningRate: number;
  weightDecay: number;
  warmup: number;
  useSkeletonLoss?: boolean;
  augment: boolean;
  patience: number;
  outputDir: string;
  resume?: boolean;
  seed: number;
  trainExtra?: string[];
  embeddingCache: number;
  maxNonFiniteSteps: number;
}

/** The one-line summary of a finished epoch. */
export function epochLine(record: EpochRecord, epochs: number): string {
  const { val } = record;
  return (
    `epoch ${record.epoch}/${epochs}  loss ${record.trainLoss.toFixed(4)}  ` +
    `val IoU ${val.iou.toFixed(4)} Dice ${val.dice.toFixed(4)} F1 ${val.f1.toFixed(4)}  ` +
    `lr ${record.learningRate.toExponential(2)}  ${formatDuration(record.seconds)}` +
    (record.skippedSteps > 0 ? `  ${record.skippedSteps} step(s) skipped (non-finite)` : '') +
    (record.best ? '  * best' : '')
  );
}

/** The TTY progress line of a training micro-batch. */
function progressLine(p: Extract<TrainProgress, { phase: 'train' }>): string {
  const width = 20;
  const filled = Math.round((p.batch / p.batches) * width);
  return (
    `epoch ${p.epoch}/${p.epochs} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ` +
    `${p.batch}/${p.batches}  loss ${p.loss.toFixed(4)}  lr ${p.learningRate.toExponential(2)}  ` +
    `${p.imagesPerSecond.toFixed(1)} img/s  ETA ${formatDuration(p.etaSeconds)}`
  );
}

export function register(program: Command): void {
  const d = TRAIN_DEFAULTS;
  const command = program
    .command('train')
    .description('Fine-tune the LoRA adapters of an exported SAM 2.1 model on crack masks')
    .option('--model <file>', 'exported TorchScript model (crackseg export --lora ...); required')
    .option('--device <device>', 'cpu, cuda or cuda:N (default: cuda when available)')
    .option('--precision <p>', `${PRECISION_HELP}; bf16 keeps fp32 master weights`, parsePrecision)
    .option('--data-root <dir>', 'dataset root (Crack500 layout)', DEFAULT_DATA_ROOT)
    .option('--train-file <file>', listFileHelp('training list', d.trainFile))
    .option('--val-file <file>', listFileHelp('validation list', d.valFile))
    .addOption(
      new Option(
        '--lora-strategy <s>',
        "A, B or C; must be the model's (LoRA is injected at export)",
      ).choices(LORA_STRATEGIES.filter((s) => s !== 'none')),
    )
    .option('--epochs <n>', 'epochs', parsePositiveInteger, d.epochs)
    .option('--batch-size <n>', 'images per micro-batch', parsePositiveInteger, d.batchSize)
    .option(
      '--gradient-accumulation-steps <n>',
      'micro-batches per optimizer step',
      parsePositiveInteger,
      d.gradientAccumulation,
    )
    .option(
      '--learning-rate <lr>',
      'peak learning rate (AdamW)',
      parseNonNegativeNumber,
      d.learningRate,
    )
    .option('--weight-decay <w>', 'AdamW weight decay', parseNonNegativeNumber, d.weightDecay)
    .option(
      '--warmup <fraction>',
      'share of the steps in linear warm-up',
      parseNonNegativeNumber,
      d.warmup,
    )
    .option('--use-skeleton-loss', 'add the soft-clDice skeleton loss')
    .option('--no-augment', 'no flips, rotations or brightness/contrast changes')
    .option(
      '--patience <n>',
      'early stopping: epochs without a better val IoU',
      parsePositiveInteger,
      d.patience,
    )
    .option(
      '--train-extra <regex>',
      'also train these parameters in full (repeatable), e.g. ^sam_mask_decoder\\.',
      collect,
    )
    .option(
      '--embedding-cache <images>',
      'strategy A with a frozen encoder: keep the encoder outputs of up to this many images ' +
        'across epochs (needs --no-augment; 0: off)',
      parseNonNegativeInteger,
      0,
    )
    .option(
      '--max-non-finite-steps <n>',
      'stop with an error after this many optimizer steps in a row skipped for a non-finite loss or gradient',
      parsePositiveInteger,
      d.maxNonFiniteSteps,
    )
    .option('--output-dir <dir>', 'output folder', d.outputDir)
    .option('--resume', 'continue from the last checkpoint set in <output-dir>/checkpoints/')
    .option('--seed <s>', 'seed of data order, augmentation and box jitter', parseInteger, d.seed)
    .option(...DECODE_FLAG_OPTIONS[0])
    .option(...DECODE_FLAG_OPTIONS[1]);
  addDistributedOptions(addRunConfig(command)).action(async (flags: TrainFlags) => {
    requireFlag(command, 'model');
    if (await launchIfAsked(flags)) return;
    const interrupts = handleInterrupts(
      'stopping at the next optimizer step (or after the validation batch) and saving last',
    );
    const tty = process.stderr.isTTY;
    let barShown = false;
    const clearBar = () => {
      if (barShown) process.stderr.write('\r\x1b[K');
      barShown = false;
    };
    const { group, device, env } = await joinFromEnv(flags.device ?? defaultDevice(), flags);
    // Rank 0 speaks for the job; the others only report their errors.
    const say = env && env.rank !== 0 ? () => undefined : console.log;
    try {
      say(`training ${flags.model} on ${device}; output ${flags.outputDir}`);
      const ranks = group?.worldSize ?? 1;
      say(
        `global batch ${flags.batchSize * flags.gradientAccumulationSteps * ranks} = ` +
          `${flags.batchSize} per rank × ${flags.gradientAccumulationSteps} accumulated × ${ranks} rank(s)`,
      );
      const result = await train({
        model: flags.model,
        device,
        ...(group ? { group } : {}),
        ...(flags.precision ? { precision: flags.precision } : {}),
        dataRoot: flags.dataRoot,
        // On the command line a list file is relative to the current directory.
        trainFile: listFilePath(flags.trainFile, flags.dataRoot, d.trainFile),
        valFile: listFilePath(flags.valFile, flags.dataRoot, d.valFile),
        ...(flags.loraStrategy ? { strategy: flags.loraStrategy } : {}),
        epochs: flags.epochs,
        batchSize: flags.batchSize,
        gradientAccumulation: flags.gradientAccumulationSteps,
        learningRate: flags.learningRate,
        weightDecay: flags.weightDecay,
        warmup: flags.warmup,
        skeletonLoss: flags.useSkeletonLoss ?? false,
        augment: flags.augment,
        earlyStopping: { patience: flags.patience },
        outputDir: flags.outputDir,
        resume: flags.resume ?? false,
        seed: flags.seed,
        decode: decodeOptions(flags),
        trainExtra: flags.trainExtra ?? [],
        embeddingCache: flags.embeddingCache,
        maxNonFiniteSteps: flags.maxNonFiniteSteps,
        signal: interrupts.signal,
        onProgress: (p) => {
          if (env && env.rank !== 0) return;
          if (p.phase === 'train' && tty) {
            process.stderr.write(`\r\x1b[K${progressLine(p)}`);
            barShown = true;
          } else if (p.phase === 'validate' && tty) {
            process.stderr.write(
              `\r\x1b[Kepoch ${p.epoch}/${p.epochs} validating: ${p.done} images`,
            );
            barShown = true;
          } else if (p.phase === 'epoch') {
            clearBar();
            console.log(epochLine(p.record, p.epochs));
          }
        },
      });
      clearBar();
      if (result.skippedWithoutCrack > 0)
        say(`${result.skippedWithoutCrack} training image(s) without cracks were left out`);
      const why = result.aborted ? 'stopped' : result.stoppedEarly ? 'stopped early' : 'done';
      say(
        `${why} after ${result.optimizerSteps} optimizer steps in ${formatDuration(result.seconds)}; ` +
          (result.bestModel
            ? `best val IoU ${result.bestValIou!.toFixed(4)} at epoch ${result.bestEpoch}: ${result.bestModel}`
            : 'no epoch finished'),
      );
      if (result.aborted) {
        say(`resume with the same flags and --resume`);
        process.exitCode = interrupts.exitCode() ?? STOP_SIGNALS.SIGINT;
      }
    } finally {
      clearBar();
      interrupts.release();
      group?.close();
    }
  });
}
