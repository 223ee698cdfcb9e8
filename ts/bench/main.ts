#!/usr/bin/env node
/**
 * `npm run bench -- <name> [options]`: runs one sub-benchmark and prints its result as JSON.
 *
 *   npm run bench -- eval [--config test] [--device cpu] [--precision fp32] [--size 256]
 *                         [--images 16] [--batch-size 4] [--repeats 3]
 *   npm run bench -- train [--config test] [--device cpu] [--precision fp32] [--size 256]
 *                          [--batch-size 1,2,4] [--warmup-steps 2] [--steps 5] [--strategies A,B,C]
 *                          [--no-cache]
 *   npm run bench -- data [--size 640x360] [--images 64] [--batch-size 8]
 */
import { Command, InvalidArgumentError } from 'commander';
import { MODEL_CONFIGS, type ModelConfig } from '../model/export.js';
import type { Device } from '../torch-module.js';
import { parsePositiveInteger, parsePrecision, parseSize, PRECISION_HELP } from '../cli/options.js';
import type { Precision } from '../model/load.js';
import { runDataBenchmark } from './data.js';
import { runEvalBenchmark } from './eval.js';
import { runTrainBenchmark, TRAIN_BENCH_STRATEGIES } from './train.js';

function modelConfig(value: string): ModelConfig {
  if (!(MODEL_CONFIGS as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(`expected one of ${MODEL_CONFIGS.join(', ')}`);
  }
  return value as ModelConfig;
}

/** The options of the benchmarks that export and run a model: which model, where, how, how big. */
function modelOptions(command: Command): Command {
  return command
    .option('--config <name>', 'model config (default: small on CUDA, test on CPU)', modelConfig)
    .option('--device <device>', 'cpu, cuda or cuda:N (default: cuda when available)')
    .option('--precision <p>', PRECISION_HELP, parsePrecision)
    .option(
      '--size <px>',
      'synthetic image side (default: the model input size)',
      parsePositiveInteger,
    );
}

const program = new Command('bench').description('crackseg benchmarks; each prints JSON');

modelOptions(
  program
    .command('eval')
    .description('evaluation throughput: end to end, model only, encoder only (images/s)'),
)
  .option('--images <n>', 'synthetic images (default: 8 batches)', parsePositiveInteger)
  .option(
    '--batch-size <n>',
    'images per device batch (default: 4 on the CPU, 32 on CUDA)',
    parsePositiveInteger,
  )
  .option('--repeats <n>', 'timed repetitions of model-only passes', parsePositiveInteger)
  .action(
    async (options: {
      config?: ModelConfig;
      device?: Device;
      precision?: Precision;
      size?: number;
      images?: number;
      batchSize?: number;
      repeats?: number;
    }) => {
      console.log(JSON.stringify(await runEvalBenchmark(options), null, 2));
    },
  );

function positiveIntegers(value: string): number[] {
  return value.split(',').map((s) => parsePositiveInteger(s.trim()));
}

type BenchStrategy = (typeof TRAIN_BENCH_STRATEGIES)[number];

function strategies(value: string): BenchStrategy[] {
  const list = value.split(',').map((s) => s.trim());
  const known: readonly string[] = TRAIN_BENCH_STRATEGIES;
  if (list.length === 0 || list.some((s) => !known.includes(s)))
    throw new InvalidArgumentError(`expected a comma-separated subset of ${known.join(',')}`);
  return list as BenchStrategy[];
}

modelOptions(
  program
    .command('train')
    .description(
      'training throughput (images/s, steady state) and peak memory per LoRA strategy, and the ' +
        'strategy-A embedding cache on vs off',
    ),
)
  .option(
    '--batch-size <list>',
    'images per step, one measurement per comma-separated size (default: 8 on CUDA, 4 on CPU)',
    positiveIntegers,
  )
  .option(
    '--warmup-steps <n>',
    'untimed steps first (default: 3 CUDA, 2 CPU)',
    parsePositiveInteger,
  )
  .option('--steps <n>', 'timed steps (default: 20 CUDA, 5 CPU)', parsePositiveInteger)
  .option('--strategies <list>', 'LoRA strategies to measure (default: A,B,C)', strategies)
  .option('--no-cache', 'skip the embedding-cache comparison')
  .action(
    async (options: {
      config?: ModelConfig;
      device?: Device;
      precision?: Precision;
      size?: number;
      batchSize?: number[];
      warmupSteps?: number;
      steps?: number;
      strategies?: BenchStrategy[];
      cache: boolean;
    }) => {
      const { batchSize, ...rest } = options;
      console.log(
        JSON.stringify(await runTrainBenchmark({ ...rest, batchSizes: batchSize }), null, 2),
      );
    },
  );

program
  .command('data')
  .description('training batch preparation on the host (images/s), with and without augmentation')
  .option('--size <WxH>', 'synthetic image size (default: 640x360, Crack500)', parseSize)
  .option('--images <n>', 'training images (default: 64)', parsePositiveInteger)
  .option('--batch-size <n>', 'images per micro-batch (default: 8)', parsePositiveInteger)
  .action(
    async (options: {
      size?: { width: number; height: number };
      images?: number;
      batchSize?: number;
    }) => {
      const { size, ...rest } = options;
      console.log(JSON.stringify(await runDataBenchmark({ ...size, ...rest }), null, 2));
    },
  );

program.parseAsync().catch((err: unknown) => {
  console.error(`bench: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
