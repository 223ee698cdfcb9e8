/** `crackseg demo`: synthesise, export, evaluate, train, evaluate again, report (see ts/demo.ts). */
import type { Command } from 'commander';
import { demo, type DemoStage } from '../demo.js';
import { DemoStoppedError } from '../errors.js';
import { formatDuration, handleInterrupts } from './options.js';
import { epochLine } from './train.js';

const STAGE_TEXT: Record<Exclude<DemoStage['stage'], 'done'>, string> = {
  synthesize: 'synthesising a crack dataset',
  export: 'exporting the test model (random weights, LoRA A)',
  'evaluate-before': 'evaluating the untrained model on the test set (box prompts)',
  train: 'training (LoRA + the whole model: random weights need it; see docs/training.md)',
  'evaluate-after': 'evaluating the trained model',
  report: 'writing the before/after report',
};

export function register(program: Command): void {
  program
    .command('demo')
    .description('The whole pipeline on built-in synthetic data, on the CPU in a few minutes')
    .option('--out <dir>', 'output folder', 'demo')
    .option('--quick', 'a reduced run (well under a minute) that checks the pipeline')
    .action(async (flags: { out: string; quick?: boolean }) => {
      const interrupts = handleInterrupts('stopping the demo after the current step');
      const started = performance.now();
      const elapsed = () => formatDuration((performance.now() - started) / 1000).padStart(6);
      try {
        const result = await demo({
          out: flags.out,
          quick: flags.quick ?? false,
          signal: interrupts.signal,
          onStage: (s) => {
            if (s.stage !== 'done') console.log(`${elapsed()}  ${STAGE_TEXT[s.stage]}`);
          },
          onTrainProgress: (p) => {
            if (p.phase === 'epoch')
              console.log(`${elapsed()}    ${epochLine(p.record, p.epochs)}`);
          },
        });
        console.log(
          `\ntest IoU with box prompts: untrained ${result.iouBefore.toFixed(4)} → ` +
            `trained ${result.iouAfter.toFixed(4)} (Dice ${result.diceBefore.toFixed(4)} → ` +
            `${result.diceAfter.toFixed(4)})`,
        );
        console.log(`report: ${result.reportHtml}`);
        console.log(`adapter: ${result.training.bestModel}`);
        console.log(`done in ${formatDuration(result.seconds)}`);
      } catch (err) {
        if (!(err instanceof DemoStoppedError)) throw err;
        console.log(`${elapsed()}  ${err.message}; what was written is under ${flags.out}`);
        process.exitCode = 130;
      } finally {
        interrupts.release();
      }
    });
}
