#!/usr/bin/env bash
# Runs the environment benchmark of issue 5 against a droverd and a drover-agent of its own:
# how long a job with pip_packages spends PREPARING when the node builds its environment,
# and when a later identical job reuses it (drover-bench prepare). The packages are wheels
# this script builds offline (drovertestpkg 1.0, 1.1, ..., one per round) into a folder that
# droverd hands to the agent (--pip-find-links DIR --pip-no-index).
#
#   bench/run_environment_bench.sh BUILD_DIR [--rounds 3] [--cached-jobs 3] [--image host]
#                                            [--state-root DIR] [--out DIR] [--log-level warning]
#
# BUILD_DIR is a configured and built tree (droverd, drover-agent, drover-init, drover-rsh and
# drover-bench); this script builds nothing. Runs as root (the agent runs runc); needs
# /usr/bin/python3 with pip, setuptools and wheel. Everything goes under a fresh folder in
# --state-root (default /var/tmp); with --out the JSON result and the daemons' logs are kept.
set -euo pipefail
BENCH_NAME=run_environment_bench.sh
source "$(dirname "$0")/lib.sh"

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

[[ $# -ge 1 ]] || usage
[[ "$1" == "-h" || "$1" == "--help" ]] && usage
build_dir=$1; shift
rounds=3
cached_jobs=3
image=host
state_root=${TMPDIR_BENCH:-/var/tmp}
out_dir=
log_level=warning
while [[ $# -gt 0 ]]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --cached-jobs) cached_jobs=$2; shift 2 ;;
    --image) image=$2; shift 2 ;;
    --state-root) state_root=$2; shift 2 ;;
    --out) out_dir=$2; shift 2 ;;
    --log-level) log_level=$2; shift 2 ;;
    *) echo "run_environment_bench.sh: unknown argument '$1'; see --help" >&2; exit 2 ;;
  esac
done

droverd=$build_dir/server/droverd
agent=$build_dir/agent/drover-agent
init=$build_dir/agent/launcher/drover-init
bench=$build_dir/bench/drover-bench
cli=$build_dir/cli/drover
bench_check_programs "build the droverd, drover, drover-agent, drover-init and drover-bench targets in $build_dir first" \
  "$droverd" "$cli" "$agent" "$init" "$bench"
bench_require_root "drover-agent runs runc"
if ! /usr/bin/python3 -c 'import setuptools, wheel, pip' 2>/dev/null; then
  echo "run_environment_bench.sh: /usr/bin/python3 needs pip, setuptools and wheel; run deploy/install-deps.sh" >&2
  exit 2
fi

base=$(mktemp -d "$state_root/drover-environment-bench-XXXXXX")
# Searchable by others: a job container's root is an unprivileged host uid (--userns-range).
chmod 711 "$base"
results=${out_dir:-$base/results}
mkdir -p "$base/state" "$base/agent" "$base/wheels" "$results"
bench_cleanup_on_exit

bench_machine "$build_dir" "$base"
echo "python:  $(/usr/bin/python3 --version), $(/usr/bin/python3 -m pip --version | cut -d' ' -f1-2)"

# One wheel per round: drovertestpkg 1.0, 1.1, ... (one pip call each: pip resolves the
# sources of one call together, and two versions of a package conflict).
for ((r = 0; r < rounds; r++)); do
  src=$base/src/drovertestpkg-1.$r
  mkdir -p "$src"
  printf "from setuptools import setup\nsetup(name='drovertestpkg', version='1.%s', py_modules=['drovertestpkg'])\n" "$r" > "$src/setup.py"
  echo "MARKER = 'drovertestpkg 1.$r'" > "$src/drovertestpkg.py"
  /usr/bin/python3 -m pip wheel --quiet --no-deps --no-index --no-build-isolation \
    --disable-pip-version-check -w "$base/wheels" "$src" 2>> "$results/pip-wheel.log" ||
    { cat "$results/pip-wheel.log" >&2; exit 1; }
done
echo "wheels:  $(ls "$base/wheels" | tr '\n' ' ')"

bench_start_droverd "$droverd" "$base/state" 127.0.0.1:0 "$results/droverd.log" \
  --pip-find-links "$base/wheels" --pip-no-index --log-level "$log_level"
bench_start_agent "$agent" "$cli" bench-node "$base/agent" "$init" "$results/agent.log" \
  --log-level "$log_level"

echo
echo "== $bench prepare --server $address --pip 'drovertestpkg==1.{}' --rounds $rounds --cached-jobs $cached_jobs --image $image ($(bench_load))"
"$bench" prepare --server "$address" --pip 'drovertestpkg==1.{}' --rounds "$rounds" \
  --cached-jobs "$cached_jobs" --image "$image" --output json > "$results/prepare.json"

echo
echo "== results"
python3 - "$results/prepare.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
row = lambda name, s: print(f"  {name:<34} {s['count']:>5} {s['p50_ms']:>10.1f} {s['p90_ms']:>10.1f} {s['max_ms']:>10.1f}")
print(f"prepare: {r['rounds']} round(s), {r['cached_jobs']} reuse(s) each, image {r['image']}, "
      f"load {r['load_before']} -> {r['load_after']}, failed {r['failed']}, unexpected {r['unexpected']}"
      + (f" (first failure: {r['first_failure']})" if r["failed"] else ""))
print(f"  {'':<34} {'jobs':>5} {'p50 ms':>10} {'p90 ms':>10} {'max ms':>10}")
row("PREPARING->STARTING, built", r["built"])
row("PREPARING->STARTING, cached", r["cached"])
row("PREPARING->STARTING, no packages", r["none"])
row("submit->RUNNING, built", r["built_to_running"])
row("submit->RUNNING, cached", r["cached_to_running"])
row("submit->RUNNING, no packages", r["none_to_running"])
print(f"  build / cached preparation (medians): {r['ratio']:.1f} x")
PY
if [[ -n $out_dir ]]; then echo; echo "JSON result and daemon logs kept in $out_dir"; fi
