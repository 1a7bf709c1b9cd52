"""A droverd and one drover-agent of the build, started for the SDK's end-to-end tests as
bench/lib.sh and tests/testing/local_cluster.* start them: droverd with a fresh bootstrap
admin token and its own TLS CA, the agent joined with a one-time join token, both on
127.0.0.1, a HOSTPATH datastore root shared by both; or, with `hosts=N`, N test hosts
(deploy/testhosts.sh: network namespaces on a bridge) with droverd on the bridge and an agent
on each host offering 2 cpus, as tests/e2e/distributed_fixture.h does. `stop()` ends only the processes it
started (by pid), deletes runc containers left in the agent's work folder and removes its
folder, also after a failure. Root only (runc).
"""

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time

from drover import Workspace
from drover.v1 import admin_service_pb2, datastore_pb2, node_pb2

NODE = "sdk-node-1"


SOURCE_DIR = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
TESTHOSTS = os.path.join(SOURCE_DIR, "deploy", "testhosts.sh")
SUBNET_IN_USE = 3  # testhosts.sh create's exit code


class LocalCluster:
    def __init__(self, build_dir: str, hosts: int = 0):
        self.build_dir = os.path.abspath(build_dir)
        self.hosts = hosts
        self.host_names = []
        self.host_addresses = []
        self.prefix = f"sdk{os.getpid() % 100000}"
        base = os.environ.get("TMPDIR", "/tmp")
        self.dir = tempfile.mkdtemp(prefix="drover-sdk-test-", dir=base)
        # Searchable by the unprivileged host uid that is root in a job container.
        os.chmod(self.dir, 0o711)
        self.datastore_root = os.path.join(self.dir, "datastores")
        os.makedirs(self.datastore_root)
        os.chmod(self.datastore_root, 0o755)
        # The drover CLIs this cluster's tests run keep their connection keepers here, so
        # that the keepers end (within a second) when the folder is removed.
        self.runtime_dir = os.path.join(self.dir, "run")
        os.mkdir(self.runtime_dir, 0o700)
        self.processes = {}  # name -> Popen
        self.address = ""
        self.token = ""
        self.ca = ""

    def _program(self, *parts):
        path = os.path.join(self.build_dir, *parts)
        if not os.access(path, os.X_OK):
            raise RuntimeError(f"{path} is missing; build it first (cmake --build --preset debug)")
        return path

    def _spawn(self, name, argv):
        log = open(os.path.join(self.dir, f"{name}.log"), "ab")
        self.processes[name] = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                                stdout=subprocess.DEVNULL, stderr=log)
        log.close()

    def logs(self) -> str:
        out = []
        for name in self.processes:
            path = os.path.join(self.dir, f"{name}.log")
            try:
                with open(path, errors="replace") as f:
                    out.append(f"--- {name}:\n" + f.read()[-6000:])
            except OSError:
                pass
        return "\n".join(out)

    def start(self) -> Workspace:
        """Starts droverd and the agent; returns an admin Workspace once the node is READY."""
        listen = "127.0.0.1:0"
        if self.hosts:
            subprocess.run([TESTHOSTS, "destroy", "--prefix", self.prefix], capture_output=True)
            for attempt in range(20):
                subnet = f"10.{200 + attempt}.{os.getpid() % 250}"
                made = subprocess.run([TESTHOSTS, "create", str(self.hosts), "--prefix",
                                       self.prefix, "--subnet", subnet],
                                      capture_output=True, text=True)
                if made.returncode == SUBNET_IN_USE:
                    continue
                if made.returncode != 0:
                    raise RuntimeError("testhosts.sh create failed: " + made.stderr)
                for line in made.stdout.split("\n"):
                    if line.strip():
                        name, address = line.split()
                        self.host_names.append(name)
                        self.host_addresses.append(address)
                listen = subnet + ".1:0"
                break
            else:
                raise RuntimeError("no free subnet for the test hosts")
        state = os.path.join(self.dir, "state")
        os.makedirs(state)
        token_file = state + ".token"
        address_file = state + ".address"
        self.token = "drv_sdktest" + secrets.token_hex(24)
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, (self.token + "\n").encode())
        os.close(fd)
        self._spawn("droverd", [self._program("server", "droverd"), "--listen", listen,
                                "--state-dir", state, "--bootstrap-admin-token-file", token_file,
                                "--address-file", address_file,
                                "--datastore-root", self.datastore_root])
        deadline = time.monotonic() + 30
        while not (os.path.exists(address_file) and os.path.getsize(address_file) > 0):
            if self.processes["droverd"].poll() is not None:
                raise RuntimeError("droverd exited during start-up\n" + self.logs())
            if time.monotonic() > deadline:
                raise RuntimeError("droverd did not listen within 30s\n" + self.logs())
            time.sleep(0.1)
        with open(address_file) as f:
            self.address = f.read().strip()
        self.ca = os.path.join(state, "tls", "ca.crt")

        names = self.host_names or [NODE]
        for k, name in enumerate(names):
            self._start_agent(k, name)
        self.work_dir = os.path.join(self.dir, "agent-0")

        ws = Workspace(server=self.address, token=self.token, ca=self.ca)
        conn = ws._connection
        deadline = time.monotonic() + 60
        while True:
            nodes = conn.call(conn.admin.ListNodes, admin_service_pb2.ListNodesRequest()).nodes
            ready = {n.name for n in nodes if n.state == node_pb2.Node.READY}
            if ready >= set(names):
                return ws
            if any(p.poll() is not None for n, p in self.processes.items() if n != "droverd"):
                raise RuntimeError("a drover-agent exited during start-up\n" + self.logs())
            if time.monotonic() > deadline:
                raise RuntimeError("the agents' nodes were not READY within 60s\n" + self.logs())
            time.sleep(0.2)

    def _start_agent(self, k: int, name: str):
        join_file = os.path.join(self.dir, f"agent-{k}.join-token")
        env = dict(os.environ, DROVER_TOKEN=self.token, XDG_RUNTIME_DIR=self.runtime_dir)
        made = subprocess.run([self._program("cli", "drover"), "--server", self.address, "--ca",
                               self.ca, "node", "token", "create", "--ttl", "10m", "--name",
                               name], env=env, capture_output=True, text=True, timeout=60)
        if made.returncode != 0:
            raise RuntimeError("drover node token create failed: " + made.stderr)
        fd = os.open(join_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, made.stdout.encode())
        os.close(fd)
        prefix, flags = [], []
        if self.host_names:
            prefix = ["/usr/bin/nsenter", f"--net=/run/netns/{name}", "--"]
            flags = ["--address", self.host_addresses[k], "--cpus", "2", "--memory", "4Gi"]
        self._spawn(f"agent-{k}", prefix + [
            self._program("agent", "drover-agent"), "--scheduler", self.address,
            "--ca", self.ca, "--node-name", name, "--work-dir",
            os.path.join(self.dir, f"agent-{k}"), "--join-file", join_file,
            "--init", self._program("agent", "launcher", "drover-init"),
            "--python-dir", os.path.join(self.build_dir, "python"),
            "--datastore-root", self.datastore_root, "--jobs-on-exit", "stop"] + flags)

    def add_hostpath_datastore(self, ws: Workspace, name: str, allow_write: bool = False) -> str:
        """Registers HOSTPATH datastore `name` at <datastore root>/<name>; returns the folder."""
        folder = os.path.join(self.datastore_root, name)
        os.makedirs(folder, exist_ok=True)
        conn = ws._connection
        conn.call(conn.admin.PutDatastore, admin_service_pb2.PutDatastoreRequest(
            datastore=datastore_pb2.Datastore(name=name, type=datastore_pb2.Datastore.HOSTPATH,
                                              path=folder, allow_write=allow_write)))
        return folder

    def stop(self):
        """Ends the agent, then droverd (SIGTERM, SIGKILL after 30 s), deletes leftover
        containers and removes the folder."""
        for name in [n for n in self.processes if n != "droverd"] + ["droverd"]:
            process = self.processes.get(name)
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for k in range(max(len(self.host_names), 1)):
            runc_root = os.path.join(self.dir, f"agent-{k}", "runc")
            if not os.path.isdir(runc_root):
                continue
            listed = subprocess.run(["/usr/sbin/runc", "--root", runc_root, "list", "-q"],
                                    capture_output=True, text=True)
            for container in listed.stdout.split():
                subprocess.run(["/usr/sbin/runc", "--root", runc_root, "delete", "--force",
                                container], capture_output=True)
        # Mounts the agent may have left (it unmounts its own on a clean stop).
        with open("/proc/self/mounts") as f:
            mounts = [line.split()[1] for line in f if self.dir in line]
        for mount in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], capture_output=True)
        if self.hosts:
            subprocess.run([TESTHOSTS, "destroy", "--prefix", self.prefix], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


def started_cluster(**options):
    """For a pytest fixture (`yield from started_cluster()`): a LocalCluster of the build
    ctest names in DROVER_BUILD_DIR (`options` as LocalCluster takes them), started, its
    Workspace as `ws`; stopped afterwards. Skips the tests without a build."""
    import pytest

    build_dir = os.environ.get("DROVER_BUILD_DIR")
    if not build_dir:
        pytest.skip("DROVER_BUILD_DIR names no build (ctest sets it)")
    c = LocalCluster(build_dir, **options)
    try:
        c.ws = c.start()
        yield c
    finally:
        c.stop()

