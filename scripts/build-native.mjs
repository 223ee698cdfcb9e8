#!/usr/bin/env node
// Builds the addon with cmake-js on every core: `compile` (configure when needed, then build; the
// install hook's default) or `rebuild` (from scratch). Also stands in for node-gyp when
// prebuildify builds: node-gyp's arguments (--target, --devdir, …) are dropped, `rebuild` is run.
// Every core because each translation unit compiles slowly against libtorch's headers, and
// Makefile generators build one at a time unless told otherwise.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';

const cmakeJs = createRequire(import.meta.url).resolve('cmake-js/bin/cmake-js');
const args = process.argv.slice(2);
const command = args[0] === 'compile' ? 'compile' : 'rebuild';
const jobs = process.env.CMAKE_BUILD_PARALLEL_LEVEL ?? String(availableParallelism());
const { status } = spawnSync(
  process.execPath,
  [cmakeJs, command, '--parallel', jobs, ...(args.includes('--debug') ? ['--debug'] : [])],
  { stdio: 'inherit', cwd: new URL('..', import.meta.url).pathname },
);
process.exit(status ?? 1);
