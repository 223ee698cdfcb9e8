/** `crackseg doctor`: one line per layer with its verdict; exits 1 when any fails. */
import type { Command } from 'commander';
import { doctor, type Verdict } from '../doctor.js';

const marks: Record<Verdict, string> = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL' };

export function register(program: Command): void {
  program
    .command('doctor')
    .description('check Node, the native addon, libtorch, CUDA and Python with torch')
    .action(async () => {
      const checks = await doctor();
      const width = Math.max(...checks.map((c) => c.name.length));
      for (const check of checks) {
        console.log(`${marks[check.verdict]}  ${check.name.padEnd(width)}  ${check.detail}`);
      }
      const failed = checks.filter((c) => c.verdict === 'fail').length;
      console.log(failed ? `\n${failed} check(s) failed.` : '\nAll checks passed.');
      if (failed) process.exitCode = 1;
    });
}
