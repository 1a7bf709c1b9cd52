#!/usr/bin/env bash
# Runs the submit benchmark of issue 2 against a droverd of its own and prints the figures
# next to the cost of one durable write on the same disk, measured in the same run (the
# machines are shared and noisy; ratios travel better than absolute numbers).
#
#   bench/run_submit_bench.sh BUILD_DIR [--duration 10s] [--warmup 1s] [--clients "1 64"]
#                                       [--state-root DIR] [--out DIR] [--store sqlite|postgres]
#
# BUILD_DIR is a configured and built tree (for figures worth recording, RelWithDebInfo:
# `cmake --preset release && cmake --build build/release --target droverd drover-bench`);
# this script builds nothing. The state folder is created under --state-root (default
# /var/tmp), which must be a real disk: on tmpfs fsync costs nothing and the figures mean
# nothing. With --out, the JSON of every measurement is kept there. --store postgres keeps
# droverd's state in a PostgreSQL server of the benchmark's own (Debian's postgresql: initdb
# under the state folder's base, a Unix socket only, fsync on, run as nobody when root);
# run once with each --store for the ratio (docs/benchmarks.md).
set -euo pipefail
BENCH_NAME=run_submit_bench.sh
source "$(dirname "$0")/lib.sh"

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

[[ $# -ge 1 ]] || usage
[[ "$1" == "-h" || "$1" == "--help" ]] && usage
build_dir=$1; shift
duration=10s
warmup=1s
client_counts="1 64"
state_root=${TMPDIR_BENCH:-/var/tmp}
out_dir=
store=sqlite
while [[ $# -gt 0 ]]; do
  case $1 in
    --duration) duration=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --clients) client_counts=$2; shift 2 ;;
    --state-root) state_root=$2; shift 2 ;;
    --out) out_dir=$2; shift 2 ;;
    --store) store=$2; shift 2 ;;
    *) echo "run_submit_bench.sh: unknown argument '$1'; see --help" >&2; exit 2 ;;
  esac
done

droverd=$build_dir/server/droverd
bench=$build_dir/bench/drover-bench
bench_check_programs "build the droverd and drover-bench targets in $build_dir first" \
  "$droverd" "$bench"
bench_require_real_disk "$state_root"

base=$(mktemp -d "$state_root/drover-bench-XXXXXX")
state_dir=$base/state
work=${out_dir:-$base/results}
mkdir -p "$state_dir" "$work"
bench_cleanup_on_exit

# Microseconds of CPU droverd has used so far (user + system, from /proc).
droverd_cpu_us() {
  local ticks
  ticks=$(awk '{print $14 + $15}' "/proc/$droverd_pid/stat")
  echo $((ticks * 1000000 / $(getconf CLK_TCK)))
}

bench_machine "$build_dir" "$base"

# --store postgres: a server of the benchmark's own, stopped at exit.
store_flags=()
case $store in
  sqlite) ;;
  postgres)
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    [[ -x $pg_bin/initdb ]] || bench_fail 2 "--store postgres: install Debian's postgresql package"
    pg_dir=$base/pg
    mkdir -p "$pg_dir"
    as_pg() { if [[ $(id -u) -eq 0 ]]; then runuser -u nobody -- "$@"; else "$@"; fi; }
    if [[ $(id -u) -eq 0 ]]; then chmod 711 "$base"; chown nobody "$pg_dir"; fi
    as_pg "$pg_bin/initdb" -D "$pg_dir/data" -U drover --auth=trust -E UTF8 --locale=C >/dev/null
    as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w \
      -o "-c listen_addresses='' -c unix_socket_directories='$pg_dir'" start >/dev/null
    bench_extra_cleanup() { as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -m fast -w stop >/dev/null || true; }
    as_pg "$pg_bin/createdb" -h "$pg_dir" -U drover drover
    store_flags=(--store "postgresql:///drover?host=$pg_dir&user=drover")
    echo "state database: PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') in $pg_dir"
    ;;
  *) echo "run_submit_bench.sh: --store sqlite or postgres, not '$store'" >&2; exit 2 ;;
esac

echo
echo "== baseline: one durable 4 KiB write on that disk"
"$bench" fsync --dir "$state_dir" --count 500 | tail -n +2
"$bench" fsync --dir "$state_dir" --count 500 --output json > "$work/fsync-before.json"

bench_start_droverd "$droverd" "$state_dir" 127.0.0.1:0 "$work/droverd.log" --log-level warning \
  "${store_flags[@]}"
echo
echo "== droverd $address (pid $droverd_pid, --log-level warning)"

# Each client count twice, in turn: over TLS with the user token checked on every call
# (what every client and agent does), then over droverd's local admin socket (local
# credentials: no TLS, no token), the baseline that tells what TLS and the check cost.
for clients in $client_counts; do
  for transport in tls local; do
    server=$address
    [[ $transport == local ]] && server="unix:$state_dir/admin.sock"
    echo
    echo "== $bench submit --server $server --clients $clients --duration $duration --warmup $warmup"
    cpu_before=$(droverd_cpu_us)
    "$bench" submit --server "$server" --clients "$clients" --duration "$duration" \
      --warmup "$warmup" --output json > "$work/submit-$transport-$clients.json"
    cpu_after=$(droverd_cpu_us)
    echo "{\"droverd_cpu_s\": $(( (cpu_after - cpu_before) / 1000 ))e-3}" > "$work/droverd-cpu-$transport-$clients.json"
  done
done

echo
echo "== the token check alone (hash + users-table lookup), 1,000 users, 2 threads"
"$bench" token-check --dir "$state_dir" --users 1000 --count 20000 --threads 2 --output json \
  > "$work/token-check.json"

"$bench" fsync --dir "$state_dir" --count 500 --output json > "$work/fsync-after.json"

echo
echo "== results"
python3 - "$work" "$client_counts" <<'PY'
import json, sys, os
work, counts = sys.argv[1], sys.argv[2].split()
load = lambda name: json.load(open(os.path.join(work, name)))
before, after = load("fsync-before.json"), load("fsync-after.json")
# The baseline is a write inside the file, as a WAL reused after a checkpoint mostly gets
# (the stricter of the two), averaged over the measurements before and after the runs.
fsync_ms = (before["overwrite"]["p50_ms"] + after["overwrite"]["p50_ms"]) / 2
print(f"fsync baseline (p50 of a 4 KiB write + fdatasync inside the file): {fsync_ms:.3f} ms")
print(f"  before the runs: overwrite p50 {before['overwrite']['p50_ms']:.3f}, "
      f"append p50 {before['append']['p50_ms']:.3f} ms; after: overwrite p50 "
      f"{after['overwrite']['p50_ms']:.3f}, append p50 {after['append']['p50_ms']:.3f} ms")
print(f"{'clients':>7} {'transport':>9} {'jobs/s':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} "
      f"{'max ms':>8} {'jobs/fsync':>10} {'p50-fsync':>9} {'droverd cpu/job':>15} "
      f"{'bench cpu/job':>13} errors")
def row(c, transport):
    r = load(f"submit-{transport}-{c}.json")
    cpu = load(f"droverd-cpu-{transport}-{c}.json")["droverd_cpu_s"]
    # droverd's CPU was read around the whole run (warm-up included): spread it over every
    # job acknowledged in the run.
    jobs = max(r["acknowledged_total"], 1)
    lat = r["latency"]
    errors = ", ".join(f"{k} {v}" for k, v in r["errors"].items()) or "none"
    print(f"{c:>7} {transport:>9} {r['jobs_per_s']:>9.1f} {lat['p50_ms']:>8.3f} "
          f"{lat['p90_ms']:>8.3f} {lat['p99_ms']:>8.3f} {lat['max_ms']:>8.3f} "
          f"{r['jobs_per_s'] * fsync_ms / 1000:>10.2f} {lat['p50_ms'] - fsync_ms:>9.3f} "
          f"{cpu / jobs * 1e6:>12.1f} us "
          f"{r['client_cpu_s'] / max(r['acknowledged'], 1) * 1e6:>10.1f} us {errors}")
    return r, cpu / jobs
for c in counts:
    tls, tls_cpu = row(c, "tls")
    local, local_cpu = row(c, "local")
    print(f"{'':>7} {'tls/local':>9} {tls['jobs_per_s'] / max(local['jobs_per_s'], 1e-9):>9.2f} "
          f"{tls['latency']['p50_ms'] / max(local['latency']['p50_ms'], 1e-9):>8.2f} "
          f"{'':>8} {tls['latency']['p99_ms'] / max(local['latency']['p99_ms'], 1e-9):>8.2f} "
          f"{'':>8} {'':>10} {'':>9} {tls_cpu / max(local_cpu, 1e-12):>12.2f} x")
check = load("token-check.json")
print()
print(f"token check alone ({check['users']} users, {check['threads']} threads): "
      f"{check['checks_per_s']:.0f} checks/s; per call p50 {check['check']['p50_ms'] * 1000:.1f} us, "
      f"p99 {check['check']['p99_ms'] * 1000:.1f} us (sha-256 alone p50 "
      f"{check['hash']['p50_ms'] * 1000:.1f} us)")
print()
print("goals (issue 2, with TLS and token checks on: issue 15):")
for c in counts:
    r = load(f"submit-tls-{c}.json")
    lat = r["latency"]
    if c == "1":
        ok = lat["p50_ms"] < 1.0 + fsync_ms
        print(f"  1 client:   p50 {lat['p50_ms']:.3f} ms < 1 ms + one fsync ({1 + fsync_ms:.3f} ms): "
              f"{'met' if ok else 'NOT met'}")
    if c == "64":
        ok_rate, ok_p99 = r["jobs_per_s"] >= 5000, lat["p99_ms"] < 20
        print(f"  64 clients: {r['jobs_per_s']:.0f} jobs/s >= 5000: {'met' if ok_rate else 'NOT met'}; "
              f"p99 {lat['p99_ms']:.3f} ms < 20 ms: {'met' if ok_p99 else 'NOT met'}")
PY
if [[ -n $out_dir ]]; then echo; echo "JSON results kept in $out_dir"; fi
