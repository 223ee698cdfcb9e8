/**
 * `crackseg evaluate`: the seed project's evaluation commands in kebab-case.
 *
 *   crackseg evaluate bbox --output-dir ./results/bbox_prompt     (the folder IS the config's)
 *   crackseg evaluate points --point-configs 1 3 5 [--per-component]   (./results/points_N/)
 *   crackseg evaluate --prompts bbox,points:1,points:3,points:5        (./results/<config>/)
 *
 * Output-folder rule: with `bbox`, `--output-dir` is the config folder itself (default
 * ./results/bbox_prompt); otherwise it holds one folder per prompt config (default ./results).
 * `report.html` is written into --output-dir either way (nothing outside it).
 *
 * List-file rule (every command): `--test-file` given on the command line is relative to the
 * current directory; the default is `<data-root>/test.txt`.
 */
import { Argument, type Command } from 'commander';
import {
  DEFAULT_NUM_VIS,
  DEFAULT_PROBABILITY_BITS,
  DEFAULT_SEED,
  evaluate,
  type EvaluationProgress,
  type EvaluationResult,
} from '../evaluate/evaluate.js';
import { MASK_METRICS } from '../metrics/definitions.js';
import { defaultDevice, loadModel, type Precision } from '../model/load.js';
import {
  DEFAULT_EXPAND_RATIO,
  parsePromptConfigs,
  promptConfigName,
  type PromptConfig,
} from '../prompts/config.js';
import type { ProbabilityBitDepth } from '../report/predictions.js';
import type { Device } from '../torch-module.js';
import {
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
  parseProbabilityBits,
  PRECISION_HELP,
  DECODE_FLAG_OPTIONS,
  decodeOptions,
  type DecodeFlags,
  STOP_SIGNALS,
} from './options.js';
import {
  addDistributedOptions,
  joinFromEnv,
  launchIfAsked,
  type DistributedFlags,
} from './distributed.js';
import { addRunConfig, CONFIG_SOURCE } from './run-config.js';

export interface EvaluateFlags extends DecodeFlags, DistributedFlags {
  model?: string;
  loraCheckpoint?: string;
  device?: Device;
  precision?: Precision;
  dataRoot: string;
  testFile?: string;
  outputDir?: string;
  prompts?: string;
  expandRatio: number;
  pointConfigs?: number[];
  perComponent?: boolean;
  numVis: number | 'all';
  batchSize?: number;
  seed: number;
  skipInference?: boolean;
  skipEvaluation?: boolean;
  skipVisualization?: boolean;
  skipBad?: boolean;
  /** `true` when given without a depth. */
  saveProbabilities?: true | ProbabilityBitDepth;
}

function numVisValue(value: string): number | 'all' {
  return value === 'all' ? 'all' : parseNonNegativeInteger(value);
}

function pointCounts(value: string, previous: number[] | undefined): number[] {
  return [...(previous ?? []), parsePositiveInteger(value)];
}

/**
 * The prompt configs and the output layout that the mode and flags ask for. A flag that would be
 * ignored is an error: `--expand-ratio` without a box prompt (or beside `bbox:expand=` in
 * --prompts), `--point-configs`/`--per-component` outside `points` mode.
 */
export function plan(
  mode: string | undefined,
  flags: EvaluateFlags,
  given: (flag: 'expandRatio') => boolean,
) {
  if (mode && flags.prompts) throw new Error(`give either '${mode}' or --prompts, not both`);
  if (mode !== 'points' && (flags.pointConfigs || flags.perComponent)) {
    throw new Error(
      `--point-configs and --per-component belong to 'points' mode` +
        (flags.prompts ? '; in --prompts write points:N[:per_component]' : ''),
    );
  }
  if (mode === 'points' && given('expandRatio')) {
    throw new Error("--expand-ratio applies to box prompts, not to 'points' mode");
  }
  if (mode === 'bbox') {
    return {
      prompts: [{ kind: 'bbox', expandRatio: flags.expandRatio }] as PromptConfig[],
      layout: 'config-folder' as const,
      outputDir: flags.outputDir ?? './results/bbox_prompt',
    };
  }
  if (mode === 'points') {
    const counts = flags.pointConfigs ?? [1, 3, 5];
    const suffix = flags.perComponent ? ':per_component' : '';
    return {
      prompts: parsePromptConfigs(counts.map((n) => `points:${n}${suffix}`).join(',')),
      layout: 'per-config' as const,
      outputDir: flags.outputDir ?? './results',
    };
  }
  if (!flags.prompts) throw new Error("say what to prompt with: 'bbox', 'points' or --prompts");
  const items = flags.prompts.split(',');
  const parsed = parsePromptConfigs(flags.prompts);
  // A plain `bbox` item takes --expand-ratio; `bbox:expand=R` says its own.
  const plainBox = (i: number) => parsed[i]!.kind === 'bbox' && items[i]!.trim() === 'bbox';
  if (given('expandRatio')) {
    if (!parsed.some((c) => c.kind === 'bbox')) {
      throw new Error('--expand-ratio applies to box prompts, and --prompts has none');
    }
    if (parsed.some((c, i) => c.kind === 'bbox' && !plainBox(i))) {
      throw new Error('give the expansion either as --expand-ratio or as bbox:expand=R, not both');
    }
  }
  const prompts = parsed.map((config, i) =>
    plainBox(i) ? { ...config, expandRatio: flags.expandRatio } : config,
  );
  // Re-check the names: `bbox` with --expand-ratio may now equal a `bbox:expand=` item.
  const names = prompts.map(promptConfigName);
  const repeated = names.find((name, i) => names.indexOf(name) !== i);
  if (repeated) throw new Error(`--prompts: '${repeated}' appears twice`);
  return { prompts, layout: 'per-config' as const, outputDir: flags.outputDir ?? './results' };
}

export function register(program: Command): void {
  const command = program
    .command('evaluate')
    .description('Evaluate SAM 2.1 with box or point prompts on a Crack500-style list file')
    .addArgument(
      new Argument('[mode]', 'bbox or points (or use --prompts)').choices(['bbox', 'points']),
    )
    .option('--model <file>', 'exported TorchScript model (crackseg export)')
    .option('--lora-checkpoint <file>', 'LoRA adapter (safetensors) saved by training')
    .option('--device <device>', 'cpu, cuda or cuda:N (default: cuda when available)')
    .option('--precision <p>', PRECISION_HELP, parsePrecision)
    .option('--data-root <dir>', 'dataset root (Crack500 layout)', DEFAULT_DATA_ROOT)
    .option('--test-file <file>', listFileHelp('list file', 'test.txt'))
    .option('--output-dir <dir>', 'output folder (see `crackseg evaluate --help` for the rule)')
    .option(
      '--prompts <list>',
      'prompt configs, e.g. bbox,points:1,points:3,points:5 (auto: no ground truth, docs/evaluation.md)',
    )
    .option(
      '--expand-ratio <r>',
      'box expansion per side (bbox, or plain bbox items of --prompts)',
      parseNonNegativeNumber,
      DEFAULT_EXPAND_RATIO,
    )
    .option(
      '--point-configs <n...>',
      'points per prompt, one config each (points mode)',
      pointCounts,
    )
    .option('--per-component', 'one point group per crack component (points mode)')
    .option(
      '--num-vis <n|all>',
      'overlays and figures of the n best and n worst images by IoU, or of all',
      numVisValue,
      DEFAULT_NUM_VIS,
    )
    .option(
      '--batch-size <n>',
      'images per device batch (default: 4 on the CPU, 32 on CUDA, halved while it does not fit)',
      parsePositiveInteger,
    )
    .option('--seed <s>', 'seed of the random point prompts', parseInteger, DEFAULT_SEED)
    .option('--skip-inference', 're-score the predictions already in the output folder')
    .option('--skip-evaluation', 'only predict and save masks')
    .option('--skip-visualization', 'no overlays or figures')
    .option('--skip-bad', 'record unreadable samples and go on')
    .option(...DECODE_FLAG_OPTIONS[0])
    .option(...DECODE_FLAG_OPTIONS[1])
    .option(
      '--save-probabilities [bits]',
      `also save the probability maps (8 or 16 bits, default ${DEFAULT_PROBABILITY_BITS}) so that --skip-inference re-scores ODS/OIS`,
      parseProbabilityBits,
    )
    .addHelpText(
      'after',
      '\nOutput folders: `bbox` writes into --output-dir itself (default ./results/bbox_prompt);\n' +
        '`points` and --prompts write one folder per config under it (default ./results).\n' +
        'report.html goes into --output-dir, covering the configs of this run.\n' +
        '--test-file is relative to the current directory; default <data-root>/test.txt.',
    );
  addDistributedOptions(addRunConfig(command)).action(
    async (mode: string | undefined, flags: EvaluateFlags, command: Command) => {
      const { prompts, layout, outputDir } = plan(
        mode,
        flags,
        // Given on the command line or in the run config, not a default.
        (flag) => ['cli', CONFIG_SOURCE].includes(command.getOptionValueSource(flag) ?? ''),
      );
      if (!flags.skipInference && !flags.model) throw new Error('--model is required');
      if (await launchIfAsked(flags)) return;
      const { group, device, env } = await joinFromEnv(flags.device ?? defaultDevice(), flags);
      // Rank 0 speaks for the job; the others only report their errors.
      const speaks = !env || env.rank === 0;
      const model =
        flags.skipInference || !flags.model
          ? undefined
          : await loadModel({
              path: flags.model,
              device,
              ...(flags.precision ? { precision: flags.precision } : {}),
              ...(flags.loraCheckpoint ? { loraCheckpoint: flags.loraCheckpoint } : {}),
            });
      if (model && speaks)
        console.error(
          `model ${model.metadata.config_name} on ${model.device} (${model.precision})` +
            (group ? `, ${group.worldSize} ranks` : ''),
        );
      const interrupts = handleInterrupts('stopping after the current batch');
      const bar = progressPrinter(process.stderr);
      try {
        const result = await evaluate({
          ...(model ? { model } : {}),
          ...(group ? { group } : {}),
          dataRoot: flags.dataRoot,
          listFile: listFilePath(flags.testFile, flags.dataRoot, 'test.txt'),
          prompts,
          outputDir,
          layout,
          numVis: flags.numVis,
          ...(flags.batchSize ? { batchSize: flags.batchSize } : {}),
          seed: flags.seed,
          skip: {
            inference: flags.skipInference ?? false,
            evaluation: flags.skipEvaluation ?? false,
            visualization: flags.skipVisualization ?? false,
          },
          skipBad: flags.skipBad ?? false,
          decode: decodeOptions(flags),
          saveProbabilities:
            flags.saveProbabilities === true
              ? DEFAULT_PROBABILITY_BITS
              : (flags.saveProbabilities ?? false),
          onProgress: (progress) => speaks && bar.update(progress),
          signal: interrupts.signal,
        });
        bar.end();
        if (speaks) printResult(result);
        if (result.aborted) process.exitCode = interrupts.exitCode() ?? STOP_SIGNALS.SIGINT;
      } finally {
        bar.end();
        interrupts.release();
        model?.module.dispose();
        group?.close();
      }
    },
  );
}

/** A one-line progress bar on a terminal; a line every 10% (or 30 s) otherwise. */
function progressPrinter(stream: NodeJS.WriteStream) {
  let lastLine = 0;
  let lastDecile = -1;
  let open = false;
  const format = (p: EvaluationProgress) => {
    const eta = p.etaSeconds === null ? '?' : formatDuration(p.etaSeconds);
    return `${p.done}/${p.total} images, ${p.imagesPerSecond.toFixed(2)} img/s, ETA ${eta}`;
  };
  return {
    update(p: EvaluationProgress) {
      if (stream.isTTY) {
        const width = 30;
        const filled = p.total > 0 ? Math.round((width * p.done) / p.total) : width;
        stream.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${format(p)}\x1b[K`);
        open = true;
        return;
      }
      const decile = p.total > 0 ? Math.floor((10 * p.done) / p.total) : 10;
      if (decile > lastDecile || Date.now() - lastLine > 30_000) {
        stream.write(`${format(p)}\n`);
        lastDecile = decile;
        lastLine = Date.now();
      }
    },
    end() {
      if (open) stream.write('\n');
      open = false;
    },
  };
}

/** The final table: per config, images and the mean of each metric (plus ODS/OIS). */
function printResult(result: EvaluationResult): void {
  const header = ['config', 'images', ...MASK_METRICS.map((m) => m.label), 'ODS', 'OIS'];
  const rows = result.configs.map((c) => {
    const s = c.summary;
    if (!s) return [c.name, '-', ...MASK_METRICS.map(() => '-'), '-', '-'];
    const value = (v: number | null | undefined) => (v == null ? '-' : v.toFixed(4));
    return [
      c.name,
      String(s.counts.evaluated),
      ...MASK_METRICS.map((m) => value(s.metrics[m.key].mean)),
      value(s.sweep?.ods.f),
      value(s.sweep?.ois),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  console.log(line(header));
  for (const row of rows) console.log(line(row));
  const note = result.aborted ? ' (aborted: partial results)' : '';
  console.log(
    `${result.images} images in ${result.seconds.toFixed(1)} s ` +
      `(${result.imagesPerSecond.toFixed(2)} img/s), ${result.skipped.length} skipped${note}`,
  );
  if (result.reportHtml) console.log(`report: ${result.reportHtml}`);
  for (const c of result.configs) console.log(`${c.name}: ${c.dir}`);
}
