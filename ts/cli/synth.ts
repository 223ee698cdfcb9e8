/** `crackseg synth`: writes the synthetic crack dataset in the Crack500 layout. */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { SYNTH_DEFAULTS, synthesizeDataset } from '../synth/synthesize.js';

function count(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('expected a non-negative integer');
  return Number(value);
}

function seed(value: string): number {
  if (!/^-?\d+$/.test(value) || !Number.isSafeInteger(Number(value))) {
    throw new InvalidArgumentError('expected an integer');
  }
  return Number(value);
}

function size(value: string): { width: number; height: number } {
  const match = /^(\d+)x(\d+)$/.exec(value);
  if (!match || Number(match[1]) < 1 || Number(match[2]) < 1) {
    throw new InvalidArgumentError('expected WIDTHxHEIGHT, e.g. 640x360');
  }
  return { width: Number(match[1]), height: Number(match[2]) };
}

export function register(program: Command): void {
  program
    .command('synth')
    .description(
      'Write a synthetic pavement-crack dataset in the Crack500 layout (see docs/data.md)',
    )
    .requiredOption('--out <dir>', 'data root to write')
    .option('--train <n>', 'training images', count, SYNTH_DEFAULTS.train)
    .option('--val <n>', 'validation images', count, SYNTH_DEFAULTS.val)
    .option('--test <n>', 'test images', count, SYNTH_DEFAULTS.test)
    .addOption(
      new Option('--size <WxH>', 'image size')
        .argParser(size)
        .default(
          { width: SYNTH_DEFAULTS.width, height: SYNTH_DEFAULTS.height },
          `${SYNTH_DEFAULTS.width}x${SYNTH_DEFAULTS.height}`,
        ),
    )
    .option(
      '--seed <s>',
      'random seed; the same seed writes the same bytes',
      seed,
      SYNTH_DEFAULTS.seed,
    )
    .action(
      async (options: {
        out: string;
        train: number;
        val: number;
        test: number;
        size: { width: number; height: number };
        seed: number;
      }) => {
        const { out, train, val, test, seed } = options;
        const summary = await synthesizeDataset({ out, train, val, test, seed, ...options.size });
        for (const split of summary.splits) {
          const noun = split.count === 1 ? 'image' : 'images';
          console.log(`${split.listFile}: ${split.count} ${noun} (${split.crackFree} crack-free)`);
        }
        console.log(`wrote ${summary.root}`);
      },
    );
}
