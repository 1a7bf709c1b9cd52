#!/usr/bin/env bash
# The CPU an idle drover-agent spends (issue 18): starts a droverd of its own and, for each
# NAME=BUILD in turn, that build's drover-agent (with its drover-init, `--runc auto`), runs 2
# warm-up jobs, waits 5 s, then reads over SECONDS the agent's CPU time (user + system,
# /proc/PID/stat) and the context switches of all its threads (/proc/PID/task/*/status),
# then counts its system calls for 10 s (strace -c -f). Prints, per agent, ms of CPU per
# second, context switches per second and system calls per second.
#
#   bench/agent_idle_cpu_bench.sh BUILD_DIR SECONDS NAME=BUILD...
#
# BUILD_DIR gives droverd, drover and drover-bench (the same for every agent). Needs root
# and strace.
set -euo pipefail

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[[ $# -ge 3 ]] || usage
build_dir=$1 secs=$2
shift 2
BENCH_NAME=agent_idle_cpu_bench.sh
source "$(dirname "$0")/lib.sh"
bench_check_programs "build droverd, drover and drover-bench in $build_dir first" \
  "$build_dir/server/droverd" "$build_dir/cli/drover" "$build_dir/bench/drover-bench"
bench_require_root "drover-agent runs the OCI runtime"
base=$(mktemp -d "${TMPDIR_BENCH:-/var/tmp}/drover-idle-bench-XXXXXX")
chmod 711 "$base"
mkdir -p "$base/state"
bench_cleanup_on_exit
bench_machine "$build_dir" "$base"
bench_start_droverd "$build_dir/server/droverd" "$base/state" 127.0.0.1:0 "$base/droverd.log" \
  --log-level warning
hz=$(getconf CLK_TCK)
switches() {  # context switches of every thread of agent_pid, and the number of threads
  local total=0 threads=0 f v
  for f in /proc/"$agent_pid"/task/*/status; do
    v=$(awk '/ctxt_switches/ { s += $2 } END { print s + 0 }' "$f" 2>/dev/null || echo 0)
    total=$((total + v)) threads=$((threads + 1))
  done
  echo "$total $threads"
}
ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
for spec in "$@"; do
  name=${spec%%=*} agent_build=${spec#*=}
  bench_check_programs "build drover-agent and drover-init in $agent_build first" \
    "$agent_build/agent/drover-agent" "$agent_build/agent/launcher/drover-init"
  bench_start_agent "$agent_build/agent/drover-agent" "$build_dir/cli/drover" "node-$name" \
    "$base/work-$name" "$agent_build/agent/launcher/drover-init" "$base/agent-$name.log" \
    --runc auto --log-level warning
  "$build_dir/bench/drover-bench" run-latency --server "$address" --jobs 2 --warmup 1 \
    --baseline-runs 0 --output json > /dev/null
  sleep 5
  read -r c0 _ < <(switches)
  t0=$(ticks "$agent_pid")
  sleep "$secs"
  read -r c1 threads < <(switches)
  t1=$(ticks "$agent_pid")
  timeout -s INT 10 strace -f -c -p "$agent_pid" -o "$base/strace-$name.txt" 2>/dev/null || true
  calls=$(awk '/total/ { print $4 }' "$base/strace-$name.txt")
  echo "$name idle ${secs}s: CPU $(echo "scale=3; ($t1 - $t0) * 1000 / $hz / $secs" | bc) ms/s," \
    "context switches $(echo "scale=1; ($c1 - $c0) / $secs" | bc)/s, threads $threads," \
    "system calls $(echo "scale=1; ${calls:-0} / 10" | bc)/s ($(bench_load))"
  bench_stop "$agent_pid"
  agent_pid=
done
