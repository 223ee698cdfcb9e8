#!/usr/bin/env node
// Formats native/ with clang-format (--check: report files that differ, exit 1).
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const dir = new URL('../native/', import.meta.url).pathname;
const files = readdirSync(dir)
  .filter((f) => /\.(cc|h)$/.test(f))
  .map((f) => join(dir, f));
const args = process.argv.includes('--check') ? ['--dry-run', '--Werror'] : ['-i'];
const { status, error } = spawnSync('clang-format', [...args, ...files], { stdio: 'inherit' });
if (error) {
  console.error(`clang-format: ${error.message} (apt install clang-format)`);
  process.exit(1);
}
process.exit(status ?? 1);
