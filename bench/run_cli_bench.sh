#!/usr/bin/env bash
# Times the drover CLI's own cost per command, as people script it (one process per
# command): `drover version` (no call: start-up alone) and `drover submit` of a trivial job
# (start-up, TLS, one durable submit) against a droverd of its own, for each --cli given,
# interleaved (A, B, A, B, ...) so that all see the same machine. Prints, per CLI and
# command, the median wall time and CPU time (user + system, from wait4) per call, and each
# CLI's ratio to the first one's. With --keeper, each CLI also runs with its connection
# keeper on (as NAME+keeper; the plain runs set DROVER_KEEPER=off), and the keeper's own
# CPU per call (from /proc, over each pass) is printed beside the CLI's.
#
#   bench/run_cli_bench.sh BUILD_DIR [--cli NAME=PATH]... [--calls 200] [--passes 3]
#                          [--keeper] [--state-root DIR]
#
# BUILD_DIR is a configured and built tree with droverd and drover; its drover is the only
# CLI unless --cli names others (for example --cli dynamic=OLD/cli/drover --cli
# static=BUILD_DIR/cli/drover). The jobs stay queued (droverd has no agent). This script
# builds nothing. Everything goes under a fresh folder in --state-root (default /var/tmp).
set -euo pipefail

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

[[ $# -ge 1 ]] || usage
[[ "$1" == "-h" || "$1" == "--help" ]] && usage
build_dir=$1; shift
clis=()
calls=200
passes=3
keeper=0
state_root=${TMPDIR_BENCH:-/var/tmp}
while [[ $# -gt 0 ]]; do
  case $1 in
    --cli) clis+=("$2"); shift 2 ;;
    --calls) calls=$2; shift 2 ;;
    --passes) passes=$2; shift 2 ;;
    --keeper) keeper=1; shift ;;
    --state-root) state_root=$2; shift 2 ;;
    *) echo "run_cli_bench.sh: unknown argument '$1'; see --help" >&2; exit 2 ;;
  esac
done
BENCH_NAME=run_cli_bench.sh
source "$(dirname "$0")/lib.sh"
[[ ${#clis[@]} -gt 0 ]] || clis=("drover=$build_dir/cli/drover")
droverd=$build_dir/server/droverd
bench_check_programs "build the droverd and drover targets in $build_dir first" "$droverd"
for entry in "${clis[@]}"; do
  name=${entry%%=*}
  path=${entry#*=}
  if [[ $name == "$entry" || ! $name =~ ^[A-Za-z0-9._-]+$ ]]; then
    bench_fail 2 "--cli '$entry': write NAME=PATH, NAME of [A-Za-z0-9._-]"
  fi
  bench_check_programs "--cli $name: build it first" "$path"
done

base=$(mktemp -d "$state_root/drover-cli-bench-XXXXXX")
bench_cleanup_on_exit

bench_machine "$build_dir" "$base"
for entry in "${clis[@]}"; do
  echo "cli:     ${entry%%=*} = ${entry#*=} ($(ldd "${entry#*=}" | wc -l) shared objects)"
done
bench_start_droverd "$droverd" "$base/state" 127.0.0.1:0 "$base/droverd.log" --log-level warning
echo "droverd: $address (pid $droverd_pid)"
echo

mkdir -m 700 "$base/run"
python3 - "$address" "$calls" "$passes" "$keeper" "$base/run" "${clis[@]}" <<'PY'
import glob, os, socket, statistics, struct, sys, time
address, calls, passes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
keeper, runtime_dir, entries = sys.argv[4] == "1", sys.argv[5], sys.argv[6:]
# (name, path, environment) per variant: keeper off, and with --keeper keeper on too.
clis = []
for entry in entries:
    name, path = entry.split("=", 1)
    clis.append((name, path, dict(os.environ, DROVER_KEEPER="off")))
    if keeper:
        clis.append((name + "+keeper", path, dict(os.environ, DROVER_KEEPER="on",
                     XDG_RUNTIME_DIR=runtime_dir, DROVER_KEEPER_IDLE="3600")))
def keeper_cpu(env):
    """CPU seconds the keepers of this run have used so far (0 without one)."""
    if env.get("DROVER_KEEPER") != "on":
        return 0.0
    total = 0.0
    for path in glob.glob(os.path.join(runtime_dir, "drover", "*.sock")):
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            pid, _, _ = struct.unpack("3i", s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                          struct.calcsize("3i")))
            s.close()
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            pass
    return total
commands = {
    "version": ["version"],
    "submit": ["--server", address, "submit", "--cpus", "1", "--image", "host", "bin/true"],
}
def run(argv, env):
    start = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, env,
                         file_actions=[(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)])
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"run_cli_bench.sh: {' '.join(argv)} failed ({status})")
    return wall, usage.ru_utime + usage.ru_stime
# A keeper is started by a first call; it is not part of what is timed.
for name, path, env in clis:
    if env.get("DROVER_KEEPER") == "on":
        run([path] + commands["submit"], env)
        deadline = time.time() + 10
        while keeper_cpu(env) == 0.0 and not glob.glob(os.path.join(runtime_dir, "drover", "*.sock")):
            if time.time() > deadline:
                sys.exit("run_cli_bench.sh: no keeper started")
            time.sleep(0.05)
        time.sleep(0.5)
results = {}  # (cli, command) -> [(wall, cpu, keeper cpu)] per pass, medians
for p in range(passes):
    for name, path, env in clis:
        for command, args in commands.items():
            before = keeper_cpu(env)
            runs = [run([path] + args, env) for _ in range(calls)]
            kept = (keeper_cpu(env) - before) / calls
            wall = statistics.median(r[0] for r in runs)
            cpu = statistics.median(r[1] for r in runs)
            results.setdefault((name, command), []).append((wall, cpu, kept))
            print(f"pass {p + 1} {name:<16} {command:<8} wall {wall * 1000:7.2f} ms  cpu {cpu * 1000:7.2f} ms"
                  f"  keeper {kept * 1000:5.2f} ms  (load {os.getloadavg()[0]:.2f})", flush=True)
print(f"\nmedians of {passes} passes of {calls} calls (per call; keeper: its CPU per call)")
first = clis[0][0]
for command in commands:
    for name, _, _ in clis:
        wall = statistics.median(r[0] for r in results[(name, command)])
        cpu = statistics.median(r[1] for r in results[(name, command)])
        kept = statistics.median(r[2] for r in results[(name, command)])
        line = (f"  {command:<8} {name:<16} wall {wall * 1000:7.2f} ms  cpu {cpu * 1000:7.2f} ms"
                f"  keeper {kept * 1000:5.2f} ms")
        if name != first:
            w0 = statistics.median(r[0] for r in results[(first, command)])
            c0 = statistics.median(r[1] for r in results[(first, command)])
            k0 = statistics.median(r[2] for r in results[(first, command)])
            line += (f"  ({name}/{first}: wall {wall / w0:.2f}, cpu {cpu / c0:.2f},"
                     f" cpu+keeper {(cpu + kept) / (c0 + k0):.2f})")
        print(line)
PY
