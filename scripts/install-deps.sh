#!/usr/bin/env bash
# Installs the Debian 12 packages qforge needs to build and test (run as root, or with sudo
# available). Packages already present are left alone. With --clang, also clang-22 and its
# sanitizer and libFuzzer runtimes (for scripts/fuzz.sh and the sanitizer builds).
set -euo pipefail

packages=(
  cmake ninja-build g++ git
  libmlir-22-dev mlir-22-tools llvm-22-dev llvm-22-tools lld-22 libomp-22-dev
  libonnx-dev libprotobuf-dev protobuf-compiler nlohmann-json3-dev
  libgtest-dev libbenchmark-dev
  python3-onnx python3-numpy libonnx-testdata
)
if [ "${1:-}" = "--clang" ]; then
  packages+=(clang-22 libclang-rt-22-dev)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "qforge: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
