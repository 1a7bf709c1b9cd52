# What the bench/run_*_bench.sh scripts share: checks of what they need, a droverd of their
# own (bootstrap admin token, TLS, address file), agents' join tokens, stopping daemons by
# pid, the machine header and the removal of their folder. Sourced, not run: set BENCH_NAME
# (the script's name, for messages) before sourcing, after `set -euo pipefail`.

# Prints "$BENCH_NAME: MESSAGE" on stderr and exits with CODE.
bench_fail() {
  local code=$1
  shift
  echo "$BENCH_NAME: $*" >&2
  exit "$code"
}

# Exits 2 unless every PROGRAM is executable; HINT says which targets to build.
bench_check_programs() {  # HINT PROGRAM...
  local hint=$1 program
  shift
  for program in "$@"; do
    [[ -x $program ]] || bench_fail 2 "$program is missing; $hint"
  done
}

# Exits 2 unless running as root; WHY says what needs it.
bench_require_root() {  # WHY
  [[ $(id -u) -eq 0 ]] || bench_fail 2 "$1; run as root"
}

# Exits 2 when DIR is on tmpfs or ramfs, where fsync is free; sets bench_fs_type.
bench_require_real_disk() {  # DIR
  bench_fs_type=$(stat -f -c %T "$1")
  if [[ $bench_fs_type == tmpfs || $bench_fs_type == ramfs ]]; then
    bench_fail 2 "$1 is $bench_fs_type, where fsync is free; pass --state-root on a real disk"
  fi
}

# Stops a daemon by pid: SIGTERM, then SIGKILL after 30 s. Nothing for an empty pid or one
# that has exited.
bench_stop() {  # PID
  local pid=$1
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 300); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# Removes the benchmark's folder, never through a mount: left in place, with a warning, when
# something is still mounted under it.
bench_remove_base() {  # DIR
  if grep -q " $1/" /proc/self/mountinfo; then
    echo "$BENCH_NAME: something is still mounted under $1; left in place" >&2
  else
    rm -rf "$1"
  fi
}

# At exit: stops the benchmark's daemons ($agent_pid, the pids in $agent_pids, then
# $droverd_pid), runs bench_extra_cleanup when the script defines it, and removes $base
# (bench_remove_base). Call once $base exists.
bench_cleanup_on_exit() {
  agent_pid=${agent_pid:-}
  droverd_pid=${droverd_pid:-}
  [[ -v agent_pids ]] || agent_pids=()
  trap bench_cleanup EXIT
}
# Stops the daemons bench_cleanup_on_exit knows, and forgets them.
bench_cleanup_daemons() {
  local pid
  bench_stop "$agent_pid"
  for pid in "${agent_pids[@]}"; do bench_stop "$pid"; done
  bench_stop "$droverd_pid"
  agent_pid=
  agent_pids=()
  droverd_pid=
}
bench_cleanup() {
  bench_cleanup_daemons
  if declare -F bench_extra_cleanup >/dev/null; then bench_extra_cleanup; fi
  bench_remove_base "$base"
}

# The load average now, as "load A B C".
bench_load() {
  echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
}

# The lines every result starts with: date, CPUs, kernel, build type and the disk of DIR.
bench_machine() {  # BUILD_DIR DIR
  echo "== machine"
  echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cpus:    $(nproc) ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
  echo "memory:  $(free -g | awk '/^Mem:/ {print $2}') GiB"
  echo "kernel:  $(uname -r)"
  echo "build:   $(grep -E '^CMAKE_BUILD_TYPE' "$1/CMakeCache.txt" | cut -d= -f2) in $1"
  echo "disk:    $(df -h --output=source,fstype,size,used "$2" | tail -1 | tr -s ' ') ($(stat -f -c %T "$2"))"
  echo "folder:  $2"
}

# Starts DROVERD on STATE_DIR listening on LISTEN (host:0), its stderr in LOG, with a fresh
# bootstrap admin token: droverd refuses calls without a user token, so the benchmark is its
# admin. Every call is over TLS: droverd makes its cluster CA in its state folder, and the
# bench, the CLI and the agents trust it. Waits until droverd writes its address (30 s at
# most). Sets droverd_pid and address; exports DROVER_TOKEN and DROVER_CA. ARGS go to
# droverd after the others.
bench_start_droverd() {  # DROVERD STATE_DIR LISTEN LOG [ARGS...]
  local droverd=$1 state_dir=$2 listen=$3 log=$4
  shift 4
  local token_file=$state_dir.token address_file=$state_dir.address
  mkdir -p "$state_dir"
  rm -f "$address_file"
  # The CLIs' connection keepers (docs/cli.md) live in the run's folder: they exit within a
  # second of its removal at the end, and never meet a keeper of another run.
  mkdir -p -m 700 "$state_dir.run"
  export XDG_RUNTIME_DIR=$state_dir.run
  export DROVER_TOKEN="drv_bench$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  (umask 077; echo "$DROVER_TOKEN" >"$token_file")
  "$droverd" --listen "$listen" --state-dir "$state_dir" --bootstrap-admin-token-file "$token_file" \
    --address-file "$address_file" "$@" 2> "$log" &
  droverd_pid=$!
  export DROVER_CA="$state_dir/tls/ca.crt"
  for _ in $(seq 300); do
    [[ -s $address_file ]] && break
    if ! kill -0 "$droverd_pid" 2>/dev/null; then
      echo "$BENCH_NAME: droverd exited during start-up:" >&2
      cat "$log" >&2
      exit 1
    fi
    sleep 0.1
  done
  address=$(cat "$address_file" 2>/dev/null || true)
  [[ -n $address ]] || bench_fail 1 "droverd did not listen within 30s (see $log)"
}

# Writes a one-time join token for node NAME to FILE (0600): agents join with it, and
# droverd knows nodes by the certificates they get for it. Needs bench_start_droverd first.
bench_join_token() {  # CLI NAME FILE
  (umask 077; "$1" --server "$address" node token create --ttl 10m --name "$2" >"$3")
}

# Starts AGENT as node NAME on this machine, joined with a fresh join token (in WORK_DIR's
# parent folder), its work folder WORK_DIR, drover-init INIT, its stderr in LOG; ARGS go to
# the agent after the others. Needs bench_start_droverd first. Sets agent_pid.
bench_start_agent() {  # AGENT CLI NAME WORK_DIR INIT LOG [ARGS...]
  local agent=$1 cli=$2 name=$3 work_dir=$4 init=$5 log=$6
  shift 6
  bench_join_token "$cli" "$name" "$work_dir.join-token"
  "$agent" --scheduler "$address" --ca "$DROVER_CA" --node-name "$name" --work-dir "$work_dir" \
    --join-file "$work_dir.join-token" --init "$(realpath "$init")" "$@" 2> "$log" &
  agent_pid=$!
}
