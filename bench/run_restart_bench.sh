#!/usr/bin/env bash
# Measures a droverd restart with many queued jobs (issue 21): fills a droverd of its own
# with --jobs queued jobs through the real API (job arrays of mixed shapes, some with secret
# variables, plus single submits; no agent, so that they stay queued), then, --repeats
# times for each droverd given, SIGKILLs it and starts it again on the same state folder,
# and reports: the time from exec to the first answered ListJobs and to the first
# acknowledged submit, droverd's VmRSS and VmHWM then, per queued job, and whether droverd
# holds as many queued jobs as its store (nothing lost).
#
#   bench/run_restart_bench.sh BUILD_DIR [--jobs 1000000] [--repeats 3]
#                              [--baseline-droverd PATH] [--state-root DIR] [--out DIR]
#
# BUILD_DIR is a configured and built tree (release: `cmake --preset release && cmake
# --build build/release --target droverd drover drover-bench`); this script builds nothing.
# --baseline-droverd: another droverd (for example main's) restarted on the same store in
# the same run, first, so that the figures compare as ratios. The state folder goes under
# --state-root (default /var/tmp), on a real disk; it needs about 1 GB per million jobs.
set -euo pipefail
BENCH_NAME=run_restart_bench.sh
source "$(dirname "$0")/lib.sh"

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[[ $# -ge 1 ]] || usage
[[ "$1" == "-h" || "$1" == "--help" ]] && usage
build_dir=$1; shift
jobs=1000000
repeats=3
baseline=
state_root=${TMPDIR_BENCH:-/var/tmp}
out_dir=
while [[ $# -gt 0 ]]; do
  case $1 in
    --jobs) jobs=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --baseline-droverd) baseline=$2; shift 2 ;;
    --state-root) state_root=$2; shift 2 ;;
    --out) out_dir=$2; shift 2 ;;
    *) echo "run_restart_bench.sh: unknown argument '$1'; see --help" >&2; exit 2 ;;
  esac
done
[[ $jobs =~ ^[0-9]+$ && $jobs -ge 1000 ]] || bench_fail 2 "--jobs: '$jobs' is not a number of at least 1000"
[[ $repeats =~ ^[1-9][0-9]*$ ]] || bench_fail 2 "--repeats: '$repeats' is not a positive number"

droverd=$build_dir/server/droverd
cli=$build_dir/cli/drover
bench=$build_dir/bench/drover-bench
bench_check_programs "build the droverd, drover and drover-bench targets in $build_dir first" \
  "$droverd" "$cli" "$bench"
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
rss_kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }
store_queued() { sqlite3 "file:$state_dir/drover.db?mode=ro" "SELECT COUNT(*) FROM jobs WHERE state = 1"; }
droverd_queued() {
  curl -s "http://$metrics/metrics" | awk '/^drover_jobs\{state="QUEUED"\}/ {printf "%d", $2}'
}

bench_start_droverd "$droverd" "$state_dir" "$listen" "$work/droverd-fill.log" \
  --log-level warning --metrics-listen "$metrics"
export DROVER_SERVER=$address
echo "== droverd $address (pid $droverd_pid), empty: VmRSS $(rss_kib "$droverd_pid" VmRSS) KiB"

# The shapes the arrays cycle through: sizes, gangs, GPUs, limits, priorities, tags,
# variables and secret variables (sealed at rest, opened when loaded), max_running.
shapes=(
  ""
  "--nodes 2 --processes-per-node 4 --backend pytorch --cpus 4 --memory 16Gi --priority 5"
  "--gpu --gpus 2 --max-run-duration 2h --env LR=0.01 --env BATCH=256 --tag team=nlp"
  "--secret-env HF_TOKEN=hf_0123456789abcdef --name secret-task --priority -3"
  "--nodes 4 --backend mpi --cpus 8 --memory 64Gi --tag team=vision --tag stage=pretrain"
)
array_size=$(( jobs >= 1000000 ? 100000 : jobs / 10 ))
arrays=$(( jobs / array_size - 1 ))  # the last share goes to single submits and a %max_running array
start=$(now_ms)
echo "== fill: $arrays arrays of $array_size tasks (drover submit --array), mixed shapes"
for ((i = 0; i < arrays; i++)); do
  # shellcheck disable=SC2086
  "$cli" submit --array "0-$((array_size - 1))" ${shapes[i % ${#shapes[@]}]} \
    --experiment "fill-$i" true > /dev/null
done
echo "== fill: one array of $((array_size / 2)) tasks at most 10 at once"
"$cli" submit --array "0-$((array_size / 2 - 1))%10" --cpus 2 true > /dev/null
echo "== fill: single submits (drover-bench submit --clients 8) up to $jobs jobs"
while (( $(store_queued) < jobs )); do
  "$bench" submit --server "$address" --clients 8 --duration 2s --output json > /dev/null
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

echo "binary,run,queued_store,queued_droverd,list_ms,submit_ms,vmrss_kib,vmhwm_kib,rss_b_per_job,hwm_b_per_job" \
  > "$work/restarts.csv"
restart() {  # NAME DROVERD RUN
  local name=$1 binary=$2 run=$3 t0 list_ms submit_ms rss hwm before got
  kill -KILL "$droverd_pid"
  wait "$droverd_pid" 2>/dev/null || true
  before=$(store_queued)
  sync
  t0=$(now_ms)
  "$binary" --listen "$listen" --state-dir "$state_dir" \
    --bootstrap-admin-token-file "$state_dir.token" --log-level warning \
    --metrics-listen "$metrics" 2>> "$work/droverd-$name.log" &
  droverd_pid=$!
  until "$cli" list --limit 1 --timeout 2s > /dev/null 2>&1; do
    kill -0 "$droverd_pid" 2>/dev/null || bench_fail 1 "$name droverd exited (see $work/droverd-$name.log)"
    sleep 0.01
  done
  list_ms=$(( $(now_ms) - t0 ))
  "$cli" submit --experiment restart-probe true > /dev/null
  submit_ms=$(( $(now_ms) - t0 ))
  got=$(wait_queued $((before + 1)))
  rss=$(rss_kib "$droverd_pid" VmRSS)
  hwm=$(rss_kib "$droverd_pid" VmHWM)
  echo "$name,$run,$((before + 1)),$got,$list_ms,$submit_ms,$rss,$hwm,$((rss * 1024 / (before + 1))),$((hwm * 1024 / (before + 1)))" \
    >> "$work/restarts.csv"
  printf '%-9s run %d: queued %d (store) %s (droverd)  ListJobs %5d ms  submit %5d ms  VmRSS %7d KiB  VmHWM %7d KiB\n' \
    "$name" "$run" "$((before + 1))" "$got" "$list_ms" "$submit_ms" "$rss" "$hwm"
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
print(f"{'droverd':>9} {'queued':>9} {'list ms':>8} {'submit ms':>9} {'RSS MiB':>8} {'HWM MiB':>8} {'RSS B/job':>9} {'HWM B/job':>9} lost")
for name, rs in by.items():
    held = lambda r: int(r["queued_droverd"]) if r["queued_droverd"].isdigit() else 0
    lost = sum(int(r["queued_store"]) - held(r) for r in rs)
    print(f"{name:>9} {rs[-1]['queued_store']:>9} {med(rs, 'list_ms'):>8.0f} {med(rs, 'submit_ms'):>9.0f} "
          f"{med(rs, 'vmrss_kib') / 1024:>8.0f} {med(rs, 'vmhwm_kib') / 1024:>8.0f} "
          f"{med(rs, 'rss_b_per_job'):>9.0f} {med(rs, 'hwm_b_per_job'):>9.0f} {lost or 'none'}")
if "baseline" in by and "this" in by:
    b, t = by["baseline"], by["this"]
    print("ratios (baseline / this, medians): "
          f"ListJobs {med(b, 'list_ms') / med(t, 'list_ms'):.1f}x faster, "
          f"submit {med(b, 'submit_ms') / med(t, 'submit_ms'):.1f}x faster, "
          f"VmRSS {med(b, 'vmrss_kib') / med(t, 'vmrss_kib'):.1f}x smaller, "
          f"VmHWM {med(b, 'vmhwm_kib') / med(t, 'vmhwm_kib'):.1f}x smaller")
PY
