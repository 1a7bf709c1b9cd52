#!/usr/bin/env bash
# Installs what Drover needs, builds it (Debug: warnings are errors) and runs the whole test
# suite with CTest (the web app, web/, is built first: its unit and browser tests are in
# the suite). This is the command .ci/run calls; it works on a fresh Debian 12 machine.
# After the whole suite it builds the fuzz targets with clang (preset fuzz, build/fuzz) and
# runs each for DROVER_FUZZ_SECONDS (default 10; 0 skips them); a crash fails the run.
# Between the two, the e2e tests run a second time with droverd's state on PostgreSQL
# (DROVER_TEST_STORE=postgres), leaving out those labelled sqlite-only (tests/CMakeLists.txt and
# tests/e2e/CMakeLists.txt say why each is) and Horovod's (e2e-horovod: minutes of
# compiling that say nothing of the store); DROVER_TEST_POSTGRES_E2E=0 skips that pass.
# With ctest arguments (a part of the suite) the PostgreSQL pass and the fuzz targets are
# left out. Every test that needs PostgreSQL (the store conformance suite, that pass) uses one
# throw-away server of Debian's postgresql package started here for the whole run
# (drover-test-postgres, DROVER_TEST_PG_DIR) and removed at the end, pass or fail; run
# outside this script, each test process starts a server of its own.
# Usage: deploy/run-tests.sh [extra ctest arguments, e.g. -R JobService]
set -euo pipefail
cd "$(dirname "$0")/.."

deploy/install-deps.sh
deploy/build-web.sh
jobs=$(nproc)
cmake --preset debug
cmake --build --preset debug -j "$jobs"

pg_tool=build/debug/tests/testing/drover-test-postgres
DROVER_TEST_PG_DIR=$("$pg_tool" start)
export DROVER_TEST_PG_DIR
trap '"$pg_tool" stop "$DROVER_TEST_PG_DIR"' EXIT

ctest --preset debug -j "$jobs" --timeout 600 "$@"

if (($# == 0)) && [[ "${DROVER_TEST_POSTGRES_E2E:-1}" != 0 ]]; then
  DROVER_TEST_STORE=postgres ctest --preset debug -j "$jobs" --timeout 600 -L e2e -LE "sqlite-only|e2e-horovod"
fi

fuzz_seconds=${DROVER_FUZZ_SECONDS:-10}
if (($# == 0 && fuzz_seconds > 0)); then
  cmake --preset fuzz
  cmake --build --preset fuzz -j "$jobs"
  tests/fuzz/run_fuzzers.sh --time "$fuzz_seconds"
fi
