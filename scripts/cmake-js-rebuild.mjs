#!/usr/bin/env node
// Stands in for node-gyp when prebuildify builds: the addon is a cmake-js project, so node-gyp's
// arguments (--target, --devdir, …) are dropped and cmake-js rebuilds build/Release.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

const cmakeJs = createRequire(import.meta.url).resolve('cmake-js/bin/cmake-js');
const args = process.argv.includes('--debug') ? ['rebuild', '--debug'] : ['rebuild'];
const { status } = spawnSync(process.execPath, [cmakeJs, ...args], { stdio: 'inherit' });
process.exit(status ?? 1);
