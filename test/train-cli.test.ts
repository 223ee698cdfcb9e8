import t from 'tap';
import { InvalidArgumentError } from 'commander';
import { join, resolve } from 'node:path';
import {
  formatDuration,
  handleInterrupts,
  listFilePath,
  parseInteger,
  parseNonNegativeInteger,
  parseNonNegativeNumber,
  parsePositiveInteger,
  parsePrecision,
  parseSize,
  type InterruptTarget,
} from '../ts/cli/options.js';

t.test(
  'list files: a flag is relative to the current directory, the default to the data root',
  async (t) => {
    t.equal(listFilePath('data/train.txt', 'data', 'train.txt'), resolve('data/train.txt'));
    t.equal(
      listFilePath('./crack500/test.txt', 'elsewhere', 'test.txt'),
      resolve('crack500/test.txt'),
    );
    t.equal(listFilePath(undefined, 'data', 'val.txt'), resolve('data', 'val.txt'));
    t.equal(listFilePath('/abs/list.txt', 'data', 'val.txt'), '/abs/list.txt');
    t.equal(listFilePath(undefined, '/root/d', 'train.txt'), join('/root/d', 'train.txt'));
  },
);

t.test('number parsers accept what they say and refuse the rest', async (t) => {
  t.equal(parsePositiveInteger('4'), 4);
  for (const bad of ['0', '-1', '1.5', 'x', ''])
    t.throws(() => parsePositiveInteger(bad), InvalidArgumentError, `positive integer: '${bad}'`);
  t.equal(parseNonNegativeInteger('0'), 0);
  t.throws(() => parseNonNegativeInteger('-1'), InvalidArgumentError);
  t.equal(parseInteger('-3'), -3);
  t.throws(() => parseInteger('1e3'), InvalidArgumentError);
  t.equal(parseNonNegativeNumber('1e-4'), 1e-4);
  t.equal(parseNonNegativeNumber('.5'), 0.5);
  for (const bad of ['-0.1', 'abc', '', 'Infinity'])
    t.throws(() => parseNonNegativeNumber(bad), InvalidArgumentError, `number ≥ 0: '${bad}'`);
  t.same(parseSize('640x360'), { width: 640, height: 360 });
  t.throws(() => parseSize('640x0'), InvalidArgumentError);
  t.same(['fp32', 'bf16'].map(parsePrecision), ['fp32', 'bf16']);
  for (const bad of ['fp16', 'bfloat16', 'toString', ''])
    t.throws(() => parsePrecision(bad), InvalidArgumentError, `precision: '${bad}'`);
});

t.test('formatDuration', async (t) => {
  t.equal(formatDuration(42.4), '42s');
  t.equal(formatDuration(125), '2m05s');
  t.equal(formatDuration(3720), '1h02m');
  t.equal(formatDuration(-3), '0s');
});

for (const [signal, again, code] of [
  ['SIGINT', 'Ctrl-C', 130],
  ['SIGTERM', 'SIGTERM', 143],
] as const)
  t.test(`${signal}: the first aborts with a message, the second exits with ${code}`, async (t) => {
    const listeners = new Map<string, Set<() => void>>();
    const exits: number[] = [];
    const target: InterruptTarget = {
      on: (event, listener) =>
        listeners.set(event, (listeners.get(event) ?? new Set()).add(listener)),
      off: (event, listener) => listeners.get(event)?.delete(listener),
      exit: ((code: number) => {
        exits.push(code);
      }) as InterruptTarget['exit'],
    };
    const written: string[] = [];
    const interrupts = handleInterrupts('stopping soon', target, (text) => written.push(text));
    const send = () => [...(listeners.get(signal) ?? [])].forEach((listener) => listener());
    t.same([...listeners.keys()].sort(), ['SIGINT', 'SIGTERM']);
    t.equal(interrupts.exitCode(), undefined, 'no status before a signal');
    send();
    t.equal(interrupts.signal.aborted, true);
    t.equal(interrupts.exitCode(), code, 'the status the command exits with');
    t.same(exits, []);
    t.match(written.join(''), `stopping soon (${again} again to quit now)`);
    send();
    t.same(exits, [code]);
    interrupts.release();
    t.equal(
      [...listeners.values()].reduce((n, set) => n + set.size, 0),
      0,
      'release removes the handlers',
    );
  });
