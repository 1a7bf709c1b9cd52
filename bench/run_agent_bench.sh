#!/usr/bin/env bash
# Runs the benchmarks of issue 3 against a droverd and a drover-agent of its own and prints
# the figures next to baselines measured in the same run: job latency (submit -> RUNNING,
# submit -> COMPLETED) against the same container run without Drover, and durable log
# ingest against the raw write + fdatasync rate of the state folder's disk.
#
#   bench/run_agent_bench.sh BUILD_DIR [--jobs 50] [--command true] [--megabytes 256]
#                                      [--chunk-kib 256] [--streams "1 4"] [--state-root DIR]
#                                      [--out DIR] [--log-level warning]
#
# BUILD_DIR is a configured and built tree (for figures worth recording, RelWithDebInfo, with
# the droverd, drover-agent, drover-init and drover-bench targets); this script builds
# nothing. Runs as root (the agent and the baselines run runc). Everything goes under a
# fresh folder in --state-root (default /var/tmp), which must be a real disk. With --out,
# the JSON of every measurement, the per-job timelines and the daemons' logs are kept there
# (use --log-level debug to line the timelines up with the daemons' events). --command is
# what `/bin/sh -c` runs in each job (try 'echo hi' to see the cost of shipping output);
# --streams "" skips the ingest benchmark. The ingest benchmark is a node of its own
# (bench-ingest, joined with the admin token, in a compute target of its own), so its job
# never lands on the agent; bench/run_ingest_bench.sh runs it without agent and compares
# droverd builds.
set -euo pipefail

usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

[[ $# -ge 1 ]] || usage
[[ "$1" == "-h" || "$1" == "--help" ]] && usage
build_dir=$1; shift
jobs=50
command=true
megabytes=256
chunk_kib=256
stream_counts="1 4"
state_root=${TMPDIR_BENCH:-/var/tmp}
out_dir=
log_level=warning
while [[ $# -gt 0 ]]; do
  case $1 in
    --jobs) jobs=$2; shift 2 ;;
    --command) command=$2; shift 2 ;;
    --megabytes) megabytes=$2; shift 2 ;;
    --chunk-kib) chunk_kib=$2; shift 2 ;;
    --streams) stream_counts=$2; shift 2 ;;
    --state-root) state_root=$2; shift 2 ;;
    --out) out_dir=$2; shift 2 ;;
    --log-level) log_level=$2; shift 2 ;;
    *) echo "run_agent_bench.sh: unknown argument '$1'; see --help" >&2; exit 2 ;;
  esac
done

BENCH_NAME=run_agent_bench.sh
source "$(dirname "$0")/lib.sh"
droverd=$build_dir/server/droverd
agent=$build_dir/agent/drover-agent
init=$build_dir/agent/launcher/drover-init
bench=$build_dir/bench/drover-bench
cli=$build_dir/cli/drover
bench_check_programs "build the droverd, drover, drover-agent, drover-init and drover-bench targets in $build_dir first" \
  "$droverd" "$cli" "$agent" "$init" "$bench"
init=$(realpath "$init")
bench_require_root "drover-agent and the container baselines run runc"
bench_require_real_disk "$state_root"

base=$(mktemp -d "$state_root/drover-agent-bench-XXXXXX")
# Searchable by others: a job container's root is an unprivileged host uid (--userns-range).
chmod 711 "$base"
state_dir=$base/state
work_dir=$base/agent
results=${out_dir:-$base/results}
mkdir -p "$state_dir" "$work_dir" "$results"
bench_cleanup_on_exit

bench_machine "$build_dir" "$base"
echo "runc:    $(runc --version | head -1)"
echo "uptime: $(uptime)"

bench_start_droverd "$droverd" "$state_dir" 127.0.0.1:0 "$results/droverd.log" --log-level "$log_level"
bench_start_agent "$agent" "$cli" bench-node "$work_dir" "$init" "$results/agent.log" \
  --log-level "$log_level"
echo
echo "== droverd $address (pid $droverd_pid), drover-agent bench-node (pid $agent_pid), --log-level $log_level"

echo
echo "== $bench run-latency --server $address --jobs $jobs --command '$command' ($(bench_load))"
"$bench" run-latency --server "$address" --jobs "$jobs" --command "$command" \
  --baseline-root "$base" --init "$init" \
  --traces "$results/run-latency-traces.jsonl" --output json > "$results/run-latency.json"

for streams in $stream_counts; do
  echo "== $bench log-ingest --server $address --megabytes $megabytes --chunk-kib $chunk_kib --streams $streams ($(bench_load))"
  "$bench" log-ingest --server "$address" --megabytes "$megabytes" --chunk-kib "$chunk_kib" \
    --streams "$streams" --baseline-dir "$state_dir" --output json > "$results/log-ingest-$streams.json"
done
echo "after: $(bench_load)"

bench_stop "$agent_pid"
bench_stop "$droverd_pid"
if [[ -n $(runc --root "$work_dir/runc" list -q 2>/dev/null) ]]; then
  echo "run_agent_bench.sh: WARNING: the agent left containers behind in $work_dir/runc" >&2
fi

echo
echo "== results"
python3 - "$results" "$stream_counts" <<'PY'
import json, os, sys
results, streams = sys.argv[1], sys.argv[2].split()
load = lambda name: json.load(open(os.path.join(results, name)))
r = load("run-latency.json")
b = r["baseline"]
row = lambda name, s: print(f"  {name:<28} {s['p50_ms']:>9.3f} {s['p90_ms']:>9.3f} {s['max_ms']:>9.3f}")
print(f"run latency: {r['jobs']} jobs of `/bin/sh -c {r['command']}`, concurrency {r['concurrency']}, "
      f"load {r['load_before']} -> {r['load_after']}, failed {r['failed']}"
      + (f" (first: {r['first_failure']})" if r["failed"] else ""))
print(f"  {'':<28} {'p50 ms':>9} {'p90 ms':>9} {'max ms':>9}")
row("submit -> ack", r["submit_ack"])
row("submit -> RUNNING", r["to_running"])
row("submit -> COMPLETED", r["to_completed"])
for name, s in r["phases"].items():
    row("  " + name, s)
row("baseline: RuncRuntime run", b["runtime"])
for part in ("create", "start", "wait", "delete"):
    row("  " + part, b["runtime_" + part])
row("baseline: runc run, same cfg", b["runc_run_same_config"])
plain = b.get("runc_run_same_config_unhardened")
if plain and plain.get("count"):
    row("  without userns, seccomp", plain)
    cost = b["runc_run_same_config"]["p50_ms"] - plain["p50_ms"]
    print(f"  hardening (userns + seccomp) costs {cost:.3f} ms = "
          f"{b['runc_run_same_config']['p50_ms'] / plain['p50_ms']:.2f} x the unhardened run "
          f"(goal, issue 16: <= 15 ms: {'met' if cost <= 15 else 'NOT met'})")
if b["runc_run_minimal"]["count"]:
    row("baseline: runc run, minimal", b["runc_run_minimal"])
bare = b["runtime"]["p50_ms"]
run = b["runc_run_same_config"]["p50_ms"]
done = r["to_completed"]["p50_ms"]
over, over_run = done - bare, done - run
print(f"  overhead over the agent's runtime alone (median COMPLETED - median RuncRuntime run): "
      f"{over:.3f} ms = {over / bare:.2f} x that run")
print(f"  overhead over one `runc run` of the same config: {over_run:.3f} ms = "
      f"{over_run / run:.2f} x that run")
print(f"  goal (issue 3): overhead < 15 ms median: over RuncRuntime "
      f"{'met' if over < 15 else 'NOT met'}; over `runc run` {'met' if over_run < 15 else 'NOT met'}")
print()
for s in streams:
    g = load(f"log-ingest-{s}.json")
    base = g["baseline"]
    mbs = g["mib_per_s"] * 1.048576
    print(f"log ingest: {g['bytes'] >> 20} MiB, {g['chunk_bytes'] >> 10} KiB chunks, {g['streams']} stream(s), "
          f"load {g['load_before']} -> {g['load_after']}")
    print(f"  droverd: {g['mib_per_s']:.1f} MiB/s ({mbs:.1f} MB/s), chunk ack p50 "
          f"{g['ack_latency']['p50_ms']:.3f} ms, p90 {g['ack_latency']['p90_ms']:.3f} ms")
    print(f"  disk: write+fdatasync per chunk {base['synced_mib_per_s']:.1f} MiB/s "
          f"(p50 {base['synced_latency']['p50_ms']:.3f} ms each), one fdatasync at the end "
          f"{base['streaming_mib_per_s']:.1f} MiB/s")
    if base["synced_mib_per_s"] > 0:
        print(f"  ratio: {g['mib_per_s'] / base['synced_mib_per_s']:.2f} x per-chunk-synced, "
              f"{g['mib_per_s'] / base['streaming_mib_per_s']:.2f} x streaming")
    print(f"  goal (issue 3): >= 50 MB/s: {'met' if mbs >= 50 else 'NOT met'}")
PY
if [[ -n $out_dir ]]; then echo; echo "JSON results, timelines and daemon logs kept in $out_dir"; fi
