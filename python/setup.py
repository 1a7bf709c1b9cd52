"""Installs the `drover` package (the client SDK and the in-job API): `pip install ./python`.

The gRPC stubs are generated from ../proto while the package is built (protoc and
grpc_python_plugin: Debian's protobuf-compiler and protobuf-compiler-grpc), into the built
package's drover/v1/, so they are part of the installed package and never committed.

Why setup.py and no pyproject.toml: pip builds a project that has a pyproject.toml in an
isolated environment whose setuptools it downloads; with setup.py alone it uses the
installed setuptools and wheel (Debian's python3-setuptools, python3-wheel), so the install
works offline. Runtime dependencies: grpcio and protobuf (Debian's python3-grpcio 1.51 and
python3-protobuf 3.21 work).
"""

import glob
import os
import shutil
import subprocess

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_DIR = os.path.normpath(os.path.join(HERE, "..", "proto"))


class BuildPyWithStubs(build_py):
    """build_py, then protoc for every proto/drover/v1/*.proto into the built package."""

    def run(self):
        super().run()
        protos = sorted(os.path.relpath(p, PROTO_DIR)
                        for p in glob.glob(os.path.join(PROTO_DIR, "drover", "v1", "*.proto")))
        if not protos:
            raise SystemExit(f"drover: no protos in {PROTO_DIR}; build from the Drover "
                             "repository (pip install ./python)")
        protoc = shutil.which("protoc")
        plugin = shutil.which("grpc_python_plugin")
        if protoc is None or plugin is None:
            raise SystemExit("drover: needs protoc and grpc_python_plugin to generate the "
                             "stubs; install protobuf-compiler and protobuf-compiler-grpc "
                             "(deploy/install-deps.sh)")
        out = os.path.abspath(self.build_lib)
        subprocess.check_call([protoc, f"-I{PROTO_DIR}", f"--python_out={out}",
                               f"--grpc_python_out={out}",
                               f"--plugin=protoc-gen-grpc_python={plugin}", *protos],
                              cwd=PROTO_DIR)


setup(
    name="drover",
    version="0.1.0",
    description="Drover's Python SDK: submit and track training runs; log metrics from jobs",
    packages=find_packages(include=["drover", "drover.*"]),
    python_requires=">=3.9",
    install_requires=["grpcio>=1.51", "protobuf>=3.21"],
    cmdclass={"build_py": BuildPyWithStubs},
)
