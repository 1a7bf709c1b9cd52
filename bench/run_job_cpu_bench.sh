#!/usr/bin/env bash
# The CPU one trivial container job costs on the node, by OCI runtime (issue 18): starts a
# droverd of its own and, for each pass and each --runtime in turn (interleaved), a fresh
# drover-agent with `--runc PATH`, runs warm-up jobs, then --jobs trivial jobs through
# `drover-bench run-latency --baseline-runs 0`, and reads the CPU time (user + system) spent
# meanwhile by the agent itself, by its reaped children (every runtime call: runc or crun,
# and the containers, whose PID 1 the agent reaps), by droverd and by the load generator.
#
#   bench/run_job_cpu_bench.sh BUILD_DIR [--runtime NAME=PATH]... [--agent NAME=BUILD]...
#                              [--jobs 100] [--passes 3] [--concurrency 1]
#                              [--state-root DIR] [--legacy-cgroups] [--out DIR]
#
# Default runtimes: runc=runc. PATH may be `auto` (the agent chooses, oci_runtime_choice.h).
# --agent NAME=BUILD runs variant NAME with BUILD's drover-agent and drover-init (another
# build to compare with, for example a release build of the baseline commit); the others
# use BUILD_DIR's. --legacy-cgroups starts every agent (whatever its runtime)
# in a private mount namespace without /sys/fs/cgroup/unified: on a hybrid cgroup machine
# whose cgroup2 hierarchy holds a controller, crun refuses to run ("cgroups in hybrid mode
# not supported"), and this makes it see the v1 layout that runc uses anyway. Needs root.
# Figures: per job, in ms of CPU, medians over passes, and each runtime's ratio to the first.
set -euo pipefail

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

[[ $# -ge 1 ]] || usage
[[ "$1" == "-h" || "$1" == "--help" ]] && usage
build_dir=$1; shift
jobs=100
passes=3
concurrency=1
state_root=${TMPDIR_BENCH:-/var/tmp}
legacy=0
out_dir=
runtimes=()
declare -A agent_build=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --runtime) runtimes+=("$2"); shift 2 ;;
    --agent) agent_build[${2%%=*}]=${2#*=}; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --passes) passes=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --state-root) state_root=$2; shift 2 ;;
    --legacy-cgroups) legacy=1; shift ;;
    --out) out_dir=$2; shift 2 ;;
    *) echo "run_job_cpu_bench.sh: unknown argument '$1'; see --help" >&2; exit 2 ;;
  esac
done
[[ ${#runtimes[@]} -gt 0 ]] || runtimes=(runc=runc)

BENCH_NAME=run_job_cpu_bench.sh
source "$(dirname "$0")/lib.sh"
droverd=$build_dir/server/droverd
agent=$build_dir/agent/drover-agent
init=$build_dir/agent/launcher/drover-init
bench=$build_dir/bench/drover-bench
cli=$build_dir/cli/drover
bench_check_programs "build the droverd, drover, drover-agent, drover-init and drover-bench targets in $build_dir first" \
  "$droverd" "$cli" "$agent" "$init" "$bench"
init=$(realpath "$init")
bench_require_root "drover-agent runs the OCI runtime"
bench_require_real_disk "$state_root"

base=$(mktemp -d "$state_root/drover-job-cpu-bench-XXXXXX")
chmod 711 "$base"  # a job container's root is an unprivileged host uid (--userns-range)
results=${out_dir:-$base/results}
mkdir -p "$base/state" "$results"
bench_cleanup_on_exit

bench_machine "$build_dir" "$base"
for spec in "${runtimes[@]}"; do
  name=${spec%%=*}
  runtime=${spec#*=}
  if [[ $runtime == auto ]]; then
    echo "runtime: $name = auto (the agent's choice, in its log)"
  else
    echo "runtime: $name = $runtime: $("$runtime" --version 2>&1 | head -1)"
  fi
  if [[ -n ${agent_build[$name]:-} ]]; then
    bench_check_programs "build drover-agent and drover-init in ${agent_build[$name]} first" \
      "${agent_build[$name]}/agent/drover-agent" "${agent_build[$name]}/agent/launcher/drover-init"
    echo "agent of $name: ${agent_build[$name]}/agent/drover-agent"
  fi
done
echo "uptime: $(uptime)"

bench_start_droverd "$droverd" "$base/state" 127.0.0.1:0 "$results/droverd.log" --log-level warning

# utime + stime (self) and cutime + cstime (reaped children) of PID, in clock ticks.
ticks() {  # PID
  awk '{ sub(/^.*\) /, ""); print $12 + $13, $14 + $15 }' "/proc/$1/stat"
}
hz=$(getconf CLK_TCK)

run_one() {  # PASS NAME PATH
  local pass=$1 name=$2 runtime=$3
  local work=$base/agent-$name-$pass
  mkdir -p "$work"
  local agent_args=(--runc "$runtime" --log-level warning)
  local agent=$agent init=$init
  if [[ -n ${agent_build[$name]:-} ]]; then
    agent=${agent_build[$name]}/agent/drover-agent
    init=$(realpath "${agent_build[$name]}/agent/launcher/drover-init")
  fi
  if [[ $legacy -eq 1 ]]; then
    # unshare execs (no fork) and so does sh: agent_pid is the agent's pid.
    bench_join_token "$cli" "node-$name-$pass" "$work.join-token"
    unshare -m --propagation private sh -c 'umount /sys/fs/cgroup/unified 2>/dev/null; exec "$@"' \
      sh "$agent" --scheduler "$address" --ca "$DROVER_CA" --node-name "node-$name-$pass" \
      --work-dir "$work" --join-file "$work.join-token" --init "$init" "${agent_args[@]}" \
      2> "$results/agent-$name-$pass.log" &
    agent_pid=$!
  else
    bench_start_agent "$agent" "$cli" "node-$name-$pass" "$work" "$init" \
      "$results/agent-$name-$pass.log" "${agent_args[@]}"
  fi
  # Warm-up (and the wait for the node): not counted. The jobs may land on an earlier pass's
  # node only if it still runs; each agent is stopped before the next starts.
  "$bench" run-latency --server "$address" --jobs 3 --warmup 1 --baseline-runs 0 --output json \
    > "$results/warmup-$name-$pass.json"
  read -r a0 c0 < <(ticks "$agent_pid")
  read -r d0 _ < <(ticks "$droverd_pid")
  local t0
  t0=$(date +%s.%N)
  /usr/bin/time -f "%U %S" -o "$results/bench-$name-$pass.time" \
    "$bench" run-latency --server "$address" --jobs "$jobs" --warmup 0 --concurrency "$concurrency" \
    --baseline-runs 0 --output json > "$results/run-$name-$pass.json"
  local t1
  t1=$(date +%s.%N)
  read -r a1 c1 < <(ticks "$agent_pid")
  read -r d1 _ < <(ticks "$droverd_pid")
  bench_stop "$agent_pid"
  agent_pid=
  local listers=("$runtime")
  [[ $runtime == auto ]] && listers=(runc crun)  # whichever it chose
  local lister left=
  for lister in "${listers[@]}"; do
    left+=$("$lister" --root "$work/runc" list -q 2>/dev/null || true)
  done
  if [[ -n $left ]]; then
    echo "$BENCH_NAME: WARNING: the agent left containers behind in $work/runc" >&2
  fi
  read -r bu bs < "$results/bench-$name-$pass.time"
  echo "$name $pass $jobs $(echo "$t1 - $t0" | bc) $((a1 - a0)) $((c1 - c0)) $((d1 - d0)) $bu $bs $hz $(cut -d' ' -f1 /proc/loadavg)" \
    >> "$results/cpu.txt"
}

: > "$results/cpu.txt"
for pass in $(seq "$passes"); do
  for spec in "${runtimes[@]}"; do
    echo "== pass $pass, ${spec%%=*} ($(bench_load))"
    run_one "$pass" "${spec%%=*}" "${spec#*=}"
  done
done

echo
echo "== results"
python3 - "$results/cpu.txt" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, p, jobs, wall, agent, children, droverd, bu, bs, hz, load = line.split()
    jobs, hz = int(jobs), int(hz)
    ms = lambda ticks: float(ticks) * 1000 / hz / jobs
    rows.setdefault(name, []).append({
        "jobs/s": jobs / float(wall),
        "agent": ms(agent), "runtime+containers": ms(children),
        "node": ms(agent) + ms(children), "droverd": ms(droverd),
        "bench": (float(bu) + float(bs)) * 1000 / jobs, "load": float(load)})
names = list(rows)
cols = ["jobs/s", "agent", "runtime+containers", "node", "droverd", "bench", "load"]
print("ms of CPU per job (user + system), medians over passes; node = agent + runtime + containers")
print(f"{'runtime':<10}" + "".join(f"{c:>20}" for c in cols))
for name in names:
    med = {c: statistics.median(r[c] for r in rows[name]) for c in cols}
    print(f"{name:<10}" + "".join(f"{med[c]:>20.2f}" for c in cols))
    for r in rows[name]:
        print(f"{'':<10}" + "".join(f"{r[c]:>20.2f}" for c in cols))
first = names[0]
for name in names[1:]:
    ratio = lambda c: statistics.median(r[c] for r in rows[name]) / statistics.median(r[c] for r in rows[first])
    print(f"{name}/{first}: node CPU {ratio('node'):.2f}, runtime+containers {ratio('runtime+containers'):.2f}, "
          f"agent {ratio('agent'):.2f}, jobs/s {ratio('jobs/s'):.2f}")
PY
if [[ -n $out_dir ]]; then echo; echo "kept in $out_dir"; fi
