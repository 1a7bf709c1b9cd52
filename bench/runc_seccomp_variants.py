#!/usr/bin/env python3
"""Times `runc run` of variants of one job container's OCI config, in the same run.

  bench/runc_seccomp_variants.py CONFIG [--runs 20] [--only NAME,NAME] [--work DIR]

CONFIG is the hardened config.json of drover-bench run-latency's "same config" baseline
(copy <baseline-root>/drover-bench-runc-PID/same-bundle/config.json while it runs: it is
BuildOciConfig's output for a host-image job running drover-init and `/bin/sh -c true`).
Each variant changes only the seccomp filter or the user namespace; each gets its own
bundle (host skeleton rootfs, state folder, job folder). The variants
run round-robin (one of each, then again), so they see the same machine, after one round
that is not counted. Prints each one's median and fastest `runc run`, and the difference
and ratio of medians to `plain` (neither seccomp nor a user namespace). Runs as root, with
runc in PATH. Written for issue 16 (docs/benchmarks.md, "Hardened containers").
"""
import argparse
import copy
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HOST_ID = 100000  # the config's user namespace maps 0 to this (drover-agent's default)
X86_64, X86, X32 = "SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"
AARCH64, ARM = "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"


def no_userns(cfg):
    linux = cfg["linux"]
    linux["namespaces"] = [n for n in linux["namespaces"] if n["type"] != "user"]
    linux.pop("uidMappings", None)
    linux.pop("gidMappings", None)
    for m in cfg["mounts"]:
        if m["destination"] == "/sys":  # as BuildOciConfig mounts it without a user namespace
            m.update(type="sysfs", source="sysfs", options=["nosuid", "noexec", "nodev", "ro"])


def no_seccomp(cfg):
    cfg["linux"].pop("seccomp", None)


def arches(names):
    def mutate(cfg):
        cfg["linux"]["seccomp"]["architectures"] = names
    return mutate


def no_arg_rules(cfg):
    # The same syscalls allowed whatever their arguments (weaker: for measuring only).
    seccomp = cfg["linux"]["seccomp"]
    seccomp["syscalls"] = [r for r in seccomp["syscalls"] if "args" not in r]
    seccomp["syscalls"][0]["names"] += ["clone", "unshare", "personality"]


def chain(*mutations):
    def mutate(cfg):
        for m in mutations:
            m(cfg)
    return mutate


VARIANTS = {
    "plain": chain(no_seccomp, no_userns),
    "userns-only": no_seccomp,
    "config-as-given": chain(),
    "seccomp-5arch": arches([X86_64, X86, X32, AARCH64, ARM]),
    "seccomp-5arch-no-userns": chain(arches([X86_64, X86, X32, AARCH64, ARM]), no_userns),
    "seccomp-3arch": arches([X86_64, X86, X32]),
    "seccomp-x86_64+x86": arches([X86_64, X86]),
    "seccomp-x86_64": arches([X86_64]),
    "seccomp-x86_64-no-arg-rules": chain(arches([X86_64]), no_arg_rules),
}


def make_bundle(work, name, base, mutate):
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
    mutate(cfg)
    cfg["linux"]["cgroupsPath"] = "drover-seccomp-variants-" + name
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("config")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--only", default="", help="comma-separated variant names")
    parser.add_argument("--work", default="/var/tmp", help="where the scratch folder goes")
    args = parser.parse_args()
    with open(args.config) as f:
        base = json.load(f)
    variants = VARIANTS
    if args.only:
        variants = {name: VARIANTS[name] for name in args.only.split(",")}
    work = tempfile.mkdtemp(prefix="drover-seccomp-variants-", dir=args.work)
    os.chmod(work, 0o711)  # the container's root (HOST_ID) passes through it
    try:
        bundles = {name: make_bundle(work, name, base, m) for name, m in variants.items()}
        times = {name: [] for name in variants}
        count = 0
        for round_ in range(args.runs + 1):
            for name, bundle in bundles.items():
                count += 1
                cid = f"drover-variants-{os.getpid()}-{count}"
                start = time.perf_counter()
                run = subprocess.run(["runc", "--root", work + "/runc", "run", "--bundle", bundle,
                                      cid], stdin=subprocess.DEVNULL, capture_output=True)
                took = (time.perf_counter() - start) * 1000
                if run.returncode != 0:
                    subprocess.run(["runc", "--root", work + "/runc", "delete", "--force", cid],
                                   capture_output=True)
                    sys.exit(f"{name}: runc run exited {run.returncode}: "
                             f"{run.stderr.decode(errors='replace')[-400:]}")
                if round_ > 0:
                    times[name].append(took)
        plain = statistics.median(times["plain"]) if "plain" in times else None
        print(f"{args.runs} runs each, load {os.getloadavg()[0]:.1f}")
        print(f"{'variant':<30} {'p50 ms':>8} {'min ms':>8} {'- plain':>8} {'ratio':>6}")
        for name, values in times.items():
            p50 = statistics.median(values)
            extra = f" {p50 - plain:8.1f} {p50 / plain:6.2f}" if plain else ""
            print(f"{name:<30} {p50:8.1f} {min(values):8.1f}{extra}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
