// npm install hook: use a prebuilt addon when one loads here, else build from source with cmake-js.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const root = new URL('..', import.meta.url).pathname;
if (!existsSync(`${root}CMakeLists.txt`)) process.exit(0);
const probe = spawnSync(process.execPath, [`${root}scripts/probe-addon.mjs`], { stdio: 'inherit' });
if (probe.status === 0) process.exit(0);
console.log('crackseg: no loadable addon yet; building from source with cmake-js');
const build = spawnSync(process.execPath, [`${root}scripts/build-native.mjs`, 'compile'], {
  stdio: 'inherit',
});
process.exit(build.status ?? 1);
