/** `crackseg export`: SAM 2.1 (image path) with LoRA adapters to a TorchScript file. */
import { Command, Option } from 'commander';
import {
  EXPORT_DEFAULTS,
  exportModel,
  LORA_STRATEGIES,
  MODEL_CONFIGS,
  type ExportOptions,
} from '../model/export.js';
import { parseInteger, parseNonNegativeNumber, parsePositiveInteger } from './options.js';

interface Flags {
  checkpoint?: string;
  randomInit?: boolean;
  config: ExportOptions['config'];
  seed: number;
  lora: ExportOptions['lora'];
  rank: number;
  alpha: number;
  dropout: number;
  out: string;
}

export function register(program: Command): void {
  program
    .command('export')
    .description('export SAM 2.1 (image path) with LoRA adapters as TorchScript')
    .addOption(
      new Option('--checkpoint <file>', 'official sam2.1_hiera_*.pt checkpoint').conflicts(
        'randomInit',
      ),
    )
    .option('--random-init', 'seeded random weights instead of a checkpoint')
    .addOption(
      new Option('--config <name>', 'model configuration')
        .choices([...MODEL_CONFIGS])
        .makeOptionMandatory(),
    )
    .option(
      '--seed <n>',
      'seed of the random init and the LoRA A matrices',
      parseInteger,
      EXPORT_DEFAULTS.seed,
    )
    .addOption(
      new Option('--lora <strategy>', 'LoRA targets: none, A, B or C (docs/model-interface.md)')
        .choices([...LORA_STRATEGIES])
        .default(EXPORT_DEFAULTS.lora),
    )
    .option('--rank <r>', 'LoRA rank', parsePositiveInteger, EXPORT_DEFAULTS.rank)
    .option(
      '--alpha <a>',
      'LoRA alpha (scale = alpha / rank)',
      parseNonNegativeNumber,
      EXPORT_DEFAULTS.alpha,
    )
    .option('--dropout <p>', 'LoRA dropout', parseNonNegativeNumber, EXPORT_DEFAULTS.dropout)
    .requiredOption('--out <file>', 'TorchScript file to write')
    .action(async (flags: Flags) => {
      if (!flags.checkpoint && !flags.randomInit) {
        throw new Error('give --checkpoint <file> or --random-init');
      }
      const result = await exportModel({
        config: flags.config,
        checkpoint: flags.checkpoint,
        seed: flags.seed,
        lora: flags.lora,
        rank: flags.rank,
        alpha: flags.alpha,
        dropout: flags.dropout,
        out: flags.out,
      });
      if (result.skippedKeys.length) {
        console.log(`skipped ${result.skippedKeys.length} memory-path checkpoint keys`);
      }
      console.log(
        `LoRA ${result.metadata.lora_strategy}: ${result.metadata.lora_targets.length} adapted modules`,
      );
      console.log(`trainable parameters: ${result.trainable}`);
      console.log(`total parameters: ${result.total}`);
      console.log(`wrote ${result.out}`);
    });
}
