/** `crackseg export`: SAM 2.1 (image path) with LoRA adapters to a TorchScript file. */
import { Command, Option } from 'commander';
import {
  EXPORT_DEFAULTS,
  exportModel,
  LORA_STRATEGIES,
  MODEL_CONFIGS,
  type ExportOptions,
} from '../model/export.js';
import { officialCheckpointNames, resolveCheckpoint } from '../model/official-checkpoints.js';
import { downloadProgressPrinter, formatBytes } from './download-progress.js';
import { parseInteger, parseNonNegativeNumber, parsePositiveInteger } from './options.js';

interface Flags {
  checkpoint?: string;
  randomInit?: boolean;
  config: ExportOptions['config'];
  cacheDir?: string;
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
      new Option(
        '--checkpoint <file|name>',
        `official sam2.1_hiera_*.pt checkpoint file, or its name (downloaded and cached): ${officialCheckpointNames().join(', ')}`,
      ).conflicts('randomInit'),
    )
    .option('--random-init', 'seeded random weights instead of a checkpoint')
    .addOption(
      new Option('--config <name>', 'model configuration (implied by a checkpoint name)').choices([
        ...MODEL_CONFIGS,
      ]),
    )
    .option(
      '--cache-dir <dir>',
      'where named checkpoints are kept (default: $CRACKSEG_CACHE_DIR, else $XDG_CACHE_HOME/crackseg)',
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
      const { path: checkpoint, config } = flags.checkpoint
        ? await fetchCheckpoint(flags.checkpoint, flags.config, flags.cacheDir)
        : { path: undefined, config: flags.config };
      if (!config) throw new Error('give --config <name> (or a checkpoint name that implies it)');
      const result = await exportModel({
        config,
        checkpoint,
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

/** `--checkpoint` as a file, downloading a named one with progress on stderr. */
async function fetchCheckpoint(
  checkpoint: string,
  config: ExportOptions['config'],
  cacheDir: string | undefined,
) {
  const progress = downloadProgressPrinter(process.stderr);
  try {
    const resolved = await resolveCheckpoint(checkpoint, config, {
      cacheDir,
      onProgress: (p) => progress.update(p),
    });
    const fetched = resolved.fetched;
    if (fetched?.download) {
      const d = fetched.download;
      const check = d.verified === 'sha256' ? `SHA-256 ${d.sha256} verified` : 'size verified';
      console.log(`downloaded ${d.url} (${formatBytes(d.size)}, ${check}) to ${fetched.path}`);
    } else if (fetched) {
      console.log(`using the cached ${fetched.path}`);
    }
    return resolved;
  } finally {
    progress.end();
  }
}
