#!/usr/bin/env bash
# Test hosts: several "machines" on this one, each a network namespace with its own address
# on a private bridge, so that droverd, agents and jobs talk over real (virtual) links that
# tests can cut. Traffic stays on the machine: no default route, no NAT. Run as root.
# Usage: deploy/testhosts.sh --help
set -euo pipefail
# `ip` lives in sbin; appended (not prepended) so that `exec` runs commands with the
# caller's own PATH order.
PATH="$PATH:/usr/sbin:/sbin"

usage() {
  cat <<'EOF'
Usage: deploy/testhosts.sh COMMAND [--prefix P] ...

Commands:
  create N [--prefix P] [--subnet A.B.C]
        Make N test hosts: network namespaces P-1 .. P-N, bridge P-br in this namespace
        with address A.B.C.1/24, one veth pair per host (P-vK on the bridge, eth0 with
        A.B.C.(10+K)/24 inside, lo up) and /etc/netns/P-K/hosts naming every host.
        Prints "NAME ADDRESS" per host. Refuses when any of these already exists or when
        A.B.C.0/24 overlaps an address or route of this machine (exit code 3).
  destroy [--prefix P]
        Remove what create made for prefix P. Idempotent.
  list [--prefix P]
        Print "NAME ADDRESS" per existing host of prefix P.
  partition K [--prefix P]
        Cut host K off the bridge (its link goes down; packets are lost, not refused).
  heal K [--prefix P]
        Reconnect host K.
  exec [--prefix P] K COMMAND [ARG...]
        Run COMMAND as if on host K: in its network namespace, with hostname P-K and
        /etc/hosts from /etc/netns/P-K/hosts, in a mount namespace of its own (slave of
        this one, so /sys/fs/cgroup and later mounts stay visible; its own mounts stay
        private). Keeps the process id: COMMAND replaces this script.

Options:
  --prefix P     names of namespaces and links (default drover-th; [a-z][a-z0-9-]*, at
                 most 12 characters so that P-br fits Linux's 15-character link names)
  --subnet A.B.C the /24 to use (default 10.77.0)
  -h, --help     this text

Clean up by hand: deploy/testhosts.sh list --prefix P; deploy/testhosts.sh destroy --prefix P
EOF
}

die() {
  echo "testhosts: $*" >&2
  exit 1
}

usage_error() {
  echo "testhosts: $*; see --help" >&2
  exit 2
}

prefix="drover-th"
subnet="10.77.0"
command="${1:-}"
[[ -n "$command" ]] || usage_error "missing command"
shift
positional=()
while (($#)); do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --prefix) (($# >= 2)) || usage_error "--prefix needs a value"; prefix="$2"; shift 2 ;;
    --prefix=*) prefix="${1#*=}"; shift ;;
    --subnet) (($# >= 2)) || usage_error "--subnet needs a value"; subnet="$2"; shift 2 ;;
    --subnet=*) subnet="${1#*=}"; shift ;;
    --) shift; positional+=("$@"); break ;;
    -*) usage_error "unknown option '$1'" ;;
    *)
      positional+=("$1")
      shift
      # After exec's host number everything is the command, options included.
      if [[ "$command" == "exec" ]]; then positional+=("$@"); break; fi
      ;;
  esac
done
case "$command" in
  -h | --help | help) usage; exit 0 ;;
esac

# Every name this script makes matches one of these, and only these are ever removed: a
# namespace P-<number>, a veth P-v<number>, the bridge P-br.
[[ "$prefix" =~ ^[a-z][a-z0-9-]*$ ]] || usage_error "--prefix '$prefix' must be [a-z][a-z0-9-]*"
((${#prefix} <= 12)) || usage_error "--prefix '$prefix' is longer than 12 characters"
bridge="$prefix-br"
ns_re="^${prefix}-[0-9]+\$"
veth_re="^${prefix}-v[0-9]+\$"

need_root() {
  [[ $(id -u) -eq 0 ]] || die "$command needs root (network namespaces and links); run with sudo"
}

# Namespaces and create's veths of this prefix, one per line.
prefix_namespaces() {
  ip netns list | awk '{print $1}' | grep -E "$ns_re" | sort -V || true
}
prefix_veths() {
  ip -o link show type veth | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E "$veth_re" || true
}
prefix_hosts_dirs() {
  [[ -d /etc/netns ]] || return 0
  find /etc/netns -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | grep -E "$ns_re" || true
}
bridge_exists() { ip link show dev "$bridge" >/dev/null 2>&1; }

# Parallel test binaries create hosts at the same time: the free-subnet check and the
# creation must be one step.
take_lock() {
  mkdir -p /run/lock
  exec 9>/run/lock/drover-testhosts.lock
  flock -w 60 9 || die "another testhosts.sh held /run/lock/drover-testhosts.lock for 60s"
}

ip_to_int() {
  local IFS=.
  local -a o
  read -r -a o <<<"$1"
  echo $(((o[0] << 24) | (o[1] << 16) | (o[2] << 8) | o[3]))
}

# Prints the first address or route of this machine that overlaps $subnet.0/24.
subnet_conflict() {
  local net cidr addr len m
  net=$(ip_to_int "$subnet.0")
  while read -r cidr; do
    addr="${cidr%/*}"
    len=32
    [[ "$cidr" == */* ]] && len="${cidr#*/}"
    m=$((len < 24 ? len : 24))
    if (((($(ip_to_int "$addr") >> (32 - m)) & 0xffffffff) == ((net >> (32 - m)) & 0xffffffff))); then
      echo "$cidr"
      return 0
    fi
  done < <(
    ip -4 -o addr show | awk '{print $4}'
    ip -4 -o route show | awk '$1 ~ /^[0-9]/ {print $1} $1 !~ /^[0-9]/ && $2 ~ /^[0-9]/ {print $2}'
  )
  return 1
}

host_address() {
  ip -n "$1" -4 -o addr show dev eth0 2>/dev/null | awk '{print $4}' | cut -d/ -f1 | head -n1
}

destroy_prefix() {
  local ns pids link dir
  while read -r ns; do
    [[ -n "$ns" ]] || continue
    pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ' || true)
    # The namespace lives on while these run; deleting its veth below still cuts it off.
    [[ -z "$pids" ]] || echo "testhosts: warning: processes still run in $ns: $pids" >&2
    ip netns delete "$ns"
  done < <(prefix_namespaces)
  # Normally gone with their namespaces; left when a process keeps a namespace alive.
  while read -r link; do
    [[ -n "$link" ]] || continue
    ip link delete dev "$link" 2>/dev/null || true
  done < <(prefix_veths)
  if bridge_exists; then
    ip -d link show dev "$bridge" | grep -qw bridge || die "$bridge exists but is not a bridge; not touching it"
    ip link delete dev "$bridge"
  fi
  while read -r dir; do
    [[ -n "$dir" ]] || continue
    rm -rf -- "/etc/netns/$dir"
  done < <(prefix_hosts_dirs)
}

host_number() {
  [[ "${1:-}" =~ ^[1-9][0-9]*$ ]] || usage_error "$command needs a host number K (1 for $prefix-1)"
}

cmd_create() {
  (($# == 1)) || usage_error "create takes one number of hosts"
  local count="$1"
  if ! [[ "$count" =~ ^[1-9][0-9]*$ ]] || ((count > 244)); then
    usage_error "number of hosts must be 1 to 244"
  fi
  if ! [[ "$subnet" =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$ ]] ||
    ((BASH_REMATCH[1] > 255 || BASH_REMATCH[2] > 255 || BASH_REMATCH[3] > 255)); then
    usage_error "--subnet '$subnet' must be three numbers A.B.C, each 0 to 255"
  fi
  local longest="$prefix-v$count"
  ((${#longest} <= 15)) || usage_error "link name '$longest' exceeds 15 characters: shorten --prefix"
  need_root
  take_lock

  local -a existing
  mapfile -t existing < <(prefix_namespaces; prefix_veths; prefix_hosts_dirs | sed 's|^|/etc/netns/|')
  if bridge_exists; then existing+=("$bridge"); fi
  ((${#existing[@]} == 0)) || die "test hosts of prefix '$prefix' already exist (${existing[*]}); run 'deploy/testhosts.sh destroy --prefix $prefix' first"
  local conflict
  if conflict=$(subnet_conflict); then
    echo "testhosts: subnet $subnet.0/24 is in use here ($conflict); pick another --subnet" >&2
    exit 3
  fi
  if [[ "$(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null || echo 0)" == 1 ]] &&
    iptables -S FORWARD 2>/dev/null | grep -qx -- '-P FORWARD DROP'; then
    echo "testhosts: warning: iptables FORWARD drops by default and filters bridged traffic; hosts may not reach each other" >&2
  fi

  # From here on, a failure removes the half-made topology (nothing of this prefix existed).
  trap 'destroy_prefix >/dev/null 2>&1 || true' EXIT
  ip link add "$bridge" type bridge
  ip addr add "$subnet.1/24" dev "$bridge"
  ip link set "$bridge" up
  local k ns hosts
  hosts=$'127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n'
  for ((k = 1; k <= count; k++)); do
    hosts+="$subnet.$((10 + k))"$'\t'"$prefix-$k"$'\n'
  done
  for ((k = 1; k <= count; k++)); do
    ns="$prefix-$k"
    ip netns add "$ns"
    ip link add "$prefix-v$k" type veth peer name eth0 netns "$ns"
    ip link set "$prefix-v$k" master "$bridge" up
    ip -n "$ns" addr add "$subnet.$((10 + k))/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    mkdir -p "/etc/netns/$ns"
    printf '%s' "$hosts" >"/etc/netns/$ns/hosts"
  done
  trap - EXIT
  for ((k = 1; k <= count; k++)); do
    echo "$prefix-$k $subnet.$((10 + k))"
  done
}

cmd_destroy() {
  (($# == 0)) || usage_error "destroy takes no arguments besides --prefix"
  need_root
  take_lock
  destroy_prefix
}

cmd_list() {
  (($# == 0)) || usage_error "list takes no arguments besides --prefix"
  local ns
  while read -r ns; do
    [[ -n "$ns" ]] || continue
    echo "$ns $(host_address "$ns")"
  done < <(prefix_namespaces)
}

# cmd_link up|down K: the host's end on the bridge, so that the host sees only a lost carrier.
cmd_link() {
  local state="$1"
  shift
  (($# == 1)) || usage_error "$command takes one host number"
  host_number "$1"
  need_root
  local veth="$prefix-v$1"
  ip link show dev "$veth" >/dev/null 2>&1 || die "no test host $prefix-$1 (no link $veth); see 'deploy/testhosts.sh list --prefix $prefix'"
  ip link set dev "$veth" "$state"
}

cmd_exec() {
  (($# >= 2)) || usage_error "exec needs a host number and a command"
  host_number "$1"
  local ns="$prefix-$1"
  shift
  [[ -e "/run/netns/$ns" && -f "/etc/netns/$ns/hosts" ]] ||
    die "no test host $ns; see 'deploy/testhosts.sh list --prefix $prefix'"
  # Not `ip netns exec`: it remounts /sys, which hides /sys/fs/cgroup from runc. The
  # hostname is the host's own so that gethostname() resolves to its address (through the
  # hosts file) instead of to the machine's name, which means nothing on the bridge.
  # shellcheck disable=SC2016  # $0 and $@ belong to the inner shell
  exec nsenter --net="/run/netns/$ns" -- unshare --uts --mount --propagation slave -- /bin/sh -c \
    'mount --bind "/etc/netns/$0/hosts" /etc/hosts && echo "$0" >/proc/sys/kernel/hostname && exec "$@"' \
    "$ns" "$@"
}

case "$command" in
  create) cmd_create "${positional[@]}" ;;
  destroy) cmd_destroy "${positional[@]}" ;;
  list) cmd_list "${positional[@]}" ;;
  partition) cmd_link down "${positional[@]}" ;;
  heal) cmd_link up "${positional[@]}" ;;
  exec) cmd_exec "${positional[@]}" ;;
  *) usage_error "unknown command '$command'" ;;
esac
