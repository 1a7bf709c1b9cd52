#!/usr/bin/env bash
# Installs every Debian 12 package Drover needs to build and test. Idempotent; run as root
# (or with sudo available).
# Usage: deploy/install-deps.sh [--build-only | --runtime | --fuzz]
#   (none)        build, run and test: everything
#   --build-only  only what compiling needs
#   --fuzz        compiling, plus clang and libFuzzer for the fuzz targets (preset fuzz)
#   --runtime     compiling, plus what the daemons, the example jobs, the web app's build
#                 and the quick start need at run time
set -euo pipefail

build_pkgs=(
  cmake ninja-build g++ pkg-config
  libgrpc++-dev libgrpc-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libsqlite3-dev libboost-dev libgtest-dev libgmock-dev libsystemd-dev libssl-dev
  # PostgreSQL's client library: droverd --store postgres://... (docs/operations.md).
  libpq-dev
  # The static archives the drover CLI is linked from (cmake/DroverStaticLink.cmake).
  libre2-dev libc-ares-dev zlib1g-dev
  nlohmann-json3-dev
)
# Builds the web app (web/, deploy/build-web.sh: Vite needs Node.js 18 or later). Where a
# newer Node.js is installed from elsewhere (NodeSource's nodejs brings its own npm), it is
# kept, and Debian's npm is not asked for.
web_pkgs=(nodejs)
command -v npm >/dev/null || web_pkgs+=(npm)
# Used at run time by drover-agent: crun runs the containers where it can apply their limits
# (about 0.4 of runc's CPU per container; drover-agent --runc auto, the default), runc
# otherwise (docs/operations.md, "runc or crun"), umoci and
# skopeo unpack and pull OCI images, rclone and fuse3 (fusermount3) mount and copy rclone datastores; PyTorch
# for the example jobs, pip for jobs' pip_packages (environments built over the host image's
# python3) and Open MPI's mpirun for jobs of the mpi backend, all in the host image;
# iproute2 for the quick start's test hosts (deploy/testhosts.sh); grpcio and protobuf for
# the Python SDK (python/, pip install ./python); torch's C++ headers, Open MPI's headers,
# pybind11 and Python's headers so that jobs in the host image can have Horovod built for
# them (environment.horovod, built from source by the agent; g++ and cmake are above).
runtime_pkgs=(
  runc crun umoci skopeo rclone fuse3 python3 python3-pip python3-torch python3-numpy
  openmpi-bin iproute2 python3-grpcio python3-protobuf
  libtorch-dev libopenmpi-dev pybind11-dev python3-dev
)
# Used by the tests besides: the sqlite3 shell (crash tests), busybox-static (small test
# images), procps, mpi4py (MPI test jobs), Prometheus' Python client (its text-format
# parser checks the daemons' /metrics pages), setuptools and wheel (the wheel the
# environment tests build with pip, offline), iptables (the node-loss tests cut test hosts
# off from droverd), pytest (the Python SDK's tests, python/tests), Chromium and its driver
# (the web app's browser tests, tests/web, driven headless with playwright-core), the
# PostgreSQL server (the store conformance suite starts a throw-away one, run as 'nobody':
# tests/testing/postgres_server.h).
test_pkgs=(
  sqlite3 postgresql procps busybox-static python3-mpi4py python3-prometheus-client python3-setuptools
  python3-wheel iptables python3-pytest chromium chromium-driver
)

# The fuzz targets (tests/fuzz, `cmake --preset fuzz`): clang++ with libFuzzer and the
# sanitizer runtimes. CI runs each target briefly after the test suite.
fuzz_pkgs=(clang libclang-rt-14-dev)

pkgs=("${build_pkgs[@]}")
case "${1:-}" in
  --build-only) ;;
  --runtime) pkgs+=("${runtime_pkgs[@]}" "${web_pkgs[@]}") ;;
  --fuzz) pkgs+=("${fuzz_pkgs[@]}") ;;
  *) pkgs+=("${runtime_pkgs[@]}" "${web_pkgs[@]}" "${test_pkgs[@]}" "${fuzz_pkgs[@]}") ;;
esac

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
