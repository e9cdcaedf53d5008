#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test (lit suites and unit tests).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/build.sh" qforge-test-depends
ninja -C "$root/build" check
