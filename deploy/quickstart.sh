#!/usr/bin/env bash
# Drover's main job on the embedded default: installs what is needed, builds droverd,
# drover-agent (with drover-init and drover-rsh) and the drover CLI, makes two test hosts on
# this machine (network namespaces on a bridge, deploy/testhosts.sh), starts droverd on the
# bridge and one drover-agent in each host (state in a temporary folder), and runs
# examples/distributed-pytorch on both hosts, two processes on each: first with the pytorch
# backend, then with the mpi backend (mpirun on the first node, drover-rsh to the other).
# For each job it follows every rank's logs to the end, shows the job, downloads its outputs
# (model.pt), and checks that all four ranks ended with the same parameters. Then it runs
# examples/sdk/distributed_<backend>.py, the same training through the Python SDK. droverd
# serves the web app on loopback meanwhile: its address and the token to log in with are
# printed. At the end (or after Ctrl-C with --keep), and on any failure, it stops what it
# started and removes the test hosts.
#
# Usage (as root: the agents run containers with runc or crun, test hosts are network namespaces):
#   deploy/quickstart.sh [--backend pytorch|mpi|both] [--subnet A.B.C] [--web-port N] [--keep]
#     --backend   which distributed backends to run (default both)
#     --subnet    the test hosts' /24 (default: the first free one of 10.78.0 to 10.87.0)
#     --web-port  the web app's port on 127.0.0.1 (default: a free one, printed)
#     --keep      keep droverd, the agents and the web app up after the examples, until Ctrl-C
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

usage() { sed -n '15,20s/^# \{0,1\}//p' "$0"; }
backends=(pytorch mpi)
subnets=()
web_port=0
keep=0
while (($#)); do
  case "$1" in
    --backend)
      (($# >= 2)) || { usage >&2; exit 2; }
      case "$2" in
        pytorch | mpi) backends=("$2") ;;
        both) backends=(pytorch mpi) ;;
        *) echo "quickstart: --backend must be pytorch, mpi or both" >&2; exit 2 ;;
      esac
      shift 2 ;;
    --subnet) (($# >= 2)) || { usage >&2; exit 2; }; subnets=("$2"); shift 2 ;;
    --web-port)
      (($# >= 2)) && [[ $2 =~ ^[0-9]+$ ]] && (($2 < 65536)) || { usage >&2; exit 2; }
      web_port=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "quickstart: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
((${#subnets[@]})) || for c in $(seq 78 87); do subnets+=("10.$c.0"); done

if [[ $(id -u) -ne 0 ]]; then
  echo "quickstart: run as root (drover-agent starts containers with runc; test hosts are network namespaces)" >&2
  exit 2
fi

deploy/install-deps.sh --runtime
cmake --preset release
cmake --build --preset release -j "$(nproc)" --target droverd drover-agent drover-init drover-rsh drover drover_python
# The web app droverd serves with --web-root (web/dist).
deploy/build-web.sh

bin=$repo/build/release
drover="$bin/cli/drover"
prefix=drover-qs
hosts=2
state=$(mktemp -d /var/tmp/drover-quickstart.XXXXXX)
# Searchable (not readable) by others: the jobs' root is an unprivileged uid on the host
# (the agents' user namespace) and must pass through to its job folder.
chmod 711 "$state"
# The CLI's connection keeper (docs/cli.md) lives in the state folder and ends when it is
# removed, rather than waiting out its idle time in the user's runtime folder.
export XDG_RUNTIME_DIR=$state
droverd_pid=""
agent_pids=()
hosts_made=""
cleanup() {
  local rc=$1 pid f work left
  trap - EXIT INT TERM
  set +e
  if ((rc != 0)); then
    echo >&2
    echo "== quickstart failed (exit code $rc)" >&2
    for f in "$state"/droverd.log "$state"/agent-*.log; do
      [[ -s "$f" ]] || continue
      echo "--- the end of ${f##*/}" >&2
      tail -n 40 "$f" >&2
    done
  fi
  # Stop only what this script started, by pid: the agents first (each removes its
  # containers), then droverd; then the test hosts.
  for pid in "${agent_pids[@]}" "$droverd_pid"; do
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid"
      wait "$pid" 2>/dev/null
    fi
  done
  for work in "$state"/agent-*; do
    [[ -d "$work/runc" ]] || continue
    # The agents choose crun or runc (--runc auto): ask both.
    left=$(runc --root "$work/runc" list -q 2>/dev/null; crun --root "$work/runc" list -q 2>/dev/null || true)
    [[ -z "$left" ]] || echo "quickstart: warning: containers left in $work: $left" >&2
  done
  [[ -z "$hosts_made" ]] || deploy/testhosts.sh destroy --prefix "$prefix"
  rm -rf "$state"
  exit "$rc"
}
trap 'rc=$?; { set +x; } 2>/dev/null; cleanup "$rc"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "== making $hosts test hosts ($prefix-1 .. $prefix-$hosts)"
for subnet in "${subnets[@]}"; do
  deploy/testhosts.sh create "$hosts" --prefix "$prefix" --subnet "$subnet" >"$state/hosts" \
    2>"$state/testhosts.err" && made=0 || made=$?
  ((made == 3)) || break  # 3: the subnet is in use here, try the next
done
if ((made != 0)); then
  cat "$state/testhosts.err" >&2
  exit 1
fi
hosts_made=1
cat "$state/hosts"

echo "== starting droverd on the bridge (state in $state/droverd)"
# The web app on loopback only, as plain HTTP (--http-plain is for loopback or behind a
# TLS proxy): open it here, or through `ssh -L PORT:127.0.0.1:PORT` from another machine.
"$bin/server/droverd" --listen "$subnet.1:0" --state-dir "$state/droverd" \
  --http-listen "127.0.0.1:$web_port" --http-plain --web-root "$repo/web/dist" \
  --address-file "$state/address" 2>"$state/droverd.log" &
droverd_pid=$!
for _ in $(seq 1 300); do
  [[ -s "$state/address" ]] && break
  kill -0 "$droverd_pid" 2>/dev/null || { cat "$state/droverd.log"; exit 1; }
  sleep 0.1
done
export DROVER_SERVER=$(cat "$state/address")
# Every call is over TLS: droverd made its cluster CA at its first start; the agents and
# the CLI trust its certificate.
cp "$state/droverd/tls/ca.crt" "$state/ca.crt"   # readable by the test hosts
export DROVER_CA="$state/ca.crt"
echo "droverd listens on $DROVER_SERVER (TLS, CA certificate $DROVER_CA)"
# Root on droverd's host is admin over its local socket, with no token: make a user for
# the examples there, then run them as that user over TLS with its token.
for _ in $(seq 1 100); do
  [[ -S "$state/droverd/admin.sock" ]] && break
  sleep 0.1
done
echo "== creating the user 'quickstart' over droverd's local admin socket"
DROVER_TOKEN=$("$drover" --server "unix:$state/droverd/admin.sock" user create quickstart \
  --role user 2>/dev/null || "$drover" --server "unix:$state/droverd/admin.sock" user token \
  quickstart 2>/dev/null)
export DROVER_TOKEN
[[ $DROVER_TOKEN == drv_* ]] || { echo "quickstart: could not create a user" >&2; exit 1; }
"$drover" whoami
web_url=$(grep -o 'web_url=[^ ]*' "$state/droverd.log" | head -n 1 | cut -d= -f2-)
[[ $web_url == http://127.0.0.1:* ]] || { echo "quickstart: droverd serves no web app" >&2; exit 1; }
echo "== the web app: $web_url (log in with the token $DROVER_TOKEN)"

k=0
while read -r name address; do
  k=$((k + 1))
  echo "== joining $name ($address) with a one-time token"
  # Each node joins once with its own token (bound to its name, valid 10 minutes), read
  # from a file so that it is not in ps; the node certificate it gets stays in its work
  # folder.
  # (Join tokens are an admin's: made over the local socket, not as the user 'quickstart'.)
  (umask 077 && "$drover" --server "unix:$state/droverd/admin.sock" node token create \
    --ttl 10m --name "$name" >"$state/token-$k" 2>/dev/null)
  deploy/testhosts.sh exec --prefix "$prefix" "$k" "$bin/agent/drover-agent" \
    --scheduler "$DROVER_SERVER" --ca "$DROVER_CA" --node-name "$name" --address "$address" \
    --work-dir "$state/agent-$k" --join-file "$state/token-$k" 2>"$state/agent-$k.log" &
  agent_pids+=($!)
done <"$state/hosts"

ready=0
for _ in $(seq 1 300); do
  ready=$("$drover" nodes 2>/dev/null | grep -c ' READY ' || true)
  ((ready == hosts)) && break
  for pid in "${agent_pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "quickstart: an agent exited" >&2; exit 1; }
  done
  sleep 0.1
done
"$drover" nodes
((ready == hosts)) || { echo "quickstart: $ready of $hosts nodes READY after 30s" >&2; exit 1; }

summary=()
for backend in "${backends[@]}"; do
  echo
  echo "== examples/distributed-pytorch on 2 nodes x 2 processes, backend $backend"
  set -x
  job=$("$drover" submit --source examples/distributed-pytorch --name "distributed-$backend" \
    --experiment examples --tag example=quickstart --nodes 2 --processes-per-node 2 \
    --backend "$backend" --cpus 1 --memory 1536Mi --shm 256Mi --env OMP_NUM_THREADS=1 \
    --max-run-duration 10m -- train.py --epochs 3)
  "$drover" logs -f "$job"
  "$drover" show "$job"
  "$drover" metrics "$job"
  "$drover" download "$job" --dest "$state/outputs-$backend"
  { set +x; } 2>/dev/null
  ls -l "$state/outputs-$backend"
  # Every rank prints the checksum of its parameters: one line per rank, one value.
  mapfile -t checks < <("$drover" logs "$job" --stdout |
    grep -o 'parameters identical on all 4 ranks: checksum=[0-9a-f]*')
  sums=$(printf '%s\n' "${checks[@]}" | sed 's/.*checksum=//' | sort -u)
  if ((${#checks[@]} != 4)) || [[ $(wc -l <<<"$sums") -ne 1 ]]; then
    echo "quickstart: expected 4 ranks with one checksum, got: ${checks[*]}" >&2
    exit 1
  fi
  summary+=("$job  backend $backend  4 ranks on 2 nodes, parameters identical: checksum=$sums")
done

# The same training from Python: the SDK (python/, stubs generated by the drover_python
# target) runs examples/sdk/distributed_<backend>.py, 2 nodes x 1 process, as the same user.
echo
echo "== the Python SDK: examples/sdk/distributed_${backends[0]}.py on 2 nodes x 1 process"
(cd "$state" && PYTHONPATH="$repo/build/release/python" /usr/bin/python3 \
  "$repo/examples/sdk/distributed_${backends[0]}.py" --epochs 2 --download "$state/outputs-sdk")
ls -l "$state/outputs-sdk/outputs"
summary+=("the Python SDK ran examples/sdk/distributed_${backends[0]}.py and downloaded its model.pt")

echo
"$drover" list
echo
echo "== done"
printf '%s\n' "${summary[@]}"
echo "The runs above are on the web app at $web_url (token $DROVER_TOKEN)."
if ((keep)); then
  echo "== --keep: droverd, the agents and the web app stay up; Ctrl-C stops them"
  wait "$droverd_pid"
fi
