#!/usr/bin/env bash
# npm run test:asan: the addon built with AddressSanitizer and UndefinedBehaviorSanitizer in
# build-asan/ (CMake option CRACKSEG_SANITIZE), then the native-facing tests run against it
# (CRACKSEG_ADDON). Node itself is not instrumented, so the ASan runtime is preloaded; leak
# detection is off (node and libtorch keep allocations until exit by design). Any ASan or UBSan
# report fails the run. docs/reliability.md, "Native layer and sanitizers".
#   bash scripts/test-asan.sh [TEST_FILE...]   (default: the native-facing tests below)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
tests=("$@")
((${#tests[@]})) || tests=(
  test/reliability/native.test.ts
  test/binding.test.ts
  test/trainer.test.ts
  test/predict.test.ts
  test/skeleton.test.ts
  test/metrics.test.ts
)
jobs=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
node node_modules/cmake-js/bin/cmake-js build --out build-asan --CDCRACKSEG_SANITIZE=ON \
  --parallel "$jobs"
addon=$here/build-asan/Release/crackseg.node
libasan=$(gcc -print-file-name=libasan.so)
[[ -f $libasan ]] || {
  echo "test:asan: no libasan.so next to gcc ($libasan)" >&2
  exit 1
}
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT
# Reports go to files as well as stderr: a report in a child process (a worker, Python) is still
# seen after tap has moved on.
export CRACKSEG_ADDON=$addon
# Tensors from malloc, which ASan checks, not from the addon's mapped blocks, which it cannot.
export CRACKSEG_HOST_CACHE_MIB=system
export LD_PRELOAD=$libasan
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:log_path=$log/asan
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$log/ubsan
status=0
npx tap --timeout 1800 "${tests[@]}" || status=$?
if compgen -G "$log/*" >/dev/null; then
  cat "$log"/* >&2
  echo "test:asan: sanitizer reports above" >&2
  exit 1
fi
exit "$status"
