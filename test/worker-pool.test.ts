import t from 'tap';
import { WorkerPool } from '../ts/util/worker-pool.js';
import type { PoolTestRequest } from './fixtures/pool-worker.js';

const workerUrl = new URL('./fixtures/pool-worker.ts', import.meta.url);

t.test('each worker serves up to perWorker requests at once; all are answered', async (t) => {
  const pool = new WorkerPool<PoolTestRequest, { concurrent: number }>(workerUrl, 2, 3);
  t.teardown(() => pool.close());
  const replies = await Promise.all(
    Array.from({ length: 12 }, () => pool.run({ kind: 'wait', ms: 50 })),
  );
  t.equal(replies.length, 12);
  t.equal(Math.max(...replies.map((r) => r.concurrent)), 3, 'three at once in a thread, no more');
});

t.test("a task's error rejects its request only", async (t) => {
  const pool = new WorkerPool<PoolTestRequest, { concurrent: number }>(workerUrl, 1);
  t.teardown(() => pool.close());
  await t.rejects(pool.run({ kind: 'fail' }), /the task failed/);
  t.same(await pool.run({ kind: 'wait', ms: 1 }), { concurrent: 1 });
});

t.test('a crashed thread fails what it was serving and is replaced', async (t) => {
  const pool = new WorkerPool<PoolTestRequest, { concurrent: number }>(workerUrl, 1);
  t.teardown(() => pool.close());
  await t.rejects(pool.run({ kind: 'crash' }), /the thread crashed/);
  t.same(await pool.run({ kind: 'wait', ms: 1 }), { concurrent: 1 }, 'a new thread answers');
});

t.test('close rejects what is pending; later runs are refused', async (t) => {
  const pool = new WorkerPool<PoolTestRequest, { concurrent: number }>(workerUrl, 1);
  const pending = t.rejects(pool.run({ kind: 'wait', ms: 1000 }), /closed/);
  await pool.close();
  await pending;
  await t.rejects(pool.run({ kind: 'wait', ms: 1 }), /closed/);
});
