#!/usr/bin/env bash
# Runs the job-array submit benchmark of issue 22 against a droverd of its own: single
# submits first (the baseline), then arrays of each size, in the same run and on the same
# droverd, so that the figures compare as a ratio (tasks/s of arrays over jobs/s of single
# submits).
#
#   bench/run_array_bench.sh BUILD_DIR [--duration 10s] [--sizes "1000 10000"] [--clients 2]
#                                      [--state-root DIR] [--out DIR]
#
# BUILD_DIR is a configured and built tree (for figures worth recording, release:
# `cmake --preset release && cmake --build build/release --target droverd drover-bench`);
# this script builds nothing. The state folder goes under --state-root (default /var/tmp),
# which must be a real disk. Single submits use 64 clients; arrays --clients clients.
set -euo pipefail
BENCH_NAME=run_array_bench.sh
source "$(dirname "$0")/lib.sh"

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[[ $# -ge 1 ]] || usage
[[ "$1" == "-h" || "$1" == "--help" ]] && usage
build_dir=$1; shift
duration=10s
sizes="1000 10000"
clients=2
state_root=${TMPDIR_BENCH:-/var/tmp}
out_dir=
while [[ $# -gt 0 ]]; do
  case $1 in
    --duration) duration=$2; shift 2 ;;
    --sizes) sizes=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --state-root) state_root=$2; shift 2 ;;
    --out) out_dir=$2; shift 2 ;;
    *) echo "run_array_bench.sh: unknown argument '$1'; see --help" >&2; exit 2 ;;
  esac
done

droverd=$build_dir/server/droverd
bench=$build_dir/bench/drover-bench
bench_check_programs "build the droverd and drover-bench targets in $build_dir first" \
  "$droverd" "$bench"
bench_require_real_disk "$state_root"
base=$(mktemp -d "$state_root/drover-bench-XXXXXX")
state_dir=$base/state
work=${out_dir:-$base/results}
mkdir -p "$state_dir" "$work"
bench_cleanup_on_exit
bench_machine "$build_dir" "$base"

bench_start_droverd "$droverd" "$state_dir" 127.0.0.1:0 "$work/droverd.log" --log-level warning
echo "== droverd $address (pid $droverd_pid, --log-level warning)"

echo "== single submits: $bench submit --clients 64 --duration $duration"
"$bench" submit --server "$address" --clients 64 --duration "$duration" --output json \
  > "$work/single.json"
for size in $sizes; do
  echo "== arrays: $bench submit --clients $clients --array-size $size --duration $duration"
  "$bench" submit --server "$address" --clients "$clients" --array-size "$size" \
    --duration "$duration" --output json > "$work/array-$size.json"
done

python3 - "$work" "$sizes" <<'PY'
import json, os, sys
work, sizes = sys.argv[1], sys.argv[2].split()
load = lambda name: json.load(open(os.path.join(work, name)))
single = load("single.json")
print(f"{'submit':>14} {'submits/s':>10} {'jobs/s':>10} {'x single':>9} {'p50 ms':>9} {'p99 ms':>9} errors")
def row(name, r, tasks):
    print(f"{name:>14} {r['jobs_per_s']:>10.1f} {tasks:>10.1f} {tasks / single['jobs_per_s']:>9.1f} "
          f"{r['latency']['p50_ms']:>9.1f} {r['latency']['p99_ms']:>9.1f} {r['errors'] or 'none'}")
row("single", single, single["jobs_per_s"])
for size in sizes:
    r = load(f"array-{size}.json")
    row(f"array of {size}", r, r["tasks_per_s"])
PY
