#!/usr/bin/env bash
# Installs clang-22 (scripts/install-deps.sh --clang) and configures a build folder
# with it and the given sanitizers, once: a folder with a build.ninja is left alone.
#
#   scripts/configure-clang.sh BUILD_DIR SANITIZERS [CMAKE_ARGS...]
#
# SANITIZERS is LLVM's list (QFORGE_SANITIZER): "Address;Undefined", "Thread", ...
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 2 ] || { sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
dir=$1 sanitizers=$2
shift 2
bash "$root/scripts/install-deps.sh" --clang
[ -f "$dir/build.ninja" ] && exit 0
cmake -G Ninja -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
  "-DQFORGE_SANITIZER=$sanitizers" "$@" >/dev/null
