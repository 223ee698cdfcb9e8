/**
 * Atomic file output: data goes to a temporary file beside the target, then is renamed over it,
 * so a reader (or a crash) never sees a half-written file and an existing file survives a failure.
 */
import { mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { faultBeforeWrite, faultPoint } from './fault.js';

let counter = 0;
const temporaryName = (target: string) => `.${target}.${process.pid}.${counter++}.tmp`;
const TEMPORARY = /^\..+\.(\d+)\.\d+\.tmp$/;

/**
 * Removes the temporary files of {@link writeFileAtomic} that other processes left in `dir`:
 * processes killed while writing (two processes never write to the same output folder).
 */
export async function removeOthersTemporaries(dir: string): Promise<void> {
  const names = await readdir(dir).catch(() => []);
  for (const name of names) {
    const pid = TEMPORARY.exec(name)?.[1];
    if (pid !== undefined && pid !== String(process.pid))
      await rm(join(dir, name), { force: true });
  }
}

/**
 * Writes `data` to `path` atomically, creating parent folders. A failure (ENOSPC, say) leaves no
 * temporary file and throws an error that names `path` and keeps the system error's `code`.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const temp = join(dirname(path), temporaryName(basename(path)));
  try {
    await mkdir(dirname(path), { recursive: true });
    faultBeforeWrite();
    await writeFile(temp, data);
    faultPoint();
    await rename(temp, path);
    faultPoint();
  } catch (err) {
    await rm(temp, { force: true });
    throw pathError(err, 'write', path);
  }
}

/**
 * A file system error as one that says what failed on which file ("cannot write PATH: ENOSPC…"),
 * keeping the system error's code, errno and syscall; an error that names `path` already is kept.
 */
export function pathError(err: unknown, action: 'read' | 'write' | 'remove', path: string): Error {
  const error = err as NodeJS.ErrnoException;
  if (!(error instanceof Error) || error.message.includes(path)) return error;
  return Object.assign(new Error(`cannot ${action} ${path}: ${error.message}`, { cause: error }), {
    ...(error.code === undefined ? {} : { code: error.code }),
    ...(error.errno === undefined ? {} : { errno: error.errno }),
    ...(error.syscall === undefined ? {} : { syscall: error.syscall }),
    path,
  });
}
