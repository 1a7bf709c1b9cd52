#!/usr/bin/env bash
# Times the drover CLI's own cost per command, as people script it (one process per
# command): `drover version` (no call: start-up alone) and `drover submit` of a trivial job
# (start-up, TLS, one durable submit) against a droverd of its own, for each --cli given,
# interleaved (A, B, A, B, ...) so that all see the same machine. Prints, per CLI and
# command, the median wall time and CPU time (user + system, from wait4) per call, and each
# CLI's ratio to the first one's.
#
#   bench/run_cli_bench.sh BUILD_DIR [--cli NAME=PATH]... [--calls 200] [--passes 3]
#                          [--state-root DIR]
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
state_root=${TMPDIR_BENCH:-/var/tmp}
while [[ $# -gt 0 ]]; do
  case $1 in
    --cli) clis+=("$2"); shift 2 ;;
    --calls) calls=$2; shift 2 ;;
    --passes) passes=$2; shift 2 ;;
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

python3 - "$address" "$calls" "$passes" "${clis[@]}" <<'PY'
import os, statistics, sys, time
address, calls, passes, clis = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
commands = {
    "version": ["version"],
    "submit": ["--server", address, "submit", "--cpus", "1", "--image", "host", "bin/true"],
}
def run(argv):
    start = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, os.environ,
                         file_actions=[(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)])
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"run_cli_bench.sh: {' '.join(argv)} failed ({status})")
    return wall, usage.ru_utime + usage.ru_stime
results = {}  # (cli, command) -> [(wall, cpu)] per pass, medians
for p in range(passes):
    for entry in clis:
        name, path = entry.split("=", 1)
        for command, args in commands.items():
            runs = [run([path] + args) for _ in range(calls)]
            wall = statistics.median(r[0] for r in runs)
            cpu = statistics.median(r[1] for r in runs)
            results.setdefault((name, command), []).append((wall, cpu))
            print(f"pass {p + 1} {name:<10} {command:<8} wall {wall * 1000:7.2f} ms  cpu {cpu * 1000:7.2f} ms"
                  f"  (load {os.getloadavg()[0]:.2f})", flush=True)
print(f"\nmedians of {passes} passes of {calls} calls (per call)")
first = clis[0].split("=", 1)[0]
for command in commands:
    for entry in clis:
        name = entry.split("=", 1)[0]
        wall = statistics.median(r[0] for r in results[(name, command)])
        cpu = statistics.median(r[1] for r in results[(name, command)])
        line = f"  {command:<8} {name:<10} wall {wall * 1000:7.2f} ms  cpu {cpu * 1000:7.2f} ms"
        if name != first:
            w0 = statistics.median(r[0] for r in results[(first, command)])
            c0 = statistics.median(r[1] for r in results[(first, command)])
            line += f"  ({name}/{first}: wall {wall / w0:.2f}, cpu {cpu / c0:.2f})"
        print(line)
PY
