/**
 * Finds the Python interpreter that imports torch: the first of `CRACKSEG_PYTHON`, `python3` on
 * PATH and `/usr/bin/python3` that does. The exporter and the reference checks run through it.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface PythonInfo {
  /** The interpreter, as it can be passed to `spawn`. */
  executable: string;
  /** `torch.__version__` as that interpreter reports it. */
  torchVersion: string;
}

/** The candidates in the order they are tried. */
export function pythonCandidates(env: NodeJS.ProcessEnv = process.env): string[] {
  const named = env.CRACKSEG_PYTHON?.trim();
  return [...(named ? [named] : []), 'python3', '/usr/bin/python3'];
}

let cached: Promise<PythonInfo> | undefined;

/** The first candidate that imports torch; rejects with every candidate's reason when none does. */
export function findPython(env: NodeJS.ProcessEnv = process.env): Promise<PythonInfo> {
  if (env === process.env) return (cached ??= firstWithTorch(pythonCandidates(env), env));
  return firstWithTorch(pythonCandidates(env), env);
}

/** The first of `candidates` that imports torch. */
export async function firstWithTorch(
  candidates: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<PythonInfo> {
  const failures: string[] = [];
  for (const executable of candidates) {
    try {
      const { stdout } = await run(executable, ['-c', 'import torch; print(torch.__version__)'], {
        env,
        timeout: 60_000,
      });
      return { executable, torchVersion: stdout.trim() };
    } catch (err) {
      const reason = (err as { stderr?: string; message: string }).stderr?.trim().split('\n').pop();
      failures.push(`  ${executable}: ${reason || (err as Error).message.split('\n')[0]}`);
    }
  }
  if (env === process.env) cached = undefined;
  throw new Error(
    'No Python interpreter that imports torch was found. Tried:\n' +
      failures.join('\n') +
      '\nInstall python3-torch (Debian) or name an interpreter with CRACKSEG_PYTHON=/path/to/python.',
  );
}
