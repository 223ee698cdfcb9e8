#!/usr/bin/env bash
# Everything a lent CUDA machine is for, in one command (it has PyTorch but no Node: see
# ../shared/gpu/README.md). Here: `npm ci && npm run build:ts && bash ../shared/gpu/pack.sh dist`;
# there: `source .gpu/bootstrap.sh && bash scripts/gpu-check.sh`. It builds the addon against the
# machine's CUDA libtorch, runs the evaluation and training benchmarks with their CUDA defaults
# (`small` at 1024 px, bf16), the CUDA tests, fp32 comparisons and the host's batch preparation
# rate, and writes logs and JSON into $OUT (or ./gpu-results). Copy the figures into
# docs/benchmarks.md with the GPU and the date.
set -uo pipefail
out=${OUT:-gpu-results}
mkdir -p "$out"
failed=0

# step NAME COMMAND...: runs COMMAND with its output in $out/NAME.log; prints status and tail.
step() {
  local name=$1 started=$SECONDS
  shift
  echo "== $name: $*"
  "$@" >"$out/$name.log" 2>&1
  local status=$?
  echo "== $name: exit $status after $((SECONDS - started)) s"
  tail -n 4 "$out/$name.log"
  ((status == 0)) || failed=1
  return "$status"
}

# bench NAME ARGS...: `npm run bench -- ARGS` with its JSON in $out/NAME.json.
bench() {
  local name=$1
  shift
  step "$name" node dist/bench/main.js "$@" && sed -n '/^{/,$p' "$out/$name.log" >"$out/$name.json"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$out/gpu.csv" 2>&1
step build node scripts/build-native.mjs rebuild || exit 1
node --input-type=module -e \
  "import('./dist/runtime.js').then((m) => console.log(JSON.stringify(m.runtimeInfo())))" \
  >"$out/runtime.json"
cat "$out/runtime.json"
# The targets' figures first, so that a run cut short by the device's time limit still has them.
bench bench-eval eval
bench bench-train train
step test-gpu npx tap test/gpu.test.ts test/train-loss.test.ts test/predict.test.ts \
  test/trainer.test.ts
bench bench-eval-fp32 eval --precision fp32 --images 64
bench bench-train-fp32 train --precision fp32 --strategies B --no-cache
bench bench-data data
exit "$failed"
