#!/usr/bin/env node
/**
 * `npm run bench -- <name> [options]`: runs one sub-benchmark and prints its result as JSON.
 *
 *   npm run bench -- eval [--config test] [--device cpu] [--size 256] [--images 16]
 *                         [--batch-size 4] [--repeats 3]
 */
import { Command, InvalidArgumentError } from 'commander';
import { MODEL_CONFIGS, type ModelConfig } from '../model/export.js';
import type { Device } from '../torch-module.js';
import { runEvalBenchmark } from './eval.js';

function positiveInteger(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1) {
    throw new InvalidArgumentError('expected a positive integer');
  }
  return Number(value);
}

function modelConfig(value: string): ModelConfig {
  if (!(MODEL_CONFIGS as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(`expected one of ${MODEL_CONFIGS.join(', ')}`);
  }
  return value as ModelConfig;
}

const program = new Command('bench').description('crackseg benchmarks; each prints JSON');

program
  .command('eval')
  .description('evaluation throughput: end to end, model only, encoder only (images/s)')
  .option('--config <name>', 'model config (default: small on CUDA, test on CPU)', modelConfig)
  .option('--device <device>', 'cpu, cuda or cuda:N (default: cuda when available)')
  .option('--size <px>', 'synthetic image side (default: the model input size)', positiveInteger)
  .option('--images <n>', 'synthetic images (default: 8 batches)', positiveInteger)
  .option('--batch-size <n>', 'images per device batch', positiveInteger)
  .option('--repeats <n>', 'timed repetitions of model-only passes', positiveInteger)
  .action(
    async (options: {
      config?: ModelConfig;
      device?: Device;
      size?: number;
      images?: number;
      batchSize?: number;
      repeats?: number;
    }) => {
      console.log(JSON.stringify(await runEvalBenchmark(options), null, 2));
    },
  );

program.parseAsync().catch((err: unknown) => {
  console.error(`bench: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
