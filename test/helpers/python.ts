/** Runs a Python script with the interpreter that imports torch (the tests' reference side). */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { findPython } from '../../ts/python.js';

const run = promisify(execFile);

/** Runs `python script args…` and returns its stdout; rejects with Python's stderr. */
export async function runPython(script: string, args: string[] = []): Promise<string> {
  const { executable } = await findPython();
  const { stdout } = await run(executable, [script, ...args], { maxBuffer: 1 << 28 });
  return stdout;
}
