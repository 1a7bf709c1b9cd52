#include "agent/runtime/oci_spec.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace drover::agent {
namespace {

constexpr int64_t kMiB = 1024 * 1024;
constexpr int64_t kCpuPeriodUs = 100000;
// The kernel refuses CFS quotas under 1 ms.
constexpr int64_t kMinCpuQuotaUs = 1000;

bool ValidId(absl::string_view id) {
  if (id.empty() || id.size() > 128 || id == "." || id == "..") return false;
  for (char c : id) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// An absolute path without "." or ".." components.
bool CleanAbsolutePath(absl::string_view path) {
  if (!absl::StartsWith(path, "/")) return false;
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part == "." || part == "..") return false;
  }
  return path.find('\0') == absl::string_view::npos;
}

bool ValidHostname(absl::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  for (char c : name) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.';
    if (!ok) return false;
  }
  return name.front() != '-' && name.front() != '.';
}

Json Mount(absl::string_view destination, absl::string_view type, absl::string_view source,
           std::vector<std::string> options) {
  Json mount = Json::object();
  mount["destination"] = std::string(destination);
  mount["type"] = std::string(type);
  mount["source"] = std::string(source);
  if (!options.empty()) mount["options"] = Json(options);
  return mount;
}

// A bind mount; read-only binds of folders are read-only recursively (`rro`, runc >= 1.1,
// kernel >= 5.12) so that a submount under the source is not writable either. A file has no
// submounts: `ro` is all of it, and crun (1.8) refuses `rro` on a file ("open mount target:
// Not a directory").
Json Bind(absl::string_view source, absl::string_view destination, bool read_only,
          bool file = false) {
  std::vector<std::string> options = {"rbind", "nosuid", "nodev"};
  if (read_only) {
    options.push_back("ro");
    if (!file) options.push_back("rro");
  } else {
    options.push_back("rw");
  }
  return Mount(destination, "bind", source, std::move(options));
}

bool HasVariable(const std::vector<std::string>& env, absl::string_view name) {
  for (const std::string& entry : env) {
    if (absl::StartsWith(entry, absl::StrCat(name, "="))) return true;
  }
  return false;
}


// clone(2) and unshare(2) flags that make new namespaces: CLONE_NEWNS, CLONE_NEWCGROUP,
// CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET. For clone the low
// byte is the exit signal; unshare also takes CLONE_NEWTIME (0x80).
constexpr int64_t kCloneNamespaceFlags = 0x7E020000;
constexpr int64_t kUnshareNamespaceFlags = kCloneNamespaceFlags | 0x80;
constexpr int kEperm = 1;
constexpr int kEnosys = 38;

// One rule: `names` allowed when argument `index` masked with `mask` equals `value`.
Json MaskedArgRule(const std::vector<std::string>& names, int index, int64_t mask,
                   int64_t value) {
  Json rule = Json::object();
  rule["names"] = Json(names);
  rule["action"] = "SCMP_ACT_ALLOW";
  Json arg = Json::object();
  arg["index"] = index;
  arg["value"] = mask;
  arg["valueTwo"] = value;
  arg["op"] = "SCMP_CMP_MASKED_EQ";
  rule["args"] = Json::array({std::move(arg)});
  return rule;
}

}  // namespace

const std::vector<std::string>& DefaultCapabilities() {
  static const auto* caps = new std::vector<std::string>{
      "CAP_CHOWN",      "CAP_DAC_OVERRIDE", "CAP_FOWNER",  "CAP_FSETID",           "CAP_KILL",
      "CAP_SETGID",     "CAP_SETUID",       "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
      "CAP_AUDIT_WRITE"};
  return *caps;
}

const std::vector<std::string>& SeccompAllowedSyscalls() {
  // Names libseccomp does not know on this machine are skipped by runc, so newer syscalls and
  // the 32-bit and aarch64 names can be listed together.
  static const auto* names = new std::vector<std::string>{
      // Files and folders.
      "access", "chdir", "chmod", "chown", "chown32", "close", "close_range", "copy_file_range",
      "creat", "dup", "dup2", "dup3", "faccessat", "faccessat2", "fadvise64", "fadvise64_64",
      "fallocate", "fchdir", "fchmod", "fchmodat", "fchmodat2", "fchown", "fchown32",
      "fchownat", "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock",
      "fremovexattr", "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64",
      "fsync", "ftruncate", "ftruncate64", "futimesat", "getcwd", "getdents", "getdents64",
      "getxattr", "inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch",
      "lchown", "lchown32", "lgetxattr", "link", "linkat", "listxattr", "llistxattr",
      "lremovexattr", "lseek", "_llseek", "lsetxattr", "lstat", "lstat64", "mkdir", "mkdirat",
      // mknod makes fifos and sockets; device nodes need CAP_MKNOD, which jobs lack.
      "mknod", "mknodat", "newfstatat", "open", "openat", "openat2", "pipe", "pipe2", "pread64",
      "preadv",
      "preadv2", "pwrite64", "pwritev", "pwritev2", "read", "readahead", "readlink",
      "readlinkat", "readv", "removexattr", "rename", "renameat", "renameat2", "rmdir",
      "sendfile", "sendfile64", "setxattr", "splice", "stat", "stat64", "statfs", "statfs64",
      "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs", "tee", "truncate",
      "truncate64", "umask", "unlink", "unlinkat", "utime", "utimensat", "utimensat_time64",
      "utimes", "vmsplice", "write", "writev", "chroot",
      // Memory.
      "brk", "get_mempolicy", "madvise", "mbind", "membarrier", "memfd_create", "mincore",
      "mlock", "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mremap", "msync", "munlock",
      "munlockall", "munmap", "pkey_alloc", "pkey_free", "pkey_mprotect", "remap_file_pages",
      "set_mempolicy", "set_mempolicy_home_node", "cachestat", "map_shadow_stack",
      // Processes, threads, signals (clone, clone3, unshare, personality: below).
      "arch_prctl", "capget", "capset", "execve", "execveat", "exit", "exit_group", "fork",
      "get_robust_list", "get_thread_area", "getcpu", "getegid", "getegid32", "geteuid",
      "geteuid32", "getgid", "getgid32", "getgroups", "getgroups32", "getitimer", "getpgid",
      "getpgrp", "getpid", "getppid", "getpriority", "getresgid", "getresgid32", "getresuid",
      "getresuid32", "getrlimit", "getrusage", "getsid", "gettid", "getuid", "getuid32",
      "ioprio_get", "ioprio_set", "kill", "nice", "pause", "pidfd_open", "pidfd_send_signal",
      "prctl", "prlimit64", "restart_syscall", "rseq", "rt_sigaction", "rt_sigpending",
      "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait",
      "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_get_priority_max",
      "sched_get_priority_min", "sched_getaffinity", "sched_getattr", "sched_getparam",
      "sched_getscheduler", "sched_rr_get_interval", "sched_rr_get_interval_time64",
      "sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler",
      "sched_yield", "seccomp", "set_robust_list", "set_thread_area", "set_tid_address",
      "setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups",
      "setgroups32", "setitimer", "setpgid", "setpriority", "setregid", "setregid32",
      "setresgid", "setresgid32", "setresuid", "setresuid32", "setreuid", "setreuid32",
      "setrlimit", "setsid", "setuid", "setuid32", "sigaltstack", "signalfd", "signalfd4",
      "sigprocmask", "sigreturn", "tgkill", "tkill", "ugetrlimit", "vfork", "wait4", "waitid",
      "waitpid", "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self",
      // Waiting and time (reading clocks only).
      "alarm", "clock_getres", "clock_getres_time64", "clock_gettime", "clock_gettime64",
      "clock_nanosleep", "clock_nanosleep_time64", "epoll_create", "epoll_create1",
      "epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2", "epoll_wait",
      "epoll_wait_old", "eventfd", "eventfd2", "futex", "futex_time64", "futex_waitv",
      "futex_wait", "futex_wake", "futex_requeue", "gettimeofday", "nanosleep", "_newselect",
      "poll", "ppoll", "ppoll_time64", "pselect6", "pselect6_time64", "select", "time",
      "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime", "timer_gettime64",
      "timer_settime", "timer_settime64", "timerfd_create", "timerfd_gettime",
      "timerfd_gettime64", "timerfd_settime", "timerfd_settime64", "times",
      // Networking (raw sockets need CAP_NET_RAW, which jobs lack).
      "accept", "accept4", "bind", "connect", "getpeername", "getsockname", "getsockopt",
      "listen", "recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "send",
      "sendmmsg", "sendmsg", "sendto", "setsockopt", "shutdown", "socket", "socketcall",
      "socketpair",
      // System V and POSIX IPC (the container's own IPC namespace), asynchronous I/O.
      "ipc", "msgctl", "msgget", "msgrcv", "msgsnd", "semctl", "semget", "semop", "semtimedop",
      "semtimedop_time64", "shmat", "shmctl", "shmdt", "shmget", "mq_getsetattr", "mq_notify",
      "mq_open", "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend",
      "mq_timedsend_time64", "mq_unlink", "io_cancel", "io_destroy", "io_getevents",
      "io_pgetevents", "io_pgetevents_time64", "io_setup", "io_submit",
      // Devices the container has (GPUs), and the system's description of itself.
      "ioctl", "getrandom", "sysinfo", "uname", "sethostname", "setdomainname"};
  return *names;
}

std::string NativeSeccompArchitecture() {
#if defined(__x86_64__)
  return "SCMP_ARCH_X86_64";
#elif defined(__aarch64__)
  return "SCMP_ARCH_AARCH64";
#else
  // runc then filters for its own architecture only, the same thing.
  return "";
#endif
}

Json DefaultSeccompProfile() {
  Json profile = Json::object();
  profile["defaultAction"] = "SCMP_ACT_ERRNO";
  profile["defaultErrnoRet"] = kEperm;
  // The node's own architecture only. A system call of any other ABI (i386 through
  // `int 0x80`, x32, 32-bit ARM on aarch64) gets libseccomp's bad-architecture action, which
  // runc leaves at its default: the thread is killed with SIGSYS, stricter than the allowlist
  // (verified with runc 1.1.5 and libseccomp 2.5.4; docs/containers.md). Each architecture
  // listed costs runc several milliseconds of filter compilation at every container start:
  // the five listed before (x86_64, x86, x32, aarch64, arm) cost about 50 ms
  // (docs/benchmarks.md).
  const std::string arch = NativeSeccompArchitecture();
  if (!arch.empty()) profile["architectures"] = Json::array({arch});
  Json& syscalls = profile["syscalls"] = Json::array();
  Json allowed = Json::object();
  allowed["names"] = Json(SeccompAllowedSyscalls());
  allowed["action"] = "SCMP_ACT_ALLOW";
  syscalls.push_back(std::move(allowed));
  // Threads and processes, never new namespaces (a user namespace would give the job
  // every capability over what it creates there, and with them the kernel's less
  // hardened code: mount, netfilter...). The flags are argument 0 on x86_64 and aarch64.
  syscalls.push_back(MaskedArgRule({"clone"}, 0, kCloneNamespaceFlags, 0));
  syscalls.push_back(MaskedArgRule({"unshare"}, 0, kUnshareNamespaceFlags, 0));
  // clone3 takes its flags in memory, out of a filter's reach: ENOSYS makes libc fall back
  // to clone.
  Json clone3 = Json::object();
  clone3["names"] = Json::array({"clone3"});
  clone3["action"] = "SCMP_ACT_ERRNO";
  clone3["errnoRet"] = kEnosys;
  syscalls.push_back(std::move(clone3));
  // personality: reading it, Linux, and the address-layout flags programs ask for; not the
  // ones that weaken the address space layout randomisation of a setuid program.
  for (int64_t persona : {int64_t{0}, int64_t{0x8}, int64_t{0x20000}, int64_t{0x20008},
                          int64_t{0xffffffff}}) {
    syscalls.push_back(MaskedArgRule({"personality"}, 0, 0xffffffff, persona));
  }
  return profile;
}

const std::vector<std::string>& DefaultMaskedPaths() {
  static const auto* paths = new std::vector<std::string>{"/proc/acpi",
                                                          "/proc/asound",
                                                          "/proc/kcore",
                                                          "/proc/keys",
                                                          "/proc/latency_stats",
                                                          "/proc/timer_list",
                                                          "/proc/timer_stats",
                                                          "/proc/sched_debug",
                                                          "/sys/firmware",
                                                          "/proc/scsi",
                                                          "/sys/devices/virtual/powercap"};
  return *paths;
}

const std::vector<std::string>& DefaultReadonlyPaths() {
  static const auto* paths = new std::vector<std::string>{"/proc/bus", "/proc/fs", "/proc/irq",
                                                          "/proc/sys", "/proc/sysrq-trigger"};
  return *paths;
}

absl::Status ValidateContainerSpec(const ContainerSpec& spec) {
  if (!ValidId(spec.id)) {
    return absl::InvalidArgumentError(
        absl::StrCat("container id '", spec.id, "': use 1 to 128 characters of [A-Za-z0-9_.-]"));
  }
  auto bad = [&](absl::string_view field, absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("container '", spec.id, "': ", field, " ", why));
  };
  if (!CleanAbsolutePath(spec.bundle_dir) || spec.bundle_dir == "/") {
    return bad("bundle_dir",
               absl::StrCat("'", spec.bundle_dir, "' must be an absolute path below /"));
  }
  if (!spec.image_rootfs.empty() && !CleanAbsolutePath(spec.image_rootfs)) {
    return bad("image_rootfs", absl::StrCat("'", spec.image_rootfs, "' must be an absolute path"));
  }
  if (!CleanAbsolutePath(spec.job_dir)) {
    return bad("job_dir", absl::StrCat("'", spec.job_dir, "' must be an absolute path"));
  }
  if (!CleanAbsolutePath(spec.cwd)) {
    return bad("cwd", absl::StrCat("'", spec.cwd, "' must be an absolute path in the container"));
  }
  if (spec.args.empty() || spec.args[0].empty()) return bad("args", "must name a program");
  for (const std::string& entry : spec.env) {
    size_t eq = entry.find('=');
    if (eq == std::string::npos || eq == 0) {
      return bad("env", absl::StrCat("entry '", entry, "' must be KEY=VALUE"));
    }
  }
  for (const BindMount& mount : spec.mounts) {
    if (!CleanAbsolutePath(mount.source)) {
      return bad("mounts", absl::StrCat("source '", mount.source, "' must be an absolute path"));
    }
    if (!CleanAbsolutePath(mount.destination) || mount.destination == "/") {
      return bad("mounts", absl::StrCat("destination '", mount.destination,
                                        "' must be an absolute path below /"));
    }
    if (mount.destination == kContainerDroverDir ||
        absl::StartsWith(mount.destination, absl::StrCat(kContainerDroverDir, "/"))) {
      return bad("mounts",
                 absl::StrCat("destination '", mount.destination, "' is reserved for drover"));
    }
  }
  if (!spec.hostname.empty() && !ValidHostname(spec.hostname)) {
    return bad("hostname", absl::StrCat("'", spec.hostname, "' must be 1 to 63 of [A-Za-z0-9.-]"));
  }
  if (!spec.netns_path.empty() && !CleanAbsolutePath(spec.netns_path)) {
    return bad("netns_path", absl::StrCat("'", spec.netns_path, "' must be an absolute path"));
  }
  if (!std::isfinite(spec.cpus) || spec.cpus < 0 || spec.cpus > 4096) {
    return bad("cpus", absl::StrCat(spec.cpus, " must be from 0 (no limit) to 4096"));
  }
  if (spec.memory_mib < 0 || (spec.memory_mib > 0 && spec.memory_mib < 8)) {
    return bad("memory_mib", absl::StrCat(spec.memory_mib, " must be 0 (no limit) or at least 8"));
  }
  if (spec.pids_limit < 0) return bad("pids_limit", "must be 0 (no limit) or more");
  if (spec.shm_mib < 1) return bad("shm_mib", "must be at least 1");
  for (const DeviceNode& device : spec.devices) {
    if (!CleanAbsolutePath(device.path) || !absl::StartsWith(device.path, "/dev/")) {
      return bad("devices", absl::StrCat("'", device.path, "' must be a path under /dev/"));
    }
    if (!device.source.empty() && !CleanAbsolutePath(device.source)) {
      return bad("devices", absl::StrCat("source '", device.source, "' must be an absolute path"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Json> BuildOciConfig(const ContainerSpec& spec, const OciOptions& options) {
  absl::Status valid = ValidateContainerSpec(spec);
  if (!valid.ok()) return valid;

  Json config = Json::object();
  config["ociVersion"] = "1.0.2-dev";

  // Process.
  Json& process = config["process"] = Json::object();
  process["terminal"] = false;
  Json& user = process["user"] = Json::object();
  user["uid"] = 0;
  user["gid"] = 0;
  process["args"] = Json(spec.args);
  std::vector<std::string> env = spec.env;
  if (!HasVariable(env, "PATH")) {
    env.insert(env.begin(), "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  }
  if (!HasVariable(env, "HOME")) env.push_back("HOME=/root");
  process["env"] = Json(env);
  process["cwd"] = spec.cwd;
  Json& caps = process["capabilities"] = Json::object();
  caps["bounding"] = Json(DefaultCapabilities());
  caps["effective"] = Json(DefaultCapabilities());
  caps["permitted"] = Json(DefaultCapabilities());
  if (options.nofile_limit > 0) {
    Json limit = Json::object();
    limit["type"] = "RLIMIT_NOFILE";
    limit["hard"] = static_cast<int64_t>(options.nofile_limit);
    limit["soft"] = static_cast<int64_t>(options.nofile_limit);
    process["rlimits"] = Json::array({std::move(limit)});
  }
  process["noNewPrivileges"] = true;

  Json& root = config["root"] = Json::object();
  root["path"] = options.rootfs;
  root["readonly"] = options.host_os;
  config["hostname"] = spec.hostname.empty() ? spec.id.substr(0, 63) : spec.hostname;

  // Mounts, parents before children.
  Json& mounts = config["mounts"] = Json::array();
  mounts.push_back(Mount("/proc", "proc", "proc", {"nosuid", "noexec", "nodev"}));
  mounts.push_back(
      Mount("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}));
  mounts.push_back(
      Mount("/dev/pts", "devpts", "devpts",
            {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}));
  mounts.push_back(Mount(
      "/dev/shm", "tmpfs", "shm",
      {"nosuid", "noexec", "nodev", "mode=1777", absl::StrCat("size=", spec.shm_mib * 1024, "k")}));
  mounts.push_back(Mount("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}));
  const bool userns = options.userns.size > 0;
  if (userns) {
    // A user namespace may mount sysfs only when it owns the network namespace, and jobs
    // share the node's (or a test host's): the node's /sys, read-only, as Docker does.
    mounts.push_back(
        Mount("/sys", "bind", "/sys", {"rbind", "nosuid", "noexec", "nodev", "ro", "rro"}));
  } else {
    mounts.push_back(Mount("/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro"}));
  }
  mounts.push_back(
      Mount("/sys/fs/cgroup", "cgroup", "cgroup", {"nosuid", "noexec", "nodev", "relatime", "ro"}));
  if (options.host_os) {
    mounts.push_back(Bind("/usr", "/usr", true));
    mounts.push_back(Bind("/etc", "/etc", true));
    for (const std::string& dir : options.host_dir_binds) mounts.push_back(Bind(dir, dir, true));
    mounts.push_back(Mount("/tmp", "tmpfs", "tmpfs", {"nosuid", "nodev", "mode=1777"}));
    mounts.push_back(Mount("/run", "tmpfs", "tmpfs", {"nosuid", "nodev", "mode=755"}));
    mounts.push_back(Mount("/var", "tmpfs", "tmpfs", {"nosuid", "nodev", "mode=755"}));
    mounts.push_back(Mount("/root", "tmpfs", "tmpfs", {"nosuid", "nodev", "mode=700"}));
  }
  // Injected files live under their own tmpfs: no new mountpoint can be made under a
  // read-only bind, and an image's /run may hold anything.
  if (!options.init_binary.empty() || !options.state_dir.empty()) {
    mounts.push_back(Mount(kContainerDroverDir, "tmpfs", "tmpfs",
                           {"nosuid", "nodev", "mode=755", "size=1024k"}));
  }
  if (!options.init_binary.empty()) {
    mounts.push_back(
        Mount(kContainerInitPath, "bind", options.init_binary, {"bind", "ro", "nodev"}));
  }
  if (!options.state_dir.empty()) {
    mounts.push_back(Mount(kContainerStateDir, "bind", options.state_dir,
                           {"rbind", "rw", "nosuid", "nodev", "noexec"}));
  }
  mounts.push_back(Bind(spec.job_dir, "/job", false));
  for (const BindMount& mount : spec.mounts) {
    // What the source is, looked at now (the runtime mounts it right after): the one fact
    // of the node this function reads.
    std::error_code error;
    std::filesystem::file_status status = std::filesystem::status(mount.source, error);
    bool file = !error && std::filesystem::exists(status) && !std::filesystem::is_directory(status);
    mounts.push_back(Bind(mount.source, mount.destination, mount.read_only, file));
  }
  if (userns) {
    // No device node can be made in a user namespace: the node's own, bound.
    for (const OciDevice& device : options.devices) {
      mounts.push_back(Mount(device.path, "bind",
                             device.source.empty() ? device.path : device.source,
                             {"bind", "nosuid", "noexec", "rw"}));
    }
  }

  // Linux.
  Json& linux = config["linux"] = Json::object();
  if (!options.cgroups_path.empty()) linux["cgroupsPath"] = options.cgroups_path;
  Json& resources = linux["resources"] = Json::object();
  Json& device_rules = resources["devices"] = Json::array();
  Json deny_all = Json::object();
  deny_all["allow"] = false;
  deny_all["access"] = "rwm";
  device_rules.push_back(std::move(deny_all));
  for (const OciDevice& device : options.devices) {
    Json rule = Json::object();
    rule["allow"] = true;
    rule["type"] = std::string(1, device.type);
    rule["major"] = device.major;
    rule["minor"] = device.minor;
    rule["access"] = "rwm";
    device_rules.push_back(std::move(rule));
  }
  if (spec.memory_mib > 0) {
    Json& memory = resources["memory"] = Json::object();
    memory["limit"] = spec.memory_mib * kMiB;
    // memory+swap equal to memory: the job gets no swap.
    memory["swap"] = spec.memory_mib * kMiB;
  }
  if (spec.cpus > 0) {
    Json& cpu = resources["cpu"] = Json::object();
    int64_t quota = std::max<int64_t>(kMinCpuQuotaUs, std::llround(spec.cpus * kCpuPeriodUs));
    cpu["quota"] = quota;
    cpu["period"] = kCpuPeriodUs;
  }
  if (spec.pids_limit > 0) {
    Json& pids = resources["pids"] = Json::object();
    pids["limit"] = spec.pids_limit;
  }

  Json& namespaces = linux["namespaces"] = Json::array();
  for (const char* type : {"pid", "ipc", "uts", "mount"}) {
    Json ns = Json::object();
    ns["type"] = type;
    namespaces.push_back(std::move(ns));
  }
  if (!spec.netns_path.empty()) {
    Json ns = Json::object();
    ns["type"] = "network";
    ns["path"] = spec.netns_path;
    namespaces.push_back(std::move(ns));
  }

  if (userns) {
    Json ns = Json::object();
    ns["type"] = "user";
    namespaces.push_back(std::move(ns));
    for (const char* key : {"uidMappings", "gidMappings"}) {
      Json mapping = Json::object();
      mapping["containerID"] = 0;
      mapping["hostID"] = options.userns.host_id;
      mapping["size"] = options.userns.size;
      linux[key] = Json::array({std::move(mapping)});
    }
  }

  if (!options.devices.empty() && !userns) {
    Json& devices = linux["devices"] = Json::array();
    for (const OciDevice& device : options.devices) {
      Json node = Json::object();
      node["path"] = device.path;
      node["type"] = std::string(1, device.type);
      node["major"] = device.major;
      node["minor"] = device.minor;
      node["fileMode"] = device.file_mode;
      node["uid"] = 0;
      node["gid"] = 0;
      devices.push_back(std::move(node));
    }
  }
  linux["maskedPaths"] = Json(DefaultMaskedPaths());
  linux["readonlyPaths"] = Json(DefaultReadonlyPaths());
  if (options.seccomp) linux["seccomp"] = DefaultSeccompProfile();
  return config;
}

}  // namespace drover::agent
