#!/usr/bin/env bash
# Follows one drover-agent's resident memory while it runs many trivial jobs (issue 18: it
# must stay flat over 10,000 jobs): a droverd and one agent of its own, `drover-bench
# run-latency --jobs N --concurrency C --baseline-runs 0` as the load, the agent's VmRSS
# from /proc every --every seconds. Prints the samples (seconds since the start, jobs done
# so far is not known to it: read the rate off run-latency's report) and the growth per job.
#
#   bench/run_agent_memory_bench.sh BUILD_DIR [--jobs 10000] [--concurrency 4] [--every 5]
#                                   [--agent PATH] [--state-root DIR]
#
# BUILD_DIR is a configured and built tree (RelWithDebInfo for figures worth recording) with
# droverd, drover, drover-agent, drover-init and drover-bench; this script builds nothing.
# --agent runs another drover-agent binary (an older build, to compare) with the rest.
# Runs as root (the agent runs runc). Everything goes under a fresh folder in --state-root.
set -euo pipefail

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

[[ $# -ge 1 ]] || usage
[[ "$1" == "-h" || "$1" == "--help" ]] && usage
build_dir=$1; shift
jobs=10000
concurrency=4
every=5
agent=
state_root=${TMPDIR_BENCH:-/var/tmp}
while [[ $# -gt 0 ]]; do
  case $1 in
    --jobs) jobs=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --every) every=$2; shift 2 ;;
    --agent) agent=$2; shift 2 ;;
    --state-root) state_root=$2; shift 2 ;;
    *) echo "run_agent_memory_bench.sh: unknown argument '$1'; see --help" >&2; exit 2 ;;
  esac
done
BENCH_NAME=run_agent_memory_bench.sh
source "$(dirname "$0")/lib.sh"
droverd=$build_dir/server/droverd
agent=${agent:-$build_dir/agent/drover-agent}
init=$build_dir/agent/launcher/drover-init
bench=$build_dir/bench/drover-bench
cli=$build_dir/cli/drover
bench_check_programs "build the droverd, drover, drover-agent, drover-init and drover-bench targets in $build_dir first" \
  "$droverd" "$cli" "$agent" "$init" "$bench"
bench_require_root "drover-agent runs runc"

base=$(mktemp -d "$state_root/drover-agent-memory-XXXXXX")
# Searchable by others: a job container's root is an unprivileged host uid (--userns-range).
chmod 711 "$base"
sampler_pid=
bench_extra_cleanup() { [[ -z $sampler_pid ]] || kill "$sampler_pid" 2>/dev/null || true; }
bench_cleanup_on_exit

bench_machine "$build_dir" "$base"
bench_start_droverd "$droverd" "$base/state" 127.0.0.1:0 "$base/droverd.log" --log-level warning
bench_start_agent "$agent" "$cli" memory-node "$base/agent" "$init" "$base/agent.log" \
  --log-level warning
start=$(date +%s)
(
  while kill -0 "$agent_pid" 2>/dev/null; do
    echo "$(($(date +%s) - start)) $(awk '/^VmRSS/ {print $2}' "/proc/$agent_pid/status")"
    sleep "$every"
  done
) > "$base/rss.txt" &
sampler_pid=$!

echo
echo "== $bench run-latency --jobs $jobs --concurrency $concurrency --baseline-runs 0 ($(bench_load))"
"$bench" run-latency --server "$address" --jobs "$jobs" --warmup 0 --concurrency "$concurrency" \
  --baseline-runs 0 | sed -n '1,4p'
end_rss=$(awk '/^VmRSS/ {print $2}' "/proc/$agent_pid/status")

echo
echo "== the agent's VmRSS (seconds, kB)"
tr '\n' ' ' < "$base/rss.txt"
echo
first=$(awk 'NR == 2 {print $2}' "$base/rss.txt")  # after its start-up
echo "growth: ${first:-?} -> $end_rss kB over $jobs jobs: $(( (end_rss - ${first:-0}) / jobs )) kB per job"
