#!/usr/bin/env bash
# Runs the simulated-cluster benchmark of issue 21 against a droverd of its own: --nodes fake
# nodes on the real agent protocol over gRPC (drover-bench sim-cluster, all in one process),
# --jobs jobs queued first, then placed as the nodes take them; and, in the same run, the
# in-process placement benchmark (drover-bench placement) over the same cluster and queue,
# so that the figures compare as a ratio (over the wire / in process).
#
#   bench/run_sim_cluster_bench.sh BUILD_DIR [--nodes 1000] [--jobs 100000] [--duration 60s]
#       [--heartbeat-interval 2s] [--node-lease 15s] [--state-root DIR] [--out DIR]
#       [-- MORE SIM-CLUSTER FLAGS]
#
# BUILD_DIR is a configured and built tree (for figures worth recording, release:
# `cmake --preset release && cmake --build build/release --target droverd drover-bench`);
# this script builds nothing. The state folder goes under --state-root (default /var/tmp),
# which must be a real disk. droverd runs with --log-level warning (one INFO line per
# placement would otherwise be part of what is measured) and a file limit of 65536.
set -euo pipefail
BENCH_NAME=run_sim_cluster_bench.sh
source "$(dirname "$0")/lib.sh"

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[[ $# -ge 1 ]] || usage
[[ "$1" == "-h" || "$1" == "--help" ]] && usage
build_dir=$1; shift
nodes=1000
jobs=100000
duration=60s
heartbeat=2s
lease=15s
state_root=${TMPDIR_BENCH:-/var/tmp}
out_dir=
more=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --nodes) nodes=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --heartbeat-interval) heartbeat=$2; shift 2 ;;
    --node-lease) lease=$2; shift 2 ;;
    --state-root) state_root=$2; shift 2 ;;
    --out) out_dir=$2; shift 2 ;;
    --) shift; more=("$@"); break ;;
    *) echo "run_sim_cluster_bench.sh: unknown argument '$1'; see --help" >&2; exit 2 ;;
  esac
done

droverd=$build_dir/server/droverd
bench=$build_dir/bench/drover-bench
bench_check_programs "build the droverd and drover-bench targets in $build_dir first" \
  "$droverd" "$bench"
bench_require_real_disk "$state_root"
# Every fake node is a TLS connection: a descriptor in droverd and one in the bench.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
base=$(mktemp -d "$state_root/drover-bench-XXXXXX")
state_dir=$base/state
work=${out_dir:-$base/results}
mkdir -p "$state_dir" "$work"
bench_cleanup_on_exit
bench_machine "$build_dir" "$base"
echo "files:   $(ulimit -n) descriptors per process"

echo "== in process: $bench placement --nodes $nodes --jobs $jobs --gang-percent 10"
"$bench" placement --nodes "$nodes" --jobs "$jobs" --gang-percent 10 --output json \
  > "$work/placement.json"

bench_start_droverd "$droverd" "$state_dir" 127.0.0.1:0 "$work/droverd.log" --log-level warning \
  --heartbeat-interval "$heartbeat" --node-lease "$lease"
echo "== droverd $address (pid $droverd_pid, --log-level warning, heartbeat $heartbeat, lease $lease)"
echo "$(bench_load) (before the run)"

echo "== over gRPC: $bench sim-cluster --nodes $nodes --jobs $jobs --duration $duration ${more[*]}"
"$bench" sim-cluster --server "$address" --droverd-pid "$droverd_pid" --nodes "$nodes" \
  --jobs "$jobs" --duration "$duration" --output json "${more[@]}" > "$work/sim.json"
echo "$(bench_load) (after the run)"

python3 - "$work" <<'PY'
import json, os, sys
work = sys.argv[1]
sim = json.load(open(os.path.join(work, "sim.json")))
inproc = json.load(open(os.path.join(work, "placement.json")))
nodes = sim["nodes"] + sim["probe_nodes"]
rss = sim["rss_kib"]
print(f"nodes {sim['nodes']} (+{sim['probe_nodes']} probe), jobs queued {sim['jobs']}, "
      f"{sim['gang_percent']}% gangs")
print(f"join + hello         {sim['join_s']:.1f} s ({nodes / max(sim['join_s'], 1e-9):.0f} nodes/s)")
print(f"queue fill           {sim['enqueue_s']:.1f} s ({sim['jobs'] / max(sim['enqueue_s'], 1e-9):.0f} jobs/s)")
print(f"placements over gRPC {sim['placements']} in {sim['measured_s']:.1f} s: "
      f"{sim['placements_per_s']:.0f}/s (best second {sim['peak_placements_per_s']}), "
      f"{sim['gang_placements']} gangs, {sim['queued_left']} left queued")
ip = inproc.get("placed_per_s") or inproc.get("placed_per_second")
print(f"placements in process {ip:.0f}/s placed, {inproc.get('decisions_per_s', 0):.0f} decisions/s "
      f"(one core, no gRPC, no store)")
print(f"ratio                {sim['placements_per_s'] / ip:.3f} (over gRPC / in process)")
p = sim["probe"]
print(f"probe submit->assigned p50 {p['p50_ms']:.1f} ms, p99 {p['p99_ms']:.1f} ms, max {p['max_ms']:.1f} ms "
      f"({p['count']} probes, {sim['probes_unassigned']} unassigned)")
print(f"droverd RSS          idle {rss['idle']/1024:.1f} MiB, +{(rss['nodes']-rss['idle'])/nodes:.1f} KiB/node, "
      f"+{(rss['queued']-rss['nodes'])*1024/max(sim['jobs'],1):.0f} B/queued job, end {rss['end']/1024:.1f} MiB")
m = sim["measured_s"]
print(f"droverd CPU          {sim['droverd_cpu_s']:.1f} s in {m:.1f} s ({sim['droverd_cpu_s']/m:.2f} cores), "
      f"{sim['droverd_cpu_s']*1e6/max(sim['placements'],1):.0f} us per placement")
print(f"bench CPU            {sim['bench_cpu_s']:.1f} s ({sim['bench_cpu_s']/m:.2f} cores, the fake nodes)")
print(f"checks               {sim['streams_broken']} streams broken, {sim['stopped_attempts']} stops, "
      f"{sim['reassigned_jobs']} reassigned, {sim['duplicate_assignments']} duplicate assignments")
PY
