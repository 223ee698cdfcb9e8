#!/usr/bin/env node
/** The `crackseg` command: one sub-command per module in this folder, each registering itself. */
import { Command } from 'commander';
import { createRequire } from 'node:module';
import * as checkData from './check-data.js';
import * as demoCommand from './demo.js';
import * as doctor from './doctor.js';
import * as evaluateCommand from './evaluate.js';
import * as exportCommand from './export.js';
import * as predictCommand from './predict.js';
import * as synth from './synth.js';
import * as trainCommand from './train.js';

const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };

const program = new Command('crackseg')
  .description('Fine-tune (LoRA) and evaluate SAM 2.1 for crack segmentation')
  .version(version);

// Each sub-command module exports `register(program)`.
const commands: Array<{ register(program: Command): void }> = [
  doctor,
  exportCommand,
  synth,
  checkData,
  evaluateCommand,
  predictCommand,
  trainCommand,
  demoCommand,
];
for (const command of commands) command.register(program);

program.parseAsync().catch((err: unknown) => {
  console.error(`crackseg: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
