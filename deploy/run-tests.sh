#!/usr/bin/env bash
# Installs what Drover needs, builds it (Debug: warnings are errors) and runs the whole test
# suite with CTest. This is the command .ci/run calls; it works on a fresh Debian 12 machine.
# Usage: deploy/run-tests.sh [extra ctest arguments, e.g. -R JobService]
set -euo pipefail
cd "$(dirname "$0")/.."

deploy/install-deps.sh
jobs=$(nproc)
cmake --preset debug
cmake --build --preset debug -j "$jobs"
ctest --preset debug -j "$jobs" --timeout 600 "$@"
