#!/usr/bin/env bash
# Runs Drover's libFuzzer targets (tests/fuzz) one after the other, each for a while, from
# its seed corpus. CI runs every target briefly after the test suite; developers run them
# longer. See docs/development.md, "Fuzzing".
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: tests/fuzz/run_fuzzers.sh [--build] [--time SECONDS] [--build-dir DIR] [TARGET...]

Runs each fuzz target (all of them when none is named: archive_paths, tar_reader, ...) for
SECONDS (default 15), starting from its seeds in tests/fuzz/corpus/TARGET/ and from what
earlier runs found (DIR/corpus/TARGET/, which new inputs go to; the seeds in the tree are
never written). Exits 1 when a target crashed, failed an invariant, leaked, timed out or ran
out of memory; the input that did it is saved as DIR/artifacts/TARGET-crash-..., and the
log's tail is printed.

  --build          configure and build first (cmake --preset fuzz; needs clang and
                   libclang-rt-14-dev: deploy/install-deps.sh --fuzz)
  --time SECONDS   how long to run each target (default 15; try 600 for a real search)
  --build-dir DIR  where the fuzz build is (default build/fuzz)
  -h, --help       this text

Reproduce a finding:  build/fuzz/tests/fuzz/TARGET_fuzz FILE
Then make it a test: a gtest beside the parser's other tests with the input, and the file
itself in tests/fuzz/corpus/TARGET/ (the replay tests of the main suite run every file there).
USAGE
}

root=$(cd "$(dirname "$0")/../.." && pwd)
build_dir="$root/build/fuzz"
seconds=15
build=0
targets=()
while (($#)); do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --build) build=1 ;;
    --time) seconds="${2:?--time needs a number of seconds}"; shift ;;
    --time=*) seconds="${1#--time=}" ;;
    --build-dir) build_dir="${2:?--build-dir needs a folder}"; shift ;;
    --build-dir=*) build_dir="${1#--build-dir=}" ;;
    -*) echo "run_fuzzers: unknown option '$1'; see --help" >&2; exit 2 ;;
    *) targets+=("$1") ;;
  esac
  shift
done
[[ "$seconds" =~ ^[0-9]+$ && "$seconds" -gt 0 ]] ||
  { echo "run_fuzzers: --time '$seconds' is not a positive number of seconds" >&2; exit 2; }

if ((build)); then
  (cd "$root" && cmake --preset fuzz >/dev/null && cmake --build --preset fuzz)
fi
if ((${#targets[@]} == 0)); then
  for dir in "$root"/tests/fuzz/corpus/*/; do targets+=("$(basename "$dir")"); done
fi

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
mkdir -p "$build_dir/artifacts" "$build_dir/logs"
failed=()
for target in "${targets[@]}"; do
  binary="$build_dir/tests/fuzz/${target}_fuzz"
  seeds="$root/tests/fuzz/corpus/$target"
  if [[ ! -x "$binary" ]]; then
    echo "run_fuzzers: $binary is missing; build it: tests/fuzz/run_fuzzers.sh --build" >&2
    exit 2
  fi
  [[ -d "$seeds" ]] || { echo "run_fuzzers: no seed corpus $seeds" >&2; exit 2; }
  work="$build_dir/corpus/$target"
  log="$build_dir/logs/$target.log"
  mkdir -p "$work"
  args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536
        -artifact_prefix="$build_dir/artifacts/$target-" -print_final_stats=1)
  [[ -f "$root/tests/fuzz/$target.dict" ]] && args+=(-dict="$root/tests/fuzz/$target.dict")
  start=$SECONDS
  if "$binary" "${args[@]}" "$work" "$seeds" >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
    echo "fuzz $target: ok, ${runs:-?} runs in $((SECONDS - start)) s, ${cov:-cov: ?}"
  else
    echo "fuzz $target: FAILED after $((SECONDS - start)) s (log: $log)"
    grep -E '^(==[0-9]+==ERROR|SUMMARY|.*invariant failed|.*runtime error)' "$log" | head -5 || true
    tail -n 30 "$log"
    ls "$build_dir/artifacts/$target-"* 2>/dev/null | sed 's/^/  input: /' || true
    failed+=("$target")
  fi
done
if ((${#failed[@]})); then
  echo "run_fuzzers: ${#failed[@]} target(s) failed: ${failed[*]}" >&2
  exit 1
fi
