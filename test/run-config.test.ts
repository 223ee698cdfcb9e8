/**
 * Run configs (`--config train.yaml`): every kind of flag from YAML and JSON, the command line
 * overriding the file, errors naming the file and key, and the real `train` and `evaluate`
 * commands taking their flags from a file.
 */
import t from 'tap';
import { Command, Option } from 'commander';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { register as registerEvaluate } from '../ts/cli/evaluate.js';
import { collect, parsePositiveInteger } from '../ts/cli/options.js';
import { addRunConfig, CONFIG_SOURCE, readRunConfig } from '../ts/cli/run-config.js';
import { register as registerTrain } from '../ts/cli/train.js';

const dir = await mkdtemp(join(tmpdir(), 'crackseg-run-config-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));

/** A command with one flag of each kind; parses `args` and returns its options and sources. */
async function parse(args: string[]) {
  const command = new Command('demo-run')
    .exitOverride()
    .option('--model <file>', 'a path')
    .option('--epochs <n>', 'a parsed number', parsePositiveInteger, 50)
    .option('--use-skeleton-loss', 'a boolean')
    .option('--no-augment', 'a negated boolean')
    .option('--train-extra <regex>', 'repeatable', collect)
    .option('--save-probabilities [bits]', 'an optional value', parsePositiveInteger)
    .addOption(new Option('--lora-strategy <s>', 'choices').choices(['A', 'B', 'C']));
  let seen: Record<string, unknown> = {};
  addRunConfig(command).action(() => {
    seen = command.opts();
  });
  await command.parseAsync(args, { from: 'user' });
  const sources = Object.fromEntries(
    Object.keys(seen).map((key) => [key, command.getOptionValueSource(key)]),
  );
  return { options: seen, sources };
}

async function configFile(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

t.test('every kind of flag from YAML; the command line wins', async (t) => {
  const yaml = await configFile(
    'train.yaml',
    [
      '# a training run',
      'model: small-B.pt',
      'epochs: 7',
      'use-skeleton-loss: true',
      'augment: false',
      'train-extra: ["^a\\\\.", "^b\\\\."]',
      'saveProbabilities: 8',
      'lora-strategy: B',
      '',
    ].join('\n'),
  );
  const fromFile = await parse(['--config', yaml]);
  t.match(fromFile.options, {
    model: 'small-B.pt',
    epochs: 7,
    useSkeletonLoss: true,
    augment: false,
    trainExtra: ['^a\\.', '^b\\.'],
    saveProbabilities: 8,
    loraStrategy: 'B',
  });
  t.equal(fromFile.sources.epochs, CONFIG_SOURCE);

  const overridden = await parse(['--config', yaml, '--epochs', '3', '--train-extra', '^c']);
  t.equal(overridden.options.epochs, 3, 'the command line overrides the file');
  t.same(overridden.options.trainExtra, ['^c']);
  t.equal(overridden.sources.epochs, 'cli');
  t.equal(overridden.options.model, 'small-B.pt', 'the rest still from the file');

  const none = await parse([]);
  t.match(none.options, { epochs: 50, augment: true });
  t.equal(none.sources.epochs, 'default');

  // JSON by its extension; `no-augment: true` reads as augment false.
  const json = await configFile('run.json', '{"epochs": "4", "no-augment": true}');
  t.match((await parse(['--config', json])).options, { epochs: 4, augment: false });
});

t.test('errors name the file and the key', async (t) => {
  const cases: Array<[string, string, RegExp]> = [
    [
      'unknown.yaml',
      'epochs: 3\nlearning-rat: 1e-4\n',
      /unknown\.yaml: key 'learning-rat': unknown key \('crackseg demo-run' has no --learning-rat\)/,
    ],
    [
      'bad-number.yaml',
      'epochs: 0\n',
      /bad-number\.yaml: key 'epochs': expected a positive integer/,
    ],
    ['bad-bool.yaml', 'augment: "no"\n', /bad-bool\.yaml: key 'augment': expected true or false/],
    ['bad-choice.yaml', 'lora-strategy: D\n', /key 'lora-strategy': 'D' is not one of A, B, C/],
    [
      'nested.yaml',
      'model:\n  path: x\n',
      /nested\.yaml: key 'model': expected a string or number/,
    ],
    ['list.yaml', '- epochs\n', /list\.yaml: a run config must be a mapping/],
    ['broken.yaml', 'epochs: [1,\n', /broken\.yaml:\d+: not valid YAML/],
    ['broken.json', '{"epochs": }', /broken\.json: not valid JSON/],
    ['config.yaml', 'config: other.yaml\n', /key 'config': unknown key/],
  ];
  for (const [name, text, message] of cases) {
    await t.rejects(parse(['--config', await configFile(name, text)]), message, name);
  }
  await t.rejects(
    parse(['--config', join(dir, 'absent.yaml')]),
    /cannot read run config '.*absent\.yaml'/,
  );
});

t.test('train and evaluate take their flags from --config', async (t) => {
  const run = async (register: (p: Command) => void, args: string[]) => {
    const program = new Command().exitOverride();
    register(program);
    const [log, error] = [console.log, console.error];
    console.log = console.error = () => {};
    try {
      await program.parseAsync(['node', 'crackseg', ...args]);
    } finally {
      [console.log, console.error] = [log, error];
    }
  };
  const train = await configFile(
    'train-run.yaml',
    `model: ${join(dir, 'from-config.pt')}\nepochs: 2\nbatch-size: 2\n`,
  );
  // The model comes from the file (it does not exist: the run stops there, naming it)...
  await t.rejects(run(registerTrain, ['train', '--config', train]), /from-config\.pt/);
  // ...unless the command line names another.
  await t.rejects(
    run(registerTrain, ['train', '--config', train, '--model', join(dir, 'from-cli.pt')]),
    /from-cli\.pt/,
  );
  await t.rejects(
    run(registerTrain, ['train']),
    /--model is required \(on the command line or in --config\)/,
  );

  // evaluate: prompts and a flag that needs them, from the file.
  const evaluate = await configFile(
    'evaluate.json',
    JSON.stringify({ prompts: 'points:1', 'expand-ratio': 0.2, 'skip-inference': true }),
  );
  await t.rejects(
    run(registerEvaluate, ['evaluate', '--config', evaluate]),
    /--expand-ratio applies to box prompts, and --prompts has none/,
    'a flag from the file counts as given',
  );
  t.same(await readRunConfig(evaluate), {
    prompts: 'points:1',
    'expand-ratio': 0.2,
    'skip-inference': true,
  });
});
