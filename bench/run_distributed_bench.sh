#!/usr/bin/env bash
# Runs issue 4's benchmark: the time Drover adds to a distributed MPI job over a bare
# `mpirun` of the same program across the same hosts (goal: under 100 ms plus one container
# start), with both baselines measured in the same run, round by round.
#
#   bench/run_distributed_bench.sh BUILD_DIR [--jobs 20] [--allreduce-jobs 5] [--out DIR]
#                                  [--subnet A.B.C] [--state-root DIR] [--log-level warning]
#
# BUILD_DIR is a configured and built tree (for figures worth recording, RelWithDebInfo, with
# the droverd, drover-agent, drover-init, drover-rsh and drover-bench targets); this script
# builds nothing. Runs as root: it makes 2 test hosts (deploy/testhosts.sh, prefix
# drover-bench, the first free /24 from 10.231.7 unless --subnet), starts droverd on their
# bridge and one drover-agent per host, and from host 1 runs `drover-bench
# distributed-latency`: each round one Drover job (2 nodes x 2 processes, backend mpi, host
# image), then the same program under a bare `mpirun` across both hosts (remote daemons
# started by a 2-line rsh agent that enters the other host's namespaces, no containers),
# then one trivial container (`runc run`). --jobs rounds run /bin/true; --allreduce-jobs
# rounds run tests/e2e/jobs/mpi_allreduce.py (as `/usr/bin/python3 -c`, 0 skips them).
# Everything goes under a fresh folder in --state-root (default /var/tmp), removed at the
# end with the test hosts; with --out, the JSON, per-job timelines and daemon logs are kept.
set -euo pipefail
BENCH_NAME=run_distributed_bench.sh
source "$(dirname "$0")/lib.sh"

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

[[ $# -ge 1 ]] || usage
[[ "$1" == "-h" || "$1" == "--help" ]] && usage
build_dir=$1; shift
jobs=20
allreduce_jobs=5
out_dir=
subnet=
state_root=${TMPDIR_BENCH:-/var/tmp}
log_level=warning
while [[ $# -gt 0 ]]; do
  case $1 in
    --jobs) jobs=$2; shift 2 ;;
    --allreduce-jobs) allreduce_jobs=$2; shift 2 ;;
    --out) out_dir=$2; shift 2 ;;
    --subnet) subnet=$2; shift 2 ;;
    --state-root) state_root=$2; shift 2 ;;
    --log-level) log_level=$2; shift 2 ;;
    *) echo "run_distributed_bench.sh: unknown argument '$1'; see --help" >&2; exit 2 ;;
  esac
done

repo=$(cd "$(dirname "$0")/.." && pwd)
testhosts=$repo/deploy/testhosts.sh
allreduce=$repo/tests/e2e/jobs/mpi_allreduce.py
prefix=drover-bench
droverd=$build_dir/server/droverd
agent=$build_dir/agent/drover-agent
init=$build_dir/agent/launcher/drover-init
rsh=$build_dir/agent/launcher/drover-rsh
bench=$build_dir/bench/drover-bench
cli=$build_dir/cli/drover
bench_check_programs "build the droverd, drover, drover-agent, drover-init, drover-rsh and drover-bench targets in $build_dir first" \
  "$droverd" "$cli" "$agent" "$init" "$rsh" "$bench"
droverd=$(realpath "$droverd"); agent=$(realpath "$agent"); init=$(realpath "$init")
bench=$(realpath "$bench"); cli=$(realpath "$cli")
bench_require_root "test hosts, drover-agent and the container baselines need root"
for tool in mpirun runc nsenter unshare ip; do
  command -v "$tool" >/dev/null || PATH=$PATH:/usr/sbin:/sbin
  command -v "$tool" >/dev/null || { echo "run_distributed_bench.sh: $tool is not installed" >&2; exit 2; }
done
if [[ $allreduce_jobs -gt 0 ]] && ! /usr/bin/python3 -c 'import mpi4py' 2>/dev/null; then
  echo "run_distributed_bench.sh: /usr/bin/python3 has no mpi4py (apt install python3-mpi4py), or pass --allreduce-jobs 0" >&2
  exit 2
fi
bench_require_real_disk "$state_root"
if [[ -n $("$testhosts" list --prefix "$prefix") ]]; then
  echo "run_distributed_bench.sh: test hosts of prefix $prefix exist already (another run?); see '$testhosts list --prefix $prefix', destroy them by hand if they are stale" >&2
  exit 1
fi

base=$(mktemp -d "$state_root/drover-dist-bench-XXXXXX")
# Searchable by others: a job container's root is an unprivileged host uid (--userns-range).
chmod 711 "$base"
results=${out_dir:-$base/results}
mkdir -p "$base/state" "$results"
agent_pids=()
hosts_made=
bench_extra_cleanup() {
  if [[ -n $hosts_made ]]; then "$testhosts" destroy --prefix "$prefix" || true; fi
}
bench_cleanup_on_exit

# Two test hosts on the first free /24.
candidates=${subnet:-$(echo 10.231.{7..30})}
for net in $candidates; do
  set +e
  hosts=$("$testhosts" create 2 --prefix "$prefix" --subnet "$net" 2> "$base/testhosts.err")
  rc=$?
  set -e
  if [[ $rc -eq 0 ]]; then subnet=$net; hosts_made=1; break; fi
  if [[ $rc -ne 3 ]]; then cat "$base/testhosts.err" >&2; exit 1; fi
done
if [[ -z $hosts_made ]]; then
  echo "run_distributed_bench.sh: no free subnet among $candidates:" >&2
  cat "$base/testhosts.err" >&2
  exit 1
fi
mapfile -t host_names < <(awk '{print $1}' <<< "$hosts")
mapfile -t host_addrs < <(awk '{print $2}' <<< "$hosts")
bridge=$subnet.1
network=$subnet.0/24

# The bare baseline: a hostfile as the agent writes it, and an rsh agent for mpirun that
# runs Open MPI's daemon command on the host of the given address: in its network namespace
# and with its hostname (a UTS namespace of its own), as drover-rsh and the agents run it
# in that host's container. Without the hostname Open MPI takes both hosts for one (same
# session folder) and its shared-memory transport crashes.
printf '%s slots=2\n' "${host_addrs[@]}" > "$base/hostfile"
# shellcheck disable=SC2016  # the $ are the rsh agent's own
{
  echo '#!/bin/sh'
  echo '# mpirun --mca plm_rsh_agent THIS: THIS HOST COMMAND...'
  echo 'host=$1; shift'
  echo 'case $host in'
  for i in "${!host_names[@]}"; do
    echo "  ${host_addrs[$i]}|${host_names[$i]}) name=${host_names[$i]} ;;"
  done
  echo '  *) echo "mpi-rsh: unknown host $host" >&2; exit 255 ;;'
  echo 'esac'
  echo 'exec nsenter --net=/var/run/netns/$name unshare --uts /bin/sh -c '\''echo "$0" > /proc/sys/kernel/hostname && exec /bin/sh -c "$1"'\'' "$name" "$*"'
} > "$base/mpi-rsh"
chmod +x "$base/mpi-rsh"
launcher="mpirun --hostfile $base/hostfile -np 4 --map-by ppr:2:node --bind-to none"
launcher+=" --mca plm_rsh_agent $base/mpi-rsh --mca plm_rsh_no_tree_spawn 1"
launcher+=" --mca oob_tcp_if_include $network --mca btl_tcp_if_include $network"

bench_machine "$build_dir" "$base"
echo "runc:    $(runc --version | head -1)"
echo "mpirun:  $(mpirun --version 2>&1 | head -1)"
echo "hosts:   $(tr '\n' ' ' <<< "$hosts")(bridge $bridge)"
echo "uptime: $(uptime)"

bench_start_droverd "$droverd" "$base/state" "$bridge:0" "$results/droverd.log" --log-level "$log_level"

# One agent per host, inside it (testhosts.sh exec keeps the pid), with drover-init and
# drover-rsh found beside it in BUILD_DIR.
for i in "${!host_names[@]}"; do
  bench_join_token "$cli" "${host_names[$i]}" "$base/join-token-$((i + 1))"
  "$testhosts" exec --prefix "$prefix" $((i + 1)) "$agent" --scheduler "$address" --ca "$DROVER_CA" \
    --node-name "${host_names[$i]}" --address "${host_addrs[$i]}" --work-dir "$base/agent-$((i + 1))" \
    --join-file "$base/join-token-$((i + 1))" \
    --cpus 2 --memory 4Gi --log-level "$log_level" 2> "$results/agent-$((i + 1)).log" &
  agent_pids+=($!)
done
echo
echo "== droverd $address (pid $droverd_pid), drover-agent on ${host_names[*]} (pids ${agent_pids[*]}), --log-level $log_level"

# drover-bench runs on host 1, where a user would run mpirun.
run_bench() {  # NAME JOBS PROGRAM [ARGS...]
  local name=$1 count=$2
  shift 2
  echo
  echo "== $name: drover-bench distributed-latency --jobs $count --nodes 2 --processes-per-node 2 --backend mpi -- $1${2:+ $2 ...} ($(bench_load))"
  "$testhosts" exec --prefix "$prefix" 1 env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
    "$bench" distributed-latency --server "$address" --jobs "$count" --warmup 1 \
    --nodes 2 --processes-per-node 2 --backend mpi --cpus 2 --memory-mib 1024 \
    --baseline-launcher "$launcher" --baseline-root "$base" --init "$init" \
    --traces "$results/$name-traces.jsonl" --output json -- "$@" > "$results/$name.json"
}
run_bench true "$jobs" /bin/true
names=(true)
if [[ $allreduce_jobs -gt 0 ]]; then
  run_bench allreduce "$allreduce_jobs" /usr/bin/python3 -c "$(cat "$allreduce")"
  names+=(allreduce)
fi
echo "after: $(bench_load)"

bench_cleanup_daemons
for i in "${!host_names[@]}"; do
  if [[ -n $(runc --root "$base/agent-$((i + 1))/runc" list -q 2>/dev/null) ]]; then
    echo "run_distributed_bench.sh: WARNING: the agent of ${host_names[$i]} left containers behind" >&2
  fi
done

echo
echo "== results"
echo "bare launcher: $launcher PROGRAM"
python3 - "$results" "${names[@]}" <<'PY'
import json, os, sys
results, names = sys.argv[1], sys.argv[2:]
for name in names:
    r = json.load(open(os.path.join(results, name + ".json")))
    b = r["baseline"]
    row = lambda label, s: print(f"  {label:<36} {s['p50_ms']:>9.1f} {s['p90_ms']:>9.1f} {s['max_ms']:>9.1f}")
    print(f"{name}: {r['jobs']} jobs of `{r['program']}`, {r['nodes']} nodes x {r['processes_per_node']} "
          f"processes, backend {r['backend']}, load {r['load_before']} -> {r['load_after']}, failed {r['failed']}"
          + (f" (first: {r['first_failure']})" if r["failed"] else ""))
    print(f"  {'':<36} {'p50 ms':>9} {'p90 ms':>9} {'max ms':>9}")
    row("bare mpirun", b["launcher_run"])
    row("runc run (container start)", b["runc_run_same_config"])
    if b["runc_run_minimal"]["count"]:
        row("runc run, minimal busybox", b["runc_run_minimal"])
    row("RuncRuntime create+start+wait+delete", b["runtime"])
    row("  create", b["runtime_create"])
    row("  start", b["runtime_start"])
    row("  delete", b["runtime_delete"])
    row("Drover submit -> ack", r["submit_ack"])
    row("Drover submit -> RUNNING", r["to_running"])
    row("Drover submit -> COMPLETED", r["to_completed"])
    for phase, s in r["phases"].items():
        row("  " + phase, s)
    row("last rank's end -> COMPLETED", r["last_rank_end_to_completed"])
    mpi = b["launcher_run"]["p50_ms"]
    start = b["runc_run_same_config"]["p50_ms"]
    drover = r["to_completed"]["p50_ms"]
    over = drover - mpi
    print(f"  overhead = Drover - bare mpirun (p50s): {over:.1f} ms = {over / mpi:.2f} x the bare mpirun "
          f"(Drover is {drover / mpi:.2f} x it)")
    print(f"  overhead - one container start: {over - start:.1f} ms (container start {start:.1f} ms; "
          f"overhead = {over / start:.2f} x it)")
    print(f"  goal (issue 4): overhead < 100 ms + container start = {100 + start:.1f} ms: "
          f"{'met' if over < 100 + start else 'NOT met'}")
    print()
PY
if [[ $log_level == debug ]]; then
  # Where the time goes: the daemons' events lined up with each job's client-seen timeline
  # (same machine, same clock). "head" is node rank 0 (it runs mpirun and relays the remote
  # launch: exec_relayed), "other" node rank 1.
  echo "== where the time goes: median (p90) ms after the client sent SubmitJob"
  python3 - "$results" "${names[@]}" <<'PY'
import datetime, glob, json, os, re, statistics, sys
results, names = sys.argv[1], sys.argv[2:]
def when(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp()
events = {}  # job -> [(time, source, event)]
for path in sorted(glob.glob(os.path.join(results, "*.log"))):
    source = os.path.basename(path)[:-4]
    for line in open(path):
        m = re.match(r"(\S+Z) \w+ event=(\w+)(.*)", line)
        if not m:
            continue
        job = re.search(r"\bjob=(j-\d+)|\bid=drover-(j-\d+)-", m.group(3))
        if job:
            events.setdefault(job.group(1) or job.group(2), []).append((when(m.group(1)), source, m.group(2)))
for name in names:
    rows = {}
    for line in open(os.path.join(results, name + "-traces.jsonl")):
        t = json.loads(line)
        sent = when(t["sent"])
        evs = events.get(t["job"], [])
        head = next((s for _, s, e in evs if e == "exec_relayed"), None)
        seen = set()
        for at, source, event in sorted(evs):
            role = "droverd" if source == "droverd" else ("head" if source == head else "other")
            key = f"{role} {event}"
            if key in seen:
                continue
            seen.add(key)
            rows.setdefault(key, []).append((at - sent) * 1000)
        for k, v in t.items():
            if k.endswith("_ms"):
                rows.setdefault("client/status " + k[:-3], []).append(v)
    print(f"{name}:")
    order = sorted(rows.items(), key=lambda kv: statistics.median(kv[1]))
    for key, values in order:
        values.sort()
        p90 = values[min(len(values) - 1, int(0.9 * len(values) + 0.999) - 1)]
        print(f"  {statistics.median(values):9.1f} ({p90:7.1f})  {key}")
PY
fi
if [[ -n $out_dir ]]; then echo "JSON results, timelines and daemon logs kept in $out_dir"; fi
