#!/usr/bin/env bash
# Installs every Debian 12 package Drover needs to build and test. Idempotent; run as root
# (or with sudo available). Usage: deploy/install-deps.sh [--build-only]
set -euo pipefail

build_pkgs=(
  cmake ninja-build g++ pkg-config
  libgrpc++-dev libgrpc-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libsqlite3-dev libboost-dev libgtest-dev libgmock-dev libsystemd-dev libssl-dev
)
# Used at run time by drover-agent and by the tests: runc runs the containers, umoci and
# skopeo make and move OCI images, the sqlite3 shell checks databases in the crash tests.
test_pkgs=(
  sqlite3 python3 procps runc umoci skopeo busybox-static
)

pkgs=("${build_pkgs[@]}")
[[ "${1:-}" == "--build-only" ]] || pkgs+=("${test_pkgs[@]}")

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#pkgs[@]} packages present"
  exit 0
fi

SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
