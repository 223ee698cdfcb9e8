/**
 * Run configs: `--config FILE` (YAML, or JSON by its `.json` extension) holds any of a command's
 * flags, keyed by the long flag without dashes (`learning-rate: 1e-4`, or `learningRate`); a flag
 * given on the command line wins over the file. Values go through the flag's own parser, so a
 * bad value fails as it would on the command line, naming the file and key. Negated flags take
 * their positive name (`augment: false` for `--no-augment`), repeatable ones a list.
 */
import type { Command, Option } from 'commander';
import { readFile } from 'node:fs/promises';
import { extname, resolve } from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';

/** The value source commander reports for a flag taken from the config file. */
export const CONFIG_SOURCE = 'config';

/** A config file's top-level mapping. */
export async function readRunConfig(path: string): Promise<Record<string, unknown>> {
  const file = resolve(path);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new Error(`cannot read run config '${file}': ${(error as Error).message}`);
  }
  let value: unknown;
  try {
    value = extname(file).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    const line = error instanceof YAMLParseError ? `:${error.linePos?.[0].line ?? '?'}` : '';
    throw new Error(
      `${file}${line}: not valid ${extname(file) === '.json' ? 'JSON' : 'YAML'}: ${(error as Error).message}`,
    );
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error(`${file}: a run config must be a mapping of flag names to values`);
  }
  return value as Record<string, unknown>;
}

/** The command's option a config key names: its long flag without dashes, or its attribute. */
function optionFor(command: Command, key: string): { option: Option; negated: boolean } | null {
  for (const option of command.options) {
    const long = option.long?.replace(/^--/, '');
    if (long === 'config' || long === 'help') continue;
    if (long === key) return { option, negated: false };
    if (option.attributeName() === key) return { option, negated: option.negate };
  }
  return null;
}

/** The option's value from a config value, as the command line would make it. */
function optionValue(option: Option, negated: boolean, value: unknown, where: string): unknown {
  const takesValue = option.required || option.optional;
  if (!takesValue) {
    if (typeof value !== 'boolean') throw new Error(`${where}: expected true or false`);
    // `augment: false` for --no-augment; `no-augment: true` the same.
    return option.negate && !negated ? !value : value;
  }
  if (option.optional && typeof value === 'boolean') {
    return value ? (option.presetArg ?? true) : undefined;
  }
  const items = Array.isArray(value) ? value : [value];
  if (items.length === 0 || items.some((item) => !['string', 'number'].includes(typeof item))) {
    throw new Error(
      `${where}: expected a string or number${option.variadic ? ' (or a list)' : ''}`,
    );
  }
  let result: unknown = undefined;
  for (const item of items.map(String)) {
    if (option.argChoices && !option.argChoices.includes(item)) {
      throw new Error(`${where}: '${item}' is not one of ${option.argChoices.join(', ')}`);
    }
    try {
      result = option.parseArg
        ? option.parseArg(item, result)
        : option.variadic
          ? [...((result as string[]) ?? []), item]
          : item;
    } catch (error) {
      throw new Error(`${where}: ${(error as Error).message}`);
    }
  }
  return result;
}

/**
 * Sets the command's options from `values` (read from `file`) except those given on the command
 * line. An unknown key, or a value its flag's parser rejects, is an error naming file and key.
 */
export function applyRunConfig(
  command: Command,
  file: string,
  values: Record<string, unknown>,
): void {
  for (const [key, value] of Object.entries(values)) {
    const where = `${resolve(file)}: key '${key}'`;
    const found = optionFor(command, key);
    if (!found) {
      throw new Error(`${where}: unknown key ('crackseg ${command.name()}' has no --${key})`);
    }
    const name = found.option.attributeName();
    const parsed = optionValue(found.option, found.negated, value, where);
    if (command.getOptionValueSource(name) === 'cli') continue;
    if (parsed !== undefined) command.setOptionValueWithSource(name, parsed, CONFIG_SOURCE);
  }
}

/**
 * Adds `--config <file>` to a command: read and applied before its action runs. Flags the
 * command needs must then be checked in the action, not as required options (commander checks
 * those before the file is read): see {@link requireFlag}.
 */
export function addRunConfig(command: Command): Command {
  return command
    .option(
      '--config <file>',
      'run config (YAML, or .json) holding any of these flags; the command line overrides it',
    )
    .hook('preAction', async (self) => {
      const file = self.getOptionValue('config') as string | undefined;
      if (file) applyRunConfig(self, file, await readRunConfig(file));
    });
}

/** Throws unless the command has `--<flag>` (from the command line or its config). */
export function requireFlag(command: Command, flag: string): void {
  const option = command.options.find((o) => o.long === `--${flag}`);
  if (option && command.getOptionValue(option.attributeName()) === undefined) {
    throw new Error(`--${flag} is required (on the command line or in --config)`);
  }
}
