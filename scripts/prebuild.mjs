#!/usr/bin/env node
// Makes the prebuilt addon for this platform: prebuilds/<platform>-<arch>/
//   crackseg.napi.glibc.torch-<cpu|cuda>-<torch version>.node
// The torch tag names the libtorch it links, so the loader never takes a CUDA build for a CPU
// libtorch (or one torch version for another) and can say which libtorch a prebuild needs.
//
//   node scripts/prebuild.mjs               rebuild from source with prebuildify (stripped)
//   node scripts/prebuild.mjs --from-build  stage the existing build/Release/crackseg.node
//   --root DIR                              the package to stage into (default: this one)
// Needs the TypeScript build (dist/) for the tag's spelling.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const require = createRequire(import.meta.url);
const here = new URL('..', import.meta.url).pathname;
const { values } = parseArgs({
  options: { 'from-build': { type: 'boolean' }, root: { type: 'string', default: here } },
});
const root = values.root;
const outDir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
// prebuildify's own name for a Node-API build; the torch tag is added below.
const untagged = join(outDir, 'crackseg.glibc.node');

if (values['from-build']) {
  mkdirSync(outDir, { recursive: true });
  copyFileSync(join(here, 'build', 'Release', 'crackseg.node'), untagged);
  const strip = spawnSync('strip', ['--strip-unneeded', untagged], { stdio: 'inherit' });
  if (strip.status !== 0) throw new Error('strip failed');
} else {
  const prebuildify = require('prebuildify');
  await new Promise((resolve, reject) =>
    prebuildify(
      {
        cwd: here,
        out: root,
        name: 'crackseg',
        napi: true,
        strip: true,
        tagLibc: true,
        nodeGyp: join(here, 'scripts', 'build-native.mjs'),
      },
      (err) => (err ? reject(err) : resolve()),
    ),
  );
}

// Tag with the libtorch the binary links, as the binary itself reports it.
const { torchTag } = await import(new URL('../dist/binding.js', import.meta.url).href);
const { flavour, torchVersion } = require(untagged).runtimeInfo();
const tag = torchTag(flavour, torchVersion);
for (const old of readdirSync(outDir).filter((f) => f.includes(`.torch-${flavour}-`))) {
  rmSync(join(outDir, old));
}
const tagged = join(outDir, `crackseg.napi.glibc.${tag}.node`);
renameSync(untagged, tagged);
console.log(`prebuild: ${tagged}`);
