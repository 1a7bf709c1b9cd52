#!/usr/bin/env bash
# Drover's main job on the embedded default: installs what is needed, builds droverd and the
# drover CLI, starts droverd on this machine with its state in a temporary folder, submits an
# example job, follows it and lists the queue, then stops droverd.
#
# Today droverd queues and stores jobs; node agents that run them arrive next, so the job
# stays QUEUED with the reason `WAITING_FOR_NODES`.
# Usage: deploy/quickstart.sh   (as root, or with sudo for the package install)
set -euo pipefail
cd "$(dirname "$0")/.."

deploy/install-deps.sh --build-only
cmake --preset release
cmake --build --preset release -j "$(nproc)" --target droverd drover

bin=build/release
state=$(mktemp -d /tmp/drover-quickstart.XXXXXX)
droverd_pid=""
cleanup() {
  if [[ -n "$droverd_pid" ]] && kill -0 "$droverd_pid" 2>/dev/null; then
    kill -TERM "$droverd_pid"
    wait "$droverd_pid" || true
  fi
  rm -rf "$state"
}
trap cleanup EXIT

echo "== starting droverd (state in $state)"
"$bin/server/droverd" --listen 127.0.0.1:0 --state-dir "$state" \
  --address-file "$state/address" 2>"$state/droverd.log" &
droverd_pid=$!
for _ in $(seq 1 300); do
  [[ -s "$state/address" ]] && break
  kill -0 "$droverd_pid" 2>/dev/null || { cat "$state/droverd.log"; exit 1; }
  sleep 0.1
done
export DROVER_SERVER=$(cat "$state/address")
echo "droverd listens on $DROVER_SERVER"

drover="$bin/cli/drover"
echo
echo "== drover submit (from flags)"
set -x
job=$("$drover" submit --name mnist-baseline --experiment mnist --tag team=vision \
  --nodes 2 --processes-per-node 2 --backend pytorch --cpus 2 --memory 4Gi \
  --max-run-duration 2h -- train.py --epochs 3 --data ds://datasets/mnist)
"$drover" submit -f examples/jobs/mnist.json >/dev/null
"$drover" list
"$drover" show "$job"
"$drover" cancel "$job"
"$drover" list --state canceled
{ set +x; } 2>/dev/null
echo
echo "== droverd log"
cat "$state/droverd.log"
