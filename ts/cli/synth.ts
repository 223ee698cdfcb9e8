/** `crackseg synth`: writes the synthetic crack dataset in the Crack500 layout. */
import { Option, type Command } from 'commander';
import { SYNTH_DEFAULTS, synthesizeDataset } from '../synth/synthesize.js';
import { parseInteger, parseNonNegativeInteger, parseSize } from './options.js';

export function register(program: Command): void {
  program
    .command('synth')
    .description(
      'Write a synthetic pavement-crack dataset in the Crack500 layout (see docs/data.md)',
    )
    .requiredOption('--out <dir>', 'data root to write')
    .option('--train <n>', 'training images', parseNonNegativeInteger, SYNTH_DEFAULTS.train)
    .option('--val <n>', 'validation images', parseNonNegativeInteger, SYNTH_DEFAULTS.val)
    .option('--test <n>', 'test images', parseNonNegativeInteger, SYNTH_DEFAULTS.test)
    .addOption(
      new Option('--size <WxH>', 'image size')
        .argParser(parseSize)
        .default(
          { width: SYNTH_DEFAULTS.width, height: SYNTH_DEFAULTS.height },
          `${SYNTH_DEFAULTS.width}x${SYNTH_DEFAULTS.height}`,
        ),
    )
    .option(
      '--seed <s>',
      'random seed; the same seed writes the same bytes',
      parseInteger,
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
