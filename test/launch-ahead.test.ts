// The device loop's overlap: launch n+1, then settle n; stops, errors and the batch in flight.
import t from 'tap';
import { launchAhead, type LaunchAheadSteps } from '../ts/util/launch-ahead.js';

/** Steps that record every call; `fail` names the calls that throw. */
function recorder(fail: { launch?: number; settle?: number; abandon?: boolean } = {}) {
  const log: string[] = [];
  const running = new Set<number>();
  const steps: LaunchAheadSteps<number, number> = {
    launch: (item) => {
      if (item === fail.launch) throw new Error(`launch ${item} failed`);
      log.push(`launch ${item}`);
      running.add(item);
      return item;
    },
    settle: async (item) => {
      await new Promise((resolve) => setTimeout(resolve, 1));
      running.delete(item);
      log.push(`settle ${item}`);
      if (item === fail.settle) throw new Error(`settle ${item} failed`);
    },
    abandon: async (item) => {
      running.delete(item);
      log.push(`abandon ${item}`);
      if (fail.abandon) throw new Error('abandon failed');
    },
  };
  return { log, running, steps };
}

async function* slowly(items: number[], failAfter = Infinity) {
  for (const [i, item] of items.entries()) {
    if (i === failAfter) throw new Error('the items failed');
    await new Promise((resolve) => setTimeout(resolve, 1));
    yield item;
  }
}

t.test('each item is launched before the previous one is settled; settles in order', async (t) => {
  const { log, running, steps } = recorder();
  t.same(await launchAhead(slowly([1, 2, 3]), steps), { stopped: false });
  t.same(log, ['launch 1', 'launch 2', 'settle 1', 'launch 3', 'settle 2', 'settle 3']);
  t.equal(running.size, 0, 'everything launched was settled');
});

t.test('plain iterables and no items', async (t) => {
  const { log, steps } = recorder();
  t.same(await launchAhead([], steps), { stopped: false });
  t.same(log, []);
  await launchAhead([7], steps);
  t.same(log, ['launch 7', 'settle 7'], 'a single item is settled at the end');
});

t.test('proceed false stops before launching; the item in flight is still settled', async (t) => {
  const { log, steps } = recorder();
  const asked: number[] = [];
  const result = await launchAhead([1, 2, 3, 4], {
    ...steps,
    proceed: (item) => (asked.push(item), item < 3),
  });
  t.same(result, { stopped: true });
  t.same(asked, [1, 2, 3], 'not asked again after stopping');
  t.same(log, ['launch 1', 'launch 2', 'settle 1', 'settle 2']);
});

t.test('a failed launch abandons the item in flight, unsettled', async (t) => {
  const { log, running, steps } = recorder({ launch: 3 });
  await t.rejects(launchAhead([1, 2, 3, 4], steps), /launch 3 failed/);
  t.same(log, ['launch 1', 'launch 2', 'settle 1', 'abandon 2']);
  t.equal(running.size, 0);
});

t.test('a failed settle abandons the item launched after it', async (t) => {
  const { log, running, steps } = recorder({ settle: 1, abandon: true });
  await t.rejects(launchAhead([1, 2, 3], steps), /settle 1 failed/, "abandon's error is not it");
  t.same(log, ['launch 1', 'launch 2', 'settle 1', 'abandon 2']);
  t.equal(running.size, 0);
});

t.test('failing items abandon the item in flight', async (t) => {
  const { log, running, steps } = recorder();
  await t.rejects(launchAhead(slowly([1, 2, 3], 2), steps), /the items failed/);
  t.same(log, ['launch 1', 'launch 2', 'settle 1', 'abandon 2']);
  t.equal(running.size, 0);
});

t.test('a failed settle of the last item rejects; nothing is left to abandon', async (t) => {
  const { log, steps } = recorder({ settle: 2 });
  await t.rejects(launchAhead([1, 2], steps), /settle 2 failed/);
  t.same(log, ['launch 1', 'launch 2', 'settle 1', 'settle 2']);
});
