#!/usr/bin/env bash
# Builds the libFuzzer targets (clang-22, AddressSanitizer and UndefinedBehaviorSanitizer,
# in ./build-fuzz) and runs them.
#
#   scripts/fuzz.sh TARGET SECONDS   fuzzes one target: import-onnx, qfm or tensor
#   scripts/fuzz.sh --smoke [SECONDS] every target for SECONDS (default 20) each, after
#                                    replaying its seeds and fuzz/regressions/TARGET/
#
# Seeds come from fuzz/corpus/TARGET (committed, read only); inputs the fuzzer finds
# interesting go to build-fuzz/corpus/TARGET, and a crash, hang, leak or sanitizer
# report leaves its input in build-fuzz/artifacts/TARGET/ and a non-zero exit. A fix
# comes with that input in fuzz/regressions/TARGET/ (replayed here and by lit).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
targets=(import-onnx qfm tensor)

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 1 ] || usage

build="$root/build-fuzz"
bash "$root/scripts/configure-clang.sh" "$build" "Address;Undefined" -DQFORGE_FUZZ=ON

# Protobuf, libonnx and MLIR are not instrumented: containers they fill are not
# annotated, so ASan's container-overflow check would misfire on them.
export ASAN_OPTIONS="detect_container_overflow=0:abort_on_error=0:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:${UBSAN_OPTIONS:-}"

run_target() {  # TARGET SECONDS
  local t=$1 seconds=$2
  local bin="$build/bin/fuzz-$t"
  mkdir -p "$build/corpus/$t" "$build/artifacts/$t"
  local regressions=()
  if compgen -G "$root/fuzz/regressions/$t/*" >/dev/null; then
    regressions=("$root"/fuzz/regressions/"$t"/*)
    echo "fuzz-$t: replaying ${#regressions[@]} regression inputs"
    "$bin" -runs=0 "${regressions[@]}" >"$build/artifacts/$t/replay.log" 2>&1 ||
      { cat "$build/artifacts/$t/replay.log"; echo "fuzz-$t: a regression input fails"; return 1; }
  fi
  echo "fuzz-$t: fuzzing for $seconds s"
  "$bin" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2560 -malloc_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$build/artifacts/$t/" \
    "$build/corpus/$t" "$root/fuzz/corpus/$t" >"$build/artifacts/$t/fuzz.log" 2>&1 || {
      tail -n 60 "$build/artifacts/$t/fuzz.log"
      echo "fuzz-$t: FAILED; the input is in $build/artifacts/$t/"
      return 1
    }
  grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb" "$build/artifacts/$t/fuzz.log" |
    sed "s/^/fuzz-$t: /"
}

if [ "$1" = "--smoke" ]; then
  seconds=${2:-20}
  ninja -C "$build" qforge-fuzz-targets
  for t in "${targets[@]}"; do run_target "$t" "$seconds"; done
  exit 0
fi
[ $# -eq 2 ] || usage
case " ${targets[*]} " in *" $1 "*) ;; *) echo "unknown target '$1' (${targets[*]})" >&2; exit 2;; esac
ninja -C "$build" "fuzz-$1"
run_target "$1" "$2"
