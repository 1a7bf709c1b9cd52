#!/usr/bin/env bash
# Issue 18's side-by-side comparison: Slurm (Debian's packages) against Drover on this
# machine, each as its own small cluster started and stopped here, with one CLI process per
# job as people script it, N trivial jobs per figure, interleaved passes (Slurm, Drover,
# Slurm, Drover, ...; never both at once), medians and Drover/Slurm ratios. Figures: the
# submit loop (1 submitter, and 4 in parallel), submit while nothing can run, end to end
# (submit N, then wait until all are done), execution only (N queued, released, all done),
# the latency of one trivial job (`srun true` vs `drover submit --watch`), and CPU per job
# by component (CLI from wait4; daemons from /proc/PID/stat; what they start from a cpuacct
# cgroup for Slurm and the agents' reaped children for Drover).
#
#   bench/run_slurm_compare.sh BUILD_DIR [--jobs 300] [--passes 3] [--latency-runs 20]
#                              [--poll 0.1] [--state-root DIR] [--out DIR] [--no-install]
#                              [--slurm-scheduler-parameters LIST]
#
# BUILD_DIR is a configured and built tree (release or RelWithDebInfo) with droverd, drover,
# drover-agent and drover-init; this script builds nothing. Runs as root. It INSTALLS
# Slurm and munge when missing (apt-get install -y --no-install-recommends slurmctld slurmd
# slurm-client munge; --no-install fails instead): a benchmark-only dependency. Its Slurm
# runs with its own munged (key, socket, pid, log and seed files in the folder; slurm.conf's
# AuthInfo=socket=...), its own slurm.conf (SLURM_CONF for every Slurm command), 4 slurmd
# (Debian's slurmd is built with multiple-slurmd support: `slurmd -N nX`, one port each)
# x 16 CPUs on this host and a high-throughput profile; its Drover is droverd and 4 agents
# x 16 CPUs on loopback. Neither touches another Slurm, munged or droverd on the machine.
# Everything goes under a fresh folder in --state-root (default /var/tmp, a real disk),
# removed at exit, every daemon stopped by pid; with --out, the raw figures (JSON), the
# configs, slurmctld's `sdiag` and the daemons' logs are kept there. --poll is how often
# "all done" is checked (one squeue / drover list call each time).
# --slurm-scheduler-parameters sets slurm.conf's SchedulerParameters (default: none, Slurm
# scheduling at submit, its fastest here: `defer`, the high-throughput guide's, took `srun
# true` from 0.03 to about 3 s).
set -euo pipefail

usage() { sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

[[ $# -ge 1 ]] || usage
[[ "$1" == "-h" || "$1" == "--help" ]] && usage
build_dir=$1; shift
jobs=300
passes=3
latency_runs=20
poll=0.1
state_root=${TMPDIR_BENCH:-/var/tmp}
out_dir=
install=1
sched_params=
while [[ $# -gt 0 ]]; do
  case $1 in
    --jobs) jobs=$2; shift 2 ;;
    --passes) passes=$2; shift 2 ;;
    --latency-runs) latency_runs=$2; shift 2 ;;
    --poll) poll=$2; shift 2 ;;
    --state-root) state_root=$2; shift 2 ;;
    --out) out_dir=$2; shift 2 ;;
    --no-install) install=; shift ;;
    --slurm-scheduler-parameters) sched_params=$2; shift 2 ;;
    *) echo "run_slurm_compare.sh: unknown argument '$1'; see --help" >&2; exit 2 ;;
  esac
done
BENCH_NAME=run_slurm_compare.sh
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
droverd=$build_dir/server/droverd
agent=$build_dir/agent/drover-agent
init=$build_dir/agent/launcher/drover-init
cli=$build_dir/cli/drover
bench_check_programs "build the droverd, drover, drover-agent and drover-init targets in $build_dir first" \
  "$droverd" "$cli" "$agent" "$init"
droverd=$(realpath "$droverd"); agent=$(realpath "$agent"); init=$(realpath "$init")
cli=$(realpath "$cli")
bench_require_root "slurmd, munged and drover-agent run as root here"
bench_require_real_disk "$state_root"
[[ $jobs -ge 4 && $passes -ge 1 && $latency_runs -ge 1 ]] ||
  bench_fail 2 "--jobs must be at least 4, --passes and --latency-runs at least 1"
PATH=$PATH:/usr/sbin:/sbin
missing=
for tool in slurmctld slurmd sbatch srun squeue scontrol munged; do
  command -v "$tool" >/dev/null || missing=1
done
if [[ -n $missing ]]; then
  [[ -n $install ]] || bench_fail 2 "Slurm or munge is missing (apt-get install slurmctld slurmd slurm-client munge)"
  echo "== installing Slurm and munge (a benchmark-only dependency)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    slurmctld slurmd slurm-client munge >/dev/null || bench_fail 2 "apt-get install failed"
fi
cpuacct=/sys/fs/cgroup/cpuacct
[[ -w $cpuacct ]] || cpuacct=
[[ -z $cpuacct ]] && echo "run_slurm_compare.sh: no writable cgroup v1 cpuacct; Slurm's job-launch CPU is not measured" >&2

base=$(mktemp -d "$state_root/drover-slurm-compare-XXXXXX")
# Searchable by others: a job container's root is an unprivileged host uid (--userns-range).
chmod 711 "$base"
results=${out_dir:-$base/results}
mkdir -p "$results" "$base/munge" "$base/slurm/state" "$base/slurm/work" "$base/drover"
chmod 700 "$base/munge"
slurm_cgroup=
[[ -z $cpuacct ]] || slurm_cgroup=$cpuacct/$(basename "$base")
slurm_pids=()
munged_pid=
agent_pids=()
bench_extra_cleanup() {
  local pid
  for pid in "${slurm_pids[@]}"; do bench_stop "$pid"; done
  bench_stop "$munged_pid"
  if [[ -n $slurm_cgroup && -d $slurm_cgroup ]]; then
    # What slurmd started and left behind (slurmstepd, jobs), by pid, then the cgroup.
    while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done < "$slurm_cgroup/cgroup.procs"
    for _ in $(seq 50); do rmdir "$slurm_cgroup" 2>/dev/null && break; sleep 0.1; done
  fi
  if [[ -n $out_dir ]]; then
    cp "$base"/slurm/*.log "$base/slurm/slurm.conf" "$base/munge/munged.log" "$out_dir/" 2>/dev/null || true
  fi
}
bench_cleanup_on_exit

bench_machine "$build_dir" "$base"
echo "slurm:   $(slurmd -V), $(munged --version 2>&1 | awk '{print $1; exit}')"
echo "uptime: $(uptime)"

# Free TCP ports: slurmctld and one per slurmd.
mapfile -t ports < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(5)]
for s in socks: s.bind(("127.0.0.1", 0))
for s in socks: print(s.getsockname()[1])')

# munged of its own: key, socket, pid, log and seed in the folder.
dd if=/dev/urandom of="$base/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$base/munge/munge.key"
munge_socket=$base/munge/munge.socket
# Starts COMMAND... in the Slurm cgroup (when there is one), in the background.
start_in_slurm_cgroup() {
  if [[ -n $slurm_cgroup ]]; then
    # shellcheck disable=SC2016  # $$ is the child's
    sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$slurm_cgroup" "$@" &
  else
    "$@" &
  fi
}
[[ -z $slurm_cgroup ]] || mkdir "$slurm_cgroup"
start_in_slurm_cgroup munged --foreground --force --socket "$munge_socket" \
  --key-file "$base/munge/munge.key" --pid-file "$base/munge/munged.pid" \
  --log-file "$base/munge/munged.log" --seed-file "$base/munge/munged.seed" 2>"$base/munge/munged.err"
munged_pid=$!
for _ in $(seq 100); do [[ -S $munge_socket ]] && break; sleep 0.1; done
[[ -S $munge_socket ]] || bench_fail 1 "munged did not start: $(cat "$base/munge/munged.err" "$base/munge/munged.log" 2>/dev/null)"

# slurm.conf of its own: 4 nodes x 16 CPUs on this host, a high-throughput profile
# (https://slurm.schedmd.com/high_throughput.html): finished jobs purged after 2 s, a large
# MaxJobCount, no accounting, debug logs off, no cgroups (proctrack/linuxproc, task/none),
# CPUs as the only consumable resource, slurmd taking the configured CPUs on trust
# (config_overrides: 4 x 16 on a 2-core machine), --slurm-scheduler-parameters if given.
host=$(hostname -s)
export SLURM_CONF=$base/slurm/slurm.conf
{
  cat <<EOF
ClusterName=drover-bench
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=${ports[0]}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$munge_socket
StateSaveLocation=$base/slurm/state
SlurmdSpoolDir=$base/slurm/spool-%n
SlurmctldPidFile=$base/slurm/slurmctld.pid
SlurmdPidFile=$base/slurm/slurmd-%n.pid
SlurmctldLogFile=$base/slurm/slurmctld.log
SlurmdLogFile=$base/slurm/slurmd-%n.log
SlurmctldDebug=error
SlurmdDebug=error
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
MailProg=/bin/true
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
${sched_params:+SchedulerParameters=$sched_params}
MessageTimeout=30
MaxJobCount=1000000
MinJobAge=2
ReturnToService=2
SlurmdParameters=config_overrides
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
EOF
  for i in 1 2 3 4; do
    echo "NodeName=n$i NodeHostname=$host NodeAddr=127.0.0.1 Port=${ports[$i]} CPUs=16 State=UNKNOWN"
  done
  echo "PartitionName=bench Nodes=ALL Default=YES MaxTime=INFINITE State=UP"
} > "$SLURM_CONF"
[[ -z $out_dir ]] || cp "$SLURM_CONF" "$out_dir/slurm.conf"

start_in_slurm_cgroup slurmctld -D -i -f "$SLURM_CONF" 2>"$base/slurm/slurmctld.err"
slurmctld_pid=$!
slurm_pids+=("$slurmctld_pid")
slurmd_pids=()
for i in 1 2 3 4; do
  start_in_slurm_cgroup slurmd -D -N "n$i" -f "$SLURM_CONF" 2>"$base/slurm/slurmd-n$i.err"
  slurmd_pids+=("$!")
  slurm_pids+=("$!")
done
for _ in $(seq 300); do
  [[ $(sinfo -h -N -t idle -o %N 2>/dev/null | sort -u | wc -l) -eq 4 ]] && break
  for pid in "${slurm_pids[@]}"; do
    kill -0 "$pid" 2>/dev/null ||
      bench_fail 1 "a Slurm daemon exited during start-up: $(cat "$base"/slurm/*.err "$base"/slurm/*.log 2>/dev/null | tail -20)"
  done
  sleep 0.1
done
[[ $(sinfo -h -N -t idle -o %N | sort -u | wc -l) -eq 4 ]] ||
  bench_fail 1 "Slurm's 4 nodes are not idle after 30 s: $(sinfo -N 2>&1)"
echo "slurm:   slurmctld ${ports[0]} (pid $slurmctld_pid), slurmd n1-n4 ports ${ports[*]:1} (pids ${slurmd_pids[*]}), munged pid $munged_pid"

# Drover: droverd and 4 agents x 16 CPUs on loopback.
bench_start_droverd "$droverd" "$base/drover/state" 127.0.0.1:0 "$results/droverd.log" --log-level warning
for i in 1 2 3 4; do
  bench_start_agent "$agent" "$cli" "n$i" "$base/drover/agent-n$i" "$init" "$results/agent-n$i.log" \
    --log-level warning --cpus 16 --userns-range "$((100000 + (i - 1) * 65536)):65536"
  agent_pids+=("$agent_pid")
  agent_pid=
done
for _ in $(seq 300); do
  [[ $("$cli" --server "$address" nodes -o json | grep -c '"READY"') -eq 4 ]] && break
  sleep 0.1
done
[[ $("$cli" --server "$address" nodes -o json | grep -c '"READY"') -eq 4 ]] ||
  bench_fail 1 "Drover's 4 nodes are not READY after 30 s: $("$cli" --server "$address" nodes 2>&1)"
echo "drover:  droverd $address (pid $droverd_pid), agents n1-n4 (pids ${agent_pids[*]})"
echo

cd "$base/slurm/work"  # where sbatch's slurm-JOBID.out files go
python3 - "$results" "$jobs" "$passes" "$latency_runs" "$poll" "$slurm_cgroup" \
  "$slurmctld_pid" "${slurmd_pids[*]}" "$munged_pid" \
  "$cli" "$address" "$droverd_pid" "${agent_pids[*]}" <<'PY'
import json, os, statistics, sys, threading, time

(results, jobs, passes, latency_runs, poll, slurm_cgroup, slurmctld, slurmds, munged,
 cli, address, droverd, agents) = sys.argv[1:]
jobs, passes, latency_runs, poll = int(jobs), int(passes), int(latency_runs), float(poll)
tick = os.sysconf("SC_CLK_TCK")
devnull = os.open(os.devnull, os.O_WRONLY)

def spawn(argv, out=devnull):
    """Runs argv, returns (wall s, CPU s of the child from wait4, exit code)."""
    start = time.perf_counter()
    pid = os.posix_spawnp(argv[0], argv, os.environ,
                          file_actions=[(os.POSIX_SPAWN_DUP2, out, 1)])
    _, status, usage = os.wait4(pid, 0)
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime, os.waitstatus_to_exitcode(status)

def output(argv):
    r, w = os.pipe()
    pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, w, 1)])
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    _, status, _ = os.wait4(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"run_slurm_compare.sh: {' '.join(argv)} failed")
    return data.decode()

def proc_cpu(pid):
    """(own, reaped children's) CPU seconds of pid."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return ((int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick)

class System:
    def daemons(self):
        """name -> pids."""
        raise NotImplementedError
    def snapshot(self):
        snap = {}
        for name, pids in self.daemons().items():
            own = [proc_cpu(p) for p in pids]
            snap[name] = sum(o for o, _ in own)
            snap[name + ".children"] = sum(c for _, c in own)
        snap["total"] = self.total()
        return snap
    def total(self):
        return None

class Slurm(System):
    name = "slurm"
    def daemons(self):
        return {"slurmctld": [int(slurmctld)], "slurmd": [int(p) for p in slurmds.split()],
                "munged": [int(munged)]}
    def total(self):
        if not slurm_cgroup:
            return None
        return int(open(f"{slurm_cgroup}/cpuacct.usage").read()) / 1e9
    def launched(self, d):  # CPU of what the daemons started: slurmstepd, the jobs
        if d["total"] is None:
            return None
        # The cgroup counts in ns, /proc/PID/stat in ticks (10 ms): no less than nothing.
        return max(0.0, d["total"] - d["slurmctld"] - d["slurmd"] - d["munged"])
    def submit(self, held=False):
        return ["sbatch", "--hold", "--wrap", "true"] if held else ["sbatch", "--wrap", "true"]
    def hold(self):
        pass
    def release(self):
        ids = output(["squeue", "-h", "-t", "PD", "-o", "%i"]).split()
        return [["scontrol", "release", ",".join(ids)]]
    def pending(self):
        return ["squeue", "-h", "-t", "PD,R,CG,CF,S", "-o", "%i"]
    def idle(self, text):
        return text.strip() == ""
    def one_job(self):
        return ["srun", "true"]

class Drover(System):
    name = "drover"
    nodes = ["n1", "n2", "n3", "n4"]
    def daemons(self):
        return {"droverd": [int(droverd)], "agents": [int(p) for p in agents.split()]}
    def launched(self, d):  # the agents' reaped children: runc, drover-init, the jobs
        return d["agents.children"] + d["droverd.children"]
    def base(self):
        return [cli, "--server", address]
    def submit(self, held=False):
        return self.base() + ["submit", "--cpus", "1", "--image", "host", "bin/true"]
    def hold(self):
        for node in self.nodes:
            output(self.base() + ["node", "cordon", node])
    def release(self):
        return [self.base() + ["node", "uncordon", node] for node in self.nodes]
    def pending(self):
        return self.base() + ["list", "--state", "queued,preparing,starting,running,finalizing,cancel_requested",
                              "--limit", "1", "-o", "json"]
    def idle(self, text):
        return json.loads(text) == []
    def one_job(self):
        return self.base() + ["submit", "--watch", "--cpus", "1", "--image", "host", "bin/true"]

def wait_done(system, timeout=600):
    deadline = time.monotonic() + timeout
    while not system.idle(output(system.pending())):
        if time.monotonic() > deadline:
            sys.exit(f"run_slurm_compare.sh: {system.name}: jobs not done after {timeout} s")
        time.sleep(poll)
    return time.perf_counter()

def submit_loop(system, count, held=False):
    """count sequential submits; (wall s, CLI CPU s)."""
    cpu = 0.0
    start = time.perf_counter()
    for _ in range(count):
        wall, c, code = spawn(system.submit(held))
        if code != 0:
            sys.exit(f"run_slurm_compare.sh: {system.name}: {' '.join(system.submit(held))} exited {code}")
        cpu += c
    return time.perf_counter() - start, cpu

def delta(system, before, after):
    d = {k: (after[k] - before[k]) if before[k] is not None else None for k in before}
    d["launched"] = system.launched(d)
    return d

def phase_e2e(system):
    before = system.snapshot()
    start = time.perf_counter()
    wall, cli_cpu = submit_loop(system, jobs)
    done = wait_done(system)
    d = delta(system, before, system.snapshot())
    d["cli"] = cli_cpu
    return {"submit_s": wall, "e2e_s": done - start, "cpu": d}

def phase_parallel(system, submitters=4):
    per = [jobs // submitters + (1 if i < jobs % submitters else 0) for i in range(submitters)]
    out = [None] * submitters
    def work(i):
        out[i] = submit_loop(system, per[i])
    threads = [threading.Thread(target=work, args=(i,)) for i in range(submitters)]
    start = time.perf_counter()
    for t in threads: t.start()
    for t in threads: t.join()
    wall = time.perf_counter() - start
    wait_done(system)
    return {"submit_s": wall}

def phase_held(system):
    system.hold()
    before = system.snapshot()
    wall, cli_cpu = submit_loop(system, jobs, held=True)
    mid = system.snapshot()
    start = time.perf_counter()
    release_cpu = 0.0
    for argv in system.release():
        _, c, code = spawn(argv)
        if code != 0:
            sys.exit(f"run_slurm_compare.sh: {system.name}: {' '.join(argv)[:200]} exited {code}")
        release_cpu += c
    released = time.perf_counter()
    done = wait_done(system)
    d_submit = delta(system, before, mid)
    d_submit["cli"] = cli_cpu
    d_exec = delta(system, mid, system.snapshot())
    d_exec["cli"] = release_cpu
    return {"submit_s": wall, "exec_s": done - start, "release_s": released - start,
            "cpu_submit": d_submit, "cpu_exec": d_exec}

def phase_idle(system, seconds=5.0):
    """The daemons' CPU while nothing happens, per second."""
    before = system.snapshot()
    time.sleep(seconds)
    d = delta(system, before, system.snapshot())
    return {k: (v / seconds if v is not None else None) for k, v in d.items()}

def phase_latency(system):
    walls = []
    for _ in range(latency_runs):
        wall, _, code = spawn(system.one_job())
        if code != 0:
            sys.exit(f"run_slurm_compare.sh: {system.name}: {' '.join(system.one_job())} exited {code}")
        walls.append(wall)
    return {"latency_s": statistics.median(walls), "latency_all_s": walls}

load = lambda: "%.2f %.2f %.2f" % os.getloadavg()
systems = [Slurm(), Drover()]
for system in systems:  # a warm-up job each: first-use costs out of the figures
    spawn(system.one_job())
raw = []
for p in range(passes):
    for system in systems:
        r = {"pass": p + 1, "system": system.name, "load_before": load()}
        r["idle"] = phase_idle(system)
        r["e2e"] = phase_e2e(system)
        r["parallel"] = phase_parallel(system)
        r["held"] = phase_held(system)
        r["latency"] = phase_latency(system)
        r["load_after"] = load()
        raw.append(r)
        print(f"pass {p + 1} {system.name:<7} submit {jobs / r['e2e']['submit_s']:7.1f}/s  "
              f"4 submitters {jobs / r['parallel']['submit_s']:7.1f}/s  "
              f"held {jobs / r['held']['submit_s']:7.1f}/s  e2e {jobs / r['e2e']['e2e_s']:6.1f}/s  "
              f"exec {jobs / r['held']['exec_s']:6.1f}/s (release {r['held']['release_s']:.2f} s)  one job {r['latency']['latency_s']:.3f} s  "
              f"(load {r['load_before']} -> {r['load_after']})", flush=True)
        with open(os.path.join(results, "raw.json"), "w") as f:
            json.dump(raw, f, indent=1)

failed = json.loads(output(systems[1].base() + ["list", "--state", "failed,canceled", "--limit", "5", "-o", "json"]))
if failed:
    sys.exit(f"run_slurm_compare.sh: drover: jobs did not complete, e.g. {failed[0].get('id')}")

def med(system, f):
    return statistics.median(f(r) for r in raw if r["system"] == system)
rows = [
    ("submit loop, 1 submitter (jobs/s)", lambda r: jobs / r["e2e"]["submit_s"], False),
    ("submit, 4 submitters (jobs/s)", lambda r: jobs / r["parallel"]["submit_s"], False),
    ("submit while nothing runs (jobs/s)", lambda r: jobs / r["held"]["submit_s"], False),
    ("end to end, 1 submitter (jobs/s)", lambda r: jobs / r["e2e"]["e2e_s"], False),
    ("execution only, N queued → all done (jobs/s)", lambda r: jobs / r["held"]["exec_s"], False),
    ("`srun true` vs `drover submit --watch` (s)", lambda r: r["latency"]["latency_s"], True),
]
uname = os.uname()
print(f"\n{os.cpu_count()} CPUs, {uname.sysname} {uname.release}, load {raw[0]['load_before']} "
      f"before, {raw[-1]['load_after']} after; {jobs} trivial jobs per run, {passes} interleaved "
      f"passes (medians), one job latency: median of {latency_runs}\n")
print("| figure | Slurm | Drover | Drover/Slurm |")
print("|---|---|---|---|")
for label, f, lower in rows:
    s, d = med("slurm", f), med("drover", f)
    digits = 3 if lower else 1
    print(f"| {label} | {s:.{digits}f} | {d:.{digits}f} | {d / s:.2f}{' (lower is better)' if lower else ''} |")

def cpu_rows(key, what, per=jobs, unit="CPU per job (ms)"):
    print(f"\n{unit}, {what}, medians of the passes:\n")
    print("| component | Slurm | Drover |")
    print("|---|---|---|")
    comps = [("CLI (wait4)", "cli", "cli"),
             ("controller (slurmctld / droverd)", "slurmctld", "droverd"),
             ("node daemons (4 slurmd / 4 agents)", "slurmd", "agents"),
             ("munged", "munged", None),
             ("what they start (slurmstepd + job / runc + drover-init + job)", "launched", "launched")]
    def value(system, comp):
        if comp is None:
            return None
        vals = [key(r)[comp] for r in raw if r["system"] == system]
        if any(v is None for v in vals):
            return None
        return statistics.median(vals) / per * 1000
    fmt = lambda v: "–" if v is None else f"{v:.2f}"
    totals = {"slurm": 0.0, "drover": 0.0}
    for label, s, d in comps:
        vs, vd = value("slurm", s), value("drover", d)
        totals["slurm"] += vs or 0
        totals["drover"] += vd or 0
        print(f"| {label} | {fmt(vs)} | {fmt(vd)} |")
    print(f"| total | {totals['slurm']:.2f} | {totals['drover']:.2f} |")
cpu_rows(lambda r: r["e2e"]["cpu"], "end to end, 1 submitter (submits and runs)")
cpu_rows(lambda r: r["held"]["cpu_submit"], "submit while nothing runs")
cpu_rows(lambda r: r["held"]["cpu_exec"], "execution only (CLI: the release calls)")
cpu_rows(lambda r: dict(r["idle"], cli=0.0), "idle, 5 s before each pass (already in the figures above)",
         per=1, unit="CPU per second (ms)")
PY
echo "after: $(bench_load)"
# slurmctld's own account of its scheduling cycles and RPCs, for where Slurm's time goes.
sdiag > "$results/sdiag.txt" 2>&1 || true
cd /
if [[ -n $out_dir ]]; then echo; echo "raw figures (raw.json), slurm.conf, sdiag.txt and the daemons' logs kept in $out_dir"; fi
