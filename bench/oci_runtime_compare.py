#!/usr/bin/env python3
"""Times OCI runtimes (runc, crun) on one job container's config, round robin in one run.

  bench/oci_runtime_compare.py CONFIG --runtime NAME=PATH [--runtime NAME=PATH ...]
                               [--runs 30] [--plain] [--legacy-cgroups] [--work DIR]

CONFIG is the hardened config.json of drover-bench run-latency's "same config" baseline
(copy <baseline-root>/drover-bench-runc-PID/same-bundle/config.json while it runs: what
BuildOciConfig makes for a host-image job running drover-init and `/bin/sh -c true`, with
the user namespace, the seccomp allowlist and the pids limit). For every runtime it runs
what drover-agent does for a one-node attempt: `RUNTIME run --detach --pid-file`, a wait
for PID 1 (this process is a child subreaper and reaps it, as the agent does), and
`RUNTIME delete --force`. Per runtime it prints the median wall time of each step and the
median CPU time (user + system) of the whole sequence: the runtime's processes and the
container's, all reaped by this process. --plain adds each runtime on the same config
without the user namespace and seccomp. --legacy-cgroups runs in a private mount namespace
without /sys/fs/cgroup/unified (crun refuses a hybrid layout whose cgroup2 holds a
controller). Runs as root. Written for issue 18 (docs/benchmarks.md, "Per-job CPU on the
node"); bench/runc_seccomp_variants.py is its model.
"""
import argparse
import copy
import ctypes
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HOST_ID = 100000  # the config's user namespace maps 0 to this (drover-agent's default)
PR_SET_CHILD_SUBREAPER = 36
CLONE_NEWNS = 0x20000
MS_REC, MS_PRIVATE = 0x4000, 0x40000


def no_userns(cfg):
    linux = cfg["linux"]
    linux["namespaces"] = [n for n in linux["namespaces"] if n["type"] != "user"]
    linux.pop("uidMappings", None)
    linux.pop("gidMappings", None)
    for m in cfg["mounts"]:
        if m["destination"] == "/sys":  # as BuildOciConfig mounts it without a user namespace
            m.update(type="sysfs", source="sysfs", options=["nosuid", "noexec", "nodev", "ro"])


def make_bundle(work, name, base, plain):
    bundle = os.path.join(work, "bundle-" + name)
    job = bundle + "/job"
    os.makedirs(bundle + "/state")
    for d in (job, job + "/logs", job + "/outputs"):
        os.makedirs(d)
    rootfs = bundle + "/rootfs"
    for d in ("usr", "etc", "tmp", "run", "var", "root", "proc", "dev", "sys", "job"):
        os.makedirs(os.path.join(rootfs, d))
    for d in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        if os.path.islink("/" + d):
            os.symlink(os.readlink("/" + d), os.path.join(rootfs, d))
    cfg = copy.deepcopy(base)
    if plain:
        no_userns(cfg)
        cfg["linux"].pop("seccomp", None)
    cfg["linux"]["cgroupsPath"] = "drover-runtime-compare-" + name
    for m in cfg["mounts"]:
        if m["destination"] == "/run/drover/state":
            m["source"] = bundle + "/state"
        elif m["destination"] == "/job":
            m["source"] = job
    if any(n["type"] == "user" for n in cfg["linux"]["namespaces"]):
        for d in ("/state", "/job", "/job/logs", "/job/outputs"):
            os.lchown(bundle + d, HOST_ID, HOST_ID)
    with open(bundle + "/config.json", "w") as out:
        json.dump(cfg, out, indent=1)
    return bundle


def cpu_of_children():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_once(runtime, root, bundle, cid, log):
    """The agent's sequence: wall ms of run, wait, delete, then CPU ms of each and in all.

    The CPU of `wait` is the container's PID 1, reaped then: with runc that includes
    `runc init`, the runtime's own set-up inside the container's process before it execs."""
    cpu0 = cpu_of_children()
    t0 = time.perf_counter()
    pid_file = bundle + "/runtime.pid"
    with open(log, "ab") as out:
        run = subprocess.run([runtime, "--root", root, "run", "--detach", "--bundle", bundle,
                              "--pid-file", pid_file, cid],
                             stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    t1 = time.perf_counter()
    cpu1 = cpu_of_children()
    if run.returncode != 0:
        subprocess.run([runtime, "--root", root, "delete", "--force", cid], capture_output=True)
        with open(log, "rb") as f:
            sys.exit(f"{runtime} run --detach exited {run.returncode}: "
                     f"{f.read()[-400:].decode(errors='replace')}")
    with open(pid_file) as f:
        pid = int(f.read().strip())
    os.remove(pid_file)
    try:
        _, status = os.waitpid(pid, 0)  # PID 1 is our child: we are its subreaper
    except ChildProcessError:
        # Exited and reaped before the runtime itself had exited (crun, for a PID 1 that
        # ends at once): the runtime's own rusage, reaped by us, holds its CPU.
        status = 0
        while os.path.exists(f"/proc/{pid}"):
            time.sleep(0.001)
    t2 = time.perf_counter()
    cpu2 = cpu_of_children()
    if status != 0:
        sys.exit(f"{runtime}: PID 1 ended with wait status {status}")
    subprocess.run([runtime, "--root", root, "delete", "--force", cid], check=True,
                   stdin=subprocess.DEVNULL, capture_output=True)
    t3 = time.perf_counter()
    cpu3 = cpu_of_children()
    return ((t1 - t0) * 1000, (t2 - t1) * 1000, (t3 - t2) * 1000,
            (cpu1 - cpu0) * 1000, (cpu2 - cpu1) * 1000, (cpu3 - cpu2) * 1000,
            (cpu3 - cpu0) * 1000)


def legacy_cgroups():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0:
        sys.exit(f"unshare: {os.strerror(ctypes.get_errno())}")
    if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        sys.exit(f"mount --make-rprivate /: {os.strerror(ctypes.get_errno())}")
    libc.umount2(b"/sys/fs/cgroup/unified", 0)  # absent on a v1 or v2 machine: fine


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("config")
    parser.add_argument("--runtime", action="append", required=True, help="NAME=PATH")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--plain", action="store_true")
    parser.add_argument("--legacy-cgroups", action="store_true")
    parser.add_argument("--work", default="/var/tmp", help="where the scratch folder goes")
    args = parser.parse_args()
    if args.legacy_cgroups:
        legacy_cgroups()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit("cannot become a child subreaper")
    with open(args.config) as f:
        base = json.load(f)
    runtimes = dict(spec.split("=", 1) for spec in args.runtime)
    work = tempfile.mkdtemp(prefix="drover-runtime-compare-", dir=args.work)
    os.chmod(work, 0o711)  # the container's root (HOST_ID) passes through it
    variants = {}
    for name, path in runtimes.items():
        variants[name] = (path, False)
        if args.plain:
            variants[name + "-plain"] = (path, True)
    try:
        bundles = {name: make_bundle(work, name, base, plain)
                   for name, (_, plain) in variants.items()}
        times = {name: [] for name in variants}
        count = 0
        for round_ in range(args.runs + 1):
            for name, (path, _) in variants.items():
                count += 1
                took = run_once(path, work + "/root-" + name, bundles[name],
                                f"drover-compare-{os.getpid()}-{count}", work + "/log-" + name)
                if round_ > 0:
                    times[name].append(took)
        first = next(iter(variants))
        cpu_first = statistics.median(t[6] for t in times[first])
        print(f"{args.runs} runs each, round robin, load {os.getloadavg()[0]:.1f}; ms, medians")
        print(f"{'':<14} {'wall:':>8} {'':>8} {'':>8} {'':>8} {'CPU:':>8}")
        print(f"{'runtime':<14} {'run -d':>8} {'wait':>8} {'delete':>8} {'total':>8} "
              f"{'run -d':>8} {'PID 1':>8} {'delete':>8} {'total':>8} {'CPU/' + first:>10}")
        for name, values in times.items():
            med = [statistics.median(v[i] for v in values) for i in range(7)]
            total = statistics.median(v[0] + v[1] + v[2] for v in values)
            print(f"{name:<14} {med[0]:8.1f} {med[1]:8.1f} {med[2]:8.1f} {total:8.1f} "
                  f"{med[3]:8.1f} {med[4]:8.1f} {med[5]:8.1f} {med[6]:8.1f} "
                  f"{med[6] / cpu_first:10.2f}")
    finally:
        for name, (path, _) in variants.items():
            root = work + "/root-" + name
            if os.path.isdir(root):
                for cid in os.listdir(root):
                    subprocess.run([path, "--root", root, "delete", "--force", cid],
                                   capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
