/**
 * metrics.jsonl, a training run's log: a JSON record a line, `step` records (every logEverySteps
 * optimizer steps) and `epoch` records (see docs/training.md).
 */
import { appendFile, readFile } from 'node:fs/promises';
import { pathError, writeFileAtomic } from '../util/atomic.js';

/** Appends one record; an error (ENOSPC, say) names the file. */
export async function appendMetricsRecord(path: string, record: object): Promise<void> {
  try {
    await appendFile(path, `${JSON.stringify(record)}\n`);
  } catch (err) {
    throw pathError(err, 'write', path);
  }
}

/**
 * For a resume: keeps the records up to the checkpoint it resumes from (`step` records up to its
 * optimizer step, `epoch` records up to its epoch) and drops those a stopped run logged after it,
 * which the resumed run logs again, and a last line cut short.
 */
export async function trimMetricsLog(
  path: string,
  upTo: { epoch: number; optimizerSteps: number },
): Promise<void> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw pathError(err, 'read', path);
  }
  const lines = text.split('\n').filter((line) => line !== '');
  const kept = lines.filter((line) => {
    let record: { type?: unknown; step?: unknown; epoch?: unknown };
    try {
      record = JSON.parse(line) as typeof record;
    } catch {
      return false;
    }
    if (record.type === 'step') return Number(record.step) <= upTo.optimizerSteps;
    if (record.type === 'epoch') return Number(record.epoch) <= upTo.epoch;
    return true;
  });
  if (kept.length === lines.length && (text === '' || text.endsWith('\n'))) return;
  await writeFileAtomic(path, kept.map((line) => `${line}\n`).join(''));
}
