#!/usr/bin/env bash
# Runs the log- and metric-ingest benchmark (drover-bench log-ingest, issues 3 and 6) against
# droverds of its own, and compares droverd builds: each pass starts every --droverd in turn
# (interleaved: A, B, A, B, ...) on a fresh state folder on the same disk, runs log-ingest of
# opaque stdout bytes once per streams count (with the write + fdatasync baselines of that
# disk), then of metric records once per streams count, and stops it. Prints every run and
# the median per droverd, with the ratio of each droverd's medians to the first's.
#
#   bench/run_ingest_bench.sh BUILD_DIR [--droverd NAME=PATH]... [--passes 3]
#                             [--megabytes 256] [--chunk-kib 256] [--streams "1 4"]
#                             [--metrics-mib-per-stream 60] [--state-root DIR] [--out DIR]
#                             [--data-dir NAME=DIR]...
#
# --data-dir NAME=DIR runs droverd NAME with its logs and blobs in a fresh folder under DIR
# (droverd --data-dir: the shared data folder of active/standby, docs/operations.md), its
# disk baselines measured there too. The same PATH may be given under two NAMEs, with and
# without a --data-dir, to compare the layouts in one run.
#
# BUILD_DIR is a configured and built tree (RelWithDebInfo for figures worth recording) with
# the drover-bench and drover targets; its droverd too unless --droverd names others (for
# example --droverd before=OLD/server/droverd --droverd after=BUILD_DIR/server/droverd).
# The same drover-bench is the load generator for every droverd. This script builds
# nothing. Everything goes under a fresh folder in --state-root (default /var/tmp), which
# must be a real disk. With --out, the JSON of every run and droverd's logs are kept there.
#
# droverd runs with its default caps (--max-log-bytes 256 MiB per rank stream,
# --max-metric-records 1,000,000 per rank; droverds from before issue 16 have none), and the
# runs stay under them: --megabytes is spread over the streams (256 MiB in one stream is at
# the cap, not past it), and metric runs ship --metrics-mib-per-stream per stream (60 MiB is
# 983,040 records of 64 bytes). drover-bench fails a run whose stream droverd capped.
set -euo pipefail
BENCH_NAME=run_ingest_bench.sh
source "$(dirname "$0")/lib.sh"

usage() { sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

[[ $# -ge 1 ]] || usage
[[ "$1" == "-h" || "$1" == "--help" ]] && usage
build_dir=$1; shift
droverds=()
declare -A data_dirs=()
passes=3
megabytes=256
chunk_kib=256
stream_counts="1 4"
metrics_mib=60
state_root=${TMPDIR_BENCH:-/var/tmp}
out_dir=
while [[ $# -gt 0 ]]; do
  case $1 in
    --droverd) droverds+=("$2"); shift 2 ;;
    --passes) passes=$2; shift 2 ;;
    --megabytes) megabytes=$2; shift 2 ;;
    --chunk-kib) chunk_kib=$2; shift 2 ;;
    --streams) stream_counts=$2; shift 2 ;;
    --metrics-mib-per-stream) metrics_mib=$2; shift 2 ;;
    --state-root) state_root=$2; shift 2 ;;
    --out) out_dir=$2; shift 2 ;;
    --data-dir)
      if [[ $2 != *=* || -z ${2%%=*} || -z ${2#*=} ]]; then
        echo "run_ingest_bench.sh: --data-dir '$2': write NAME=DIR, NAME one of the --droverd names" >&2
        exit 2
      fi
      data_dirs[${2%%=*}]=${2#*=}; shift 2 ;;
    *) echo "run_ingest_bench.sh: unknown argument '$1'; see --help" >&2; exit 2 ;;
  esac
done
[[ ${#droverds[@]} -gt 0 ]] || droverds=("droverd=$build_dir/server/droverd")

bench=$build_dir/bench/drover-bench
cli=$build_dir/cli/drover
bench_check_programs "build the drover-bench and drover targets in $build_dir first" "$bench" "$cli"
names=()
for entry in "${droverds[@]}"; do
  name=${entry%%=*}
  path=${entry#*=}
  if [[ $name == "$entry" || -z $name || ! $name =~ ^[A-Za-z0-9._-]+$ ]]; then
    echo "run_ingest_bench.sh: --droverd '$entry': write NAME=PATH, NAME of [A-Za-z0-9._-]" >&2
    exit 2
  fi
  if [[ ! -x $path ]]; then
    echo "run_ingest_bench.sh: --droverd $name: $path is not an executable droverd; build it first" >&2
    exit 2
  fi
  names+=("$name")
done
bench_require_real_disk "$state_root"
for name in "${!data_dirs[@]}"; do
  if [[ ! " ${names[*]} " == *" $name "* ]]; then
    echo "run_ingest_bench.sh: --data-dir $name: no --droverd of that name" >&2
    exit 2
  fi
  bench_require_real_disk "${data_dirs[$name]}"
done

base=$(mktemp -d "$state_root/drover-ingest-bench-XXXXXX")
results=${out_dir:-$base/results}
mkdir -p "$results"
bench_cleanup_on_exit

bench_machine "$build_dir" "$base"
for entry in "${droverds[@]}"; do echo "droverd: ${entry%%=*} = ${entry#*=}"; done

# One pass of one droverd: start it on a fresh state folder, run every benchmark, stop it.
run_pass() {
  local name=$1 droverd=$2 pass=$3
  local state_dir=$base/state tag="$name-$pass" data_dir= data_flags=()
  rm -rf "$state_dir"
  data_dir=$state_dir
  if [[ -n ${data_dirs[$name]:-} ]]; then
    data_dir=$(mktemp -d "${data_dirs[$name]}/drover-ingest-data-XXXXXX")
    data_flags=(--data-dir "$data_dir")
  fi
  # The benchmark is droverd's bootstrap admin: it makes its node's join token and compute
  # target with it.
  bench_start_droverd "$droverd" "$state_dir" 127.0.0.1:0 "$results/droverd-$tag.log" \
    --log-level warning "${data_flags[@]}"
  local streams
  for streams in $stream_counts; do
    echo "== pass $pass, $name: log-ingest --megabytes $megabytes --streams $streams ($(bench_load))"
    "$bench" log-ingest --server "$address" --megabytes "$megabytes" --chunk-kib "$chunk_kib" \
      --streams "$streams" --baseline-dir "$data_dir" --output json \
      > "$results/log-ingest-$tag-$streams.json"
  done
  for streams in $stream_counts; do
    echo "== pass $pass, $name: log-ingest --metrics --megabytes $((metrics_mib * streams)) --streams $streams ($(bench_load))"
    "$bench" log-ingest --server "$address" --metrics --megabytes "$((metrics_mib * streams))" \
      --chunk-kib "$chunk_kib" --streams "$streams" --output json \
      > "$results/metric-ingest-$tag-$streams.json"
  done
  bench_stop "$droverd_pid"
  droverd_pid=
  if [[ $data_dir != "$state_dir" ]]; then rm -rf "$data_dir"; fi
}

for pass in $(seq "$passes"); do
  for entry in "${droverds[@]}"; do
    run_pass "${entry%%=*}" "${entry#*=}" "$pass"
  done
done

echo
echo "== results"
python3 - "$results" "$passes" "$stream_counts" "${names[@]}" <<'PY'
import json, os, statistics, sys
results, passes, streams, names = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4:]
load = lambda kind, name, p, s: json.load(open(os.path.join(results, f"{kind}-{name}-{p}-{s}.json")))
med = statistics.median
print("log ingest (stdout bytes), MiB/s durably acknowledged; disk baselines of the same run")
print(f"  {'droverd':<10} {'pass':>4} {'streams':>7} {'MiB/s':>8} {'ack p50 ms':>10} "
      f"{'write+fdatasync':>15} {'streaming':>9} {'ratio synced':>12} {'load':>6}")
stdout = {}
for p in range(1, passes + 1):
    for name in names:
        for s in streams:
            g = load("log-ingest", name, p, s)
            b = g["baseline"]
            stdout.setdefault((name, s), []).append(g)
            print(f"  {name:<10} {p:>4} {s:>7} {g['mib_per_s']:>8.1f} {g['ack_latency']['p50_ms']:>10.3f} "
                  f"{b['synced_mib_per_s']:>15.1f} {b['streaming_mib_per_s']:>9.1f} "
                  f"{g['mib_per_s'] / b['synced_mib_per_s']:>12.2f} {g['load_before'].split()[0]:>6}")
print("metric ingest, records/s durably acknowledged (64-byte records)")
metrics = {}
for p in range(1, passes + 1):
    for name in names:
        for s in streams:
            g = load("metric-ingest", name, p, s)
            metrics.setdefault((name, s), []).append(g)
            print(f"  {name:<10} {p:>4} {s:>7} {g['records_per_s']:>12,.0f} records/s "
                  f"({g['records']:,} records, {g['mib_per_s']:.1f} MiB/s)")
print(f"medians of {passes} passes")
first = names[0]
for s in streams:
    for name in names:
        runs, mruns = stdout[(name, s)], metrics[(name, s)]
        rate = med(g["mib_per_s"] for g in runs)
        synced = med(g["baseline"]["synced_mib_per_s"] for g in runs)
        streaming = med(g["baseline"]["streaming_mib_per_s"] for g in runs)
        records = med(g["records_per_s"] for g in mruns)
        line = (f"  {name:<10} {s} stream(s): {rate:.1f} MiB/s ({rate * 1.048576:.1f} MB/s), "
                f"ack p50 {med(g['ack_latency']['p50_ms'] for g in runs):.3f} ms; disk write+fdatasync "
                f"{synced:.1f}, streaming {streaming:.1f} MiB/s (ratio {rate / synced:.2f}, "
                f"{rate / streaming:.2f}); metrics {records:,.0f} records/s")
        if name != first:
            base = med(g["mib_per_s"] for g in stdout[(first, s)])
            mbase = med(g["records_per_s"] for g in metrics[(first, s)])
            line += f"; {name}/{first}: {rate / base:.3f} (logs), {records / mbase:.3f} (metrics)"
        print(line)
PY
if [[ -n $out_dir ]]; then echo; echo "JSON results and droverd logs kept in $out_dir"; fi
