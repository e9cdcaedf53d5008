#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test: the lit suites, the unit tests and
# the ONNX node tests (./build), then one module shared by several threads under
# ThreadSanitizer (./build-tsan) and each fuzz target for 20 s (./build-fuzz).
#
#   scripts/test.sh              the above
#   scripts/test.sh --sanitize   instead: everything built with AddressSanitizer and
#                                UndefinedBehaviorSanitizer (clang-22, ./build-sanitize),
#                                then its unit tests and lit suite
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

if [ "${1:-}" = "--sanitize" ]; then
  bash "$root/scripts/configure-clang.sh" "$root/build-sanitize" "Address;Undefined"
  ninja -C "$root/build-sanitize" qforge-test-depends
  # libprotobuf, libonnx and MLIR are not instrumented: ASan's container-overflow
  # annotations would misfire on containers they fill.
  export ASAN_OPTIONS="detect_container_overflow=0:${ASAN_OPTIONS:-}"
  export UBSAN_OPTIONS="print_stacktrace=1:${UBSAN_OPTIONS:-}"
  echo "== unit tests (ASan, UBSan) =="
  /usr/bin/python3 "$root/test/run_unittests.py" "$root/build-sanitize/unittests"
  echo "== lit tests (ASan, UBSan) =="
  /usr/lib/llvm-22/bin/lit -sv "$root/build-sanitize/test"
  exit 0
fi

bash "$root/scripts/build.sh" qforge-test-depends
ninja -C "$root/build" check

echo "== one module, several threads, under ThreadSanitizer =="
bash "$root/scripts/configure-clang.sh" "$root/build-tsan" "Thread"
ninja -C "$root/build-tsan" concurrent-sessions
tsan_dir=$(mktemp -d)
trap 'rm -rf "$tsan_dir"' EXIT
"$root/build/bin/qforge-compile" "$root/test/e2e/Inputs/shared_lm.onnx" \
  -o "$tsan_dir/m.qfm" --bits 4 --group-size 32 --quiet
export TSAN_OPTIONS="halt_on_error=1:suppressions=$root/test/tools/tsan.supp:${TSAN_OPTIONS:-}"
"$root/build-tsan/bin/concurrent-sessions" "$tsan_dir/m.qfm" 4 10 1
"$root/build-tsan/bin/concurrent-sessions" "$tsan_dir/m.qfm" 2 5 2
unset TSAN_OPTIONS

echo "== fuzz targets, 20 s each =="
bash "$root/scripts/fuzz.sh" --smoke 20
