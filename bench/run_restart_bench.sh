#!/usr/bin/env bash
# Measures a droverd restart with many queued jobs (issue 21): fills a droverd of its own
# with --jobs queued jobs through the real API (job arrays of mixed shapes, some with secret
# variables, one with max_running, plus 50 single submits; no agent, so that they stay
# queued), then, --repeats times for each droverd given, SIGKILLs it and starts it again on
# the same state folder, and reports: the time from exec to serving (droverd writes its
# --address-file), to the first answered ListJobs and to the first acknowledged submit
# (one `drover` call each, one after the other), droverd's VmRSS and VmHWM then, per queued
# job (and VmRSS over that of the empty droverd, "+B/job"), droverd's CPU time until it
# served (user and system: on a loaded machine the wall time says more about the load),
# and whether droverd holds as many queued jobs as its store (its
# drover_jobs{state="QUEUED"} metric; nothing lost).
#
#   bench/run_restart_bench.sh BUILD_DIR [--jobs 1000000] [--repeats 3] [--cli PATH]
#                              [--baseline-droverd PATH] [--state-root DIR] [--out DIR]
#
# BUILD_DIR is a configured and built tree (release: `cmake --preset release && cmake
# --build build/release --target droverd drover`); this script builds nothing. --cli: the
# drover client to fill and probe with (default BUILD_DIR/cli/drover; any build will do).
# --baseline-droverd: another droverd (for example main's) that fills the store and is
# restarted on it first, in the same run, so that the figures compare as ratios. The
# state folder goes under --state-root (default /var/tmp), on a real disk; it needs about
# 0.6 GB per million jobs.
set -euo pipefail
BENCH_NAME=run_restart_bench.sh
source "$(dirname "$0")/lib.sh"

usage() { sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[[ $# -ge 1 ]] || usage
[[ "$1" == "-h" || "$1" == "--help" ]] && usage
build_dir=$1; shift
jobs=1000000
repeats=3
baseline=
cli=
state_root=${TMPDIR_BENCH:-/var/tmp}
out_dir=
while [[ $# -gt 0 ]]; do
  case $1 in
    --jobs) jobs=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --baseline-droverd) baseline=$2; shift 2 ;;
    --cli) cli=$2; shift 2 ;;
    --state-root) state_root=$2; shift 2 ;;
    --out) out_dir=$2; shift 2 ;;
    *) echo "run_restart_bench.sh: unknown argument '$1'; see --help" >&2; exit 2 ;;
  esac
done
[[ $jobs =~ ^[0-9]+$ && $jobs -ge 1000 ]] || bench_fail 2 "--jobs: '$jobs' is not a number of at least 1000"
[[ $repeats =~ ^[1-9][0-9]*$ ]] || bench_fail 2 "--repeats: '$repeats' is not a positive number"

droverd=$build_dir/server/droverd
cli=${cli:-$build_dir/cli/drover}
bench_check_programs "build the droverd and drover targets in $build_dir first" "$droverd" "$cli"
[[ -z $baseline ]] || bench_check_programs "--baseline-droverd must be a droverd" "$baseline"
command -v sqlite3 >/dev/null || bench_fail 2 "sqlite3 (the command) is needed to count the store's jobs"
bench_require_real_disk "$state_root"
base=$(mktemp -d "$state_root/drover-bench-XXXXXX")
state_dir=$base/state
work=${out_dir:-$base/results}
mkdir -p "$state_dir" "$work"
bench_cleanup_on_exit
bench_machine "$build_dir" "$base"
echo "$(bench_load)"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
listen=127.0.0.1:$(free_port)
metrics=127.0.0.1:$(free_port)
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
# CPU time (user and system) a process has used, in ms: droverd's start on a loaded machine
# takes longer in wall time than in CPU time.
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{print int(($14 + $15) * 1000 / hz)}' "/proc/$1/stat"; }
rss_kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }
store_queued() { sqlite3 "file:$state_dir/drover.db?mode=ro" "SELECT COUNT(*) FROM jobs WHERE state = 1"; }
droverd_queued() {
  curl -s "http://$metrics/metrics" | awk '/^drover_jobs\{state="QUEUED"\}/ {printf "%d", $2}'
}

# The store is filled by the baseline when there is one (the reference writes it).
bench_start_droverd "${baseline:-$droverd}" "$state_dir" "$listen" "$work/droverd-fill.log" \
  --log-level warning --metrics-listen "$metrics"
export DROVER_SERVER=$address
"$cli" list --limit 1 > /dev/null
empty_rss=$(rss_kib "$droverd_pid" VmRSS)
echo "== droverd $address (pid $droverd_pid), empty: VmRSS $empty_rss KiB"

# The shapes the arrays cycle through: sizes, gangs, GPUs, limits, priorities, tags,
# variables and secret variables (sealed at rest, opened when loaded), max_running.
shapes=(
  ""
  "--nodes 2 --processes-per-node 4 --backend pytorch --cpus 4 --memory 16Gi --priority 5"
  "--gpu --gpus 2 --max-run-duration 2h --env LR=0.01 --env BATCH=256 --tag team=nlp"
  "--secret-env HF_TOKEN=hf_0123456789abcdef --name secret-task --priority -3"
  "--nodes 4 --backend mpi --cpus 8 --memory 64Gi --tag team=vision --tag stage=pretrain"
)
plain=50
array_size=$(( jobs / 10 > 100000 ? 100000 : jobs / 10 ))
left=$(( jobs - plain ))
start=$(now_ms)
echo "== fill: $((jobs - plain)) tasks in arrays of up to $array_size (drover submit --array), mixed shapes"
for ((i = 0; left > 0; i++)); do
  size=$(( left < array_size ? left : array_size ))
  limit=
  (( i != 2 )) || limit=%10  # one array runs at most 10 tasks at once
  # shellcheck disable=SC2086
  "$cli" submit --array "0-$((size - 1))$limit" ${shapes[i % ${#shapes[@]}]} \
    --experiment "fill-$i" true > /dev/null 2>> "$work/fill.log"
  left=$(( left - size ))
done
echo "== fill: $plain single submits (drover submit), mixed shapes"
for ((i = 0; i < plain; i++)); do
  # shellcheck disable=SC2086
  "$cli" submit ${shapes[i % ${#shapes[@]}]} --experiment single true > /dev/null
done
echo "fill took $(( ($(now_ms) - start) / 1000 )) s; store: $(du -sh "$state_dir/drover.db" | cut -f1)"

# Waits (10 s at most) until droverd's metrics count `want` queued jobs; prints its count.
wait_queued() {  # WANT
  local got=
  for _ in $(seq 100); do
    got=$(droverd_queued)
    [[ $got == "$1" ]] && break
    sleep 0.1
  done
  echo "${got:-none}"
}

echo "binary,run,queued_store,queued_droverd,serve_ms,cpu_ms,list_ms,submit_ms,vmrss_kib,vmhwm_kib,rss_b_per_job,hwm_b_per_job,over_empty_b_per_job" \
  > "$work/restarts.csv"
restart() {  # NAME DROVERD RUN
  local name=$1 binary=$2 run=$3 t0 serve_ms cpu_ms list_ms submit_ms rss hwm before got
  kill -KILL "$droverd_pid"
  wait "$droverd_pid" 2>/dev/null || true
  before=$(store_queued)
  sync
  rm -f "$state_dir.address"
  t0=$(now_ms)
  "$binary" --listen "$listen" --state-dir "$state_dir" \
    --bootstrap-admin-token-file "$state_dir.token" --log-level warning \
    --address-file "$state_dir.address" --metrics-listen "$metrics" \
    2>> "$work/droverd-$name.log" &
  droverd_pid=$!
  # droverd writes its address once it serves; a client polling the port instead would
  # add gRPC's reconnect backoff (1 s) to the figure.
  until [[ -s $state_dir.address ]]; do
    kill -0 "$droverd_pid" 2>/dev/null || bench_fail 1 "$name droverd exited (see $work/droverd-$name.log)"
    sleep 0.005
  done
  serve_ms=$(( $(now_ms) - t0 ))
  cpu_ms=$(cpu_ms "$droverd_pid")
  "$cli" list --limit 1 > /dev/null 2>&1
  list_ms=$(( $(now_ms) - t0 ))
  "$cli" submit --experiment restart-probe true > /dev/null
  submit_ms=$(( $(now_ms) - t0 ))
  got=$(wait_queued $((before + 1)))
  rss=$(rss_kib "$droverd_pid" VmRSS)
  hwm=$(rss_kib "$droverd_pid" VmHWM)
  echo "$name,$run,$((before + 1)),$got,$serve_ms,$cpu_ms,$list_ms,$submit_ms,$rss,$hwm,$((rss * 1024 / (before + 1))),$((hwm * 1024 / (before + 1))),$(((rss - empty_rss) * 1024 / (before + 1)))" \
    >> "$work/restarts.csv"
  printf '%-9s run %d: queued %d (store) %s (droverd)  serving %5d ms (CPU %5d ms)  ListJobs %5d ms  submit %5d ms  VmRSS %7d KiB  VmHWM %7d KiB\n' \
    "$name" "$run" "$((before + 1))" "$got" "$serve_ms" "$cpu_ms" "$list_ms" "$submit_ms" "$rss" "$hwm"
  [[ $got == "$((before + 1))" ]] || echo "$BENCH_NAME: $name run $run: droverd holds $got queued jobs, the store $((before + 1))" >&2
}

echo "== restarts: SIGKILL, exec, first ListJobs answered, first submit acknowledged ($(bench_load))"
if [[ -n $baseline ]]; then
  for ((r = 1; r <= repeats; r++)); do restart baseline "$baseline" "$r"; done
fi
for ((r = 1; r <= repeats; r++)); do restart this "$droverd" "$r"; done
echo "($(bench_load))"

python3 - "$work/restarts.csv" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
by = {}
for r in rows:
    by.setdefault(r["binary"], []).append(r)
med = lambda rs, k: statistics.median(float(r[k]) for r in rs)
print(f"{'droverd':>9} {'queued':>9} {'serve ms':>8} {'CPU ms':>7} {'list ms':>8} {'submit ms':>9} {'RSS MiB':>8} {'HWM MiB':>8} {'RSS B/job':>9} {'HWM B/job':>9} {'+B/job':>7} lost")
for name, rs in by.items():
    held = lambda r: int(r["queued_droverd"]) if r["queued_droverd"].isdigit() else 0
    lost = sum(int(r["queued_store"]) - held(r) for r in rs)
    print(f"{name:>9} {rs[-1]['queued_store']:>9} {med(rs, 'serve_ms'):>8.0f} {med(rs, 'cpu_ms'):>7.0f} {med(rs, 'list_ms'):>8.0f} {med(rs, 'submit_ms'):>9.0f} "
          f"{med(rs, 'vmrss_kib') / 1024:>8.0f} {med(rs, 'vmhwm_kib') / 1024:>8.0f} "
          f"{med(rs, 'rss_b_per_job'):>9.0f} {med(rs, 'hwm_b_per_job'):>9.0f} "
          f"{med(rs, 'over_empty_b_per_job'):>7.0f} {lost or 'none'}")
if "baseline" in by and "this" in by:
    b, t = by["baseline"], by["this"]
    print("ratios (baseline / this, medians): "
          f"serving {med(b, 'serve_ms') / med(t, 'serve_ms'):.1f}x sooner, "
          f"CPU to serve {med(b, 'cpu_ms') / med(t, 'cpu_ms'):.1f}x less, "
          f"ListJobs {med(b, 'list_ms') / med(t, 'list_ms'):.1f}x sooner, "
          f"submit {med(b, 'submit_ms') / med(t, 'submit_ms'):.1f}x sooner, "
          f"VmRSS {med(b, 'vmrss_kib') / med(t, 'vmrss_kib'):.1f}x smaller, "
          f"VmHWM {med(b, 'vmhwm_kib') / med(t, 'vmhwm_kib'):.1f}x smaller")
PY
