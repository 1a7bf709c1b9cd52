#!/usr/bin/env bash
# Drover's main job on the embedded default: installs what is needed, builds droverd,
# drover-agent and the drover CLI, starts droverd and one agent on this machine (state in a
# temporary folder), submits examples/pytorch-single-node as a job, follows its logs to the
# end, downloads its outputs, and stops everything it started.
#
# Usage (as root: the agent runs containers with runc):  deploy/quickstart.sh
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

if [[ $(id -u) -ne 0 ]]; then
  echo "quickstart: run as root (drover-agent starts containers with runc)" >&2
  exit 2
fi

deploy/install-deps.sh --runtime
cmake --preset release
cmake --build --preset release -j "$(nproc)" --target droverd drover-agent drover-init drover

bin=$repo/build/release
state=$(mktemp -d /var/tmp/drover-quickstart.XXXXXX)
droverd_pid=""
agent_pid=""
cleanup() {
  # Stop only what this script started, by pid: the agent first (it removes its
  # containers), then droverd.
  for pid in "$agent_pid" "$droverd_pid"; do
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid"
      wait "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$state"
}
trap cleanup EXIT

echo "== starting droverd (state in $state/droverd)"
"$bin/server/droverd" --listen 127.0.0.1:0 --state-dir "$state/droverd" \
  --address-file "$state/address" 2>"$state/droverd.log" &
droverd_pid=$!
for _ in $(seq 1 300); do
  [[ -s "$state/address" ]] && break
  kill -0 "$droverd_pid" 2>/dev/null || { cat "$state/droverd.log"; exit 1; }
  sleep 0.1
done
export DROVER_SERVER=$(cat "$state/address")
echo "droverd listens on $DROVER_SERVER"

echo "== starting drover-agent (node 'local')"
"$bin/agent/drover-agent" --scheduler "$DROVER_SERVER" --node-name local \
  --work-dir "$state/agent" 2>"$state/agent.log" &
agent_pid=$!

drover="$bin/cli/drover"
for _ in $(seq 1 300); do
  "$drover" nodes 2>/dev/null | grep -q READY && break
  kill -0 "$agent_pid" 2>/dev/null || { cat "$state/agent.log"; exit 1; }
  sleep 0.1
done
"$drover" nodes

echo
echo "== submitting examples/pytorch-single-node"
set -x
job=$("$drover" submit --source examples/pytorch-single-node --name pytorch-single-node \
  --experiment examples --memory 2Gi --tag example=quickstart -- train.py --epochs 3)
"$drover" logs -f "$job"
"$drover" show "$job"
"$drover" download "$job" --dest "$state/outputs"
{ set +x; } 2>/dev/null
echo
echo "== outputs of $job"
ls -l "$state/outputs"
echo
"$drover" list
