#!/usr/bin/env bash
# Installs what Drover needs, builds it (Debug: warnings are errors) and runs the whole test
# suite with CTest (the web app, web/, is built first: its unit and browser tests are in
# the suite). This is the command .ci/run calls; it works on a fresh Debian 12 machine.
# After the whole suite it builds the fuzz targets with clang (preset fuzz, build/fuzz) and
# runs each for DROVER_FUZZ_SECONDS (default 10; 0 skips them); a crash fails the run.
# With ctest arguments (a part of the suite) the fuzz targets are left out.
# Usage: deploy/run-tests.sh [extra ctest arguments, e.g. -R JobService]
set -euo pipefail
cd "$(dirname "$0")/.."

deploy/install-deps.sh
deploy/build-web.sh
jobs=$(nproc)
cmake --preset debug
cmake --build --preset debug -j "$jobs"
ctest --preset debug -j "$jobs" --timeout 600 "$@"

fuzz_seconds=${DROVER_FUZZ_SECONDS:-10}
if (($# == 0 && fuzz_seconds > 0)); then
  cmake --preset fuzz
  cmake --build --preset fuzz -j "$jobs"
  tests/fuzz/run_fuzzers.sh --time "$fuzz_seconds"
fi
