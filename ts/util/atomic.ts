/**
 * Atomic file output: data goes to a temporary file beside the target, then is renamed over it,
 * so a reader (or a crash) never sees a half-written file and an existing file survives a failure.
 */
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';

let counter = 0;

/**
 * Writes `data` to `path` atomically, creating parent folders. A failure names `path` (Node's
 * message for a failed write, e.g. `ENOSPC: no space left on device, write`, names none) and keeps
 * the system's `code`; the temporary file is removed.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${counter++}.tmp`);
  try {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(temp, data);
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    const { code, message } = err as NodeJS.ErrnoException;
    throw Object.assign(new Error(`cannot write '${path}': ${message}`, { cause: err }), {
      code,
      path,
    });
  }
}
