/**
 * Failed writes (issue 15, item 13): a write that fails, e.g. on a full disk, is an error naming
 * the file (Node's own message for ENOSPC names none), keeping the system's code, and leaves
 * neither a temporary file nor a changed target.
 */
import t from 'tap';
import * as fs from 'node:fs/promises';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

t.test('writeFileAtomic: a failed write names the file and keeps the code', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'crackseg-writes-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  // [system error as Node gives it, the write that fails]
  const table: Array<[code: string, message: string, failing: 'writeFile' | 'rename']> = [
    ['ENOSPC', 'ENOSPC: no space left on device, write', 'writeFile'],
    ['EDQUOT', 'EDQUOT: disk quota exceeded, write', 'writeFile'],
    ['EIO', 'EIO: i/o error, write', 'writeFile'],
    ['EXDEV', "EXDEV: cross-device link not permitted, rename 'a' -> 'b'", 'rename'],
  ];
  for (const [code, message, failing] of table) {
    const failure = async (...args: unknown[]) => {
      // Part of the data reaches the temporary file before the disk fills.
      if (failing === 'writeFile') await writeFile(args[0] as string, 'partial');
      throw Object.assign(new Error(message), { code, syscall: 'write' });
    };
    const { writeFileAtomic } = await t.mockImport<typeof import('../../ts/util/atomic.js')>(
      '../../ts/util/atomic.js',
      { 'node:fs/promises': { ...fs, [failing]: failure } },
    );
    const target = join(dir, `${code}.json`);
    await writeFile(target, 'previous');
    await t.rejects(writeFileAtomic(target, 'new content'), {
      code,
      path: target,
      message: `cannot write ${target}: ${message}`,
    });
    t.equal(await readFile(target, 'utf8'), 'previous', `${code}: the target is unchanged`);
    t.same(
      (await readdir(dir)).filter((f) => f.endsWith('.tmp')),
      [],
      `${code}: no temporary file left`,
    );
  }
});
