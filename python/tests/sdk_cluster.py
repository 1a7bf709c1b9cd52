"""A droverd and one drover-agent of the build, started for the SDK's end-to-end tests as
bench/lib.sh and tests/testing/local_cluster.* start them: droverd with a fresh bootstrap
admin token and its own TLS CA, the agent joined with a one-time join token, both on
127.0.0.1, a HOSTPATH datastore root shared by both. `stop()` ends only the processes it
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


class LocalCluster:
    def __init__(self, build_dir: str):
        self.build_dir = os.path.abspath(build_dir)
        base = os.environ.get("TMPDIR", "/tmp")
        self.dir = tempfile.mkdtemp(prefix="drover-sdk-test-", dir=base)
        # Searchable by the unprivileged host uid that is root in a job container.
        os.chmod(self.dir, 0o711)
        self.datastore_root = os.path.join(self.dir, "datastores")
        os.makedirs(self.datastore_root)
        os.chmod(self.datastore_root, 0o755)
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
        state = os.path.join(self.dir, "state")
        os.makedirs(state)
        token_file = state + ".token"
        address_file = state + ".address"
        self.token = "drv_sdktest" + secrets.token_hex(24)
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, (self.token + "\n").encode())
        os.close(fd)
        self._spawn("droverd", [self._program("server", "droverd"), "--listen", "127.0.0.1:0",
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

        join_file = os.path.join(self.dir, "agent.join-token")
        env = dict(os.environ, DROVER_TOKEN=self.token)
        made = subprocess.run([self._program("cli", "drover"), "--server", self.address, "--ca",
                               self.ca, "node", "token", "create", "--ttl", "10m", "--name",
                               NODE], env=env, capture_output=True, text=True, timeout=60)
        if made.returncode != 0:
            raise RuntimeError("drover node token create failed: " + made.stderr)
        fd = os.open(join_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, made.stdout.encode())
        os.close(fd)
        work = os.path.join(self.dir, "agent")
        self.work_dir = work
        self._spawn("agent", [self._program("agent", "drover-agent"), "--scheduler", self.address,
                              "--ca", self.ca, "--node-name", NODE, "--work-dir", work,
                              "--join-file", join_file,
                              "--init", self._program("agent", "launcher", "drover-init"),
                              "--python-dir", os.path.join(self.build_dir, "python"),
                              "--datastore-root", self.datastore_root,
                              "--jobs-on-exit", "stop"])

        ws = Workspace(server=self.address, token=self.token, ca=self.ca)
        conn = ws._connection
        deadline = time.monotonic() + 60
        while True:
            nodes = conn.call(conn.admin.ListNodes, admin_service_pb2.ListNodesRequest()).nodes
            if any(n.name == NODE and n.state == node_pb2.Node.READY for n in nodes):
                return ws
            if self.processes["agent"].poll() is not None:
                raise RuntimeError("drover-agent exited during start-up\n" + self.logs())
            if time.monotonic() > deadline:
                raise RuntimeError("the agent's node was not READY within 60s\n" + self.logs())
            time.sleep(0.2)

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
        for name in ("agent", "droverd"):
            process = self.processes.get(name)
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        runc_root = os.path.join(self.dir, "agent", "runc")
        if os.path.isdir(runc_root):
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
        shutil.rmtree(self.dir, ignore_errors=True)
