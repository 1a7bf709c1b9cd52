// A job cannot reach the host (issue 16, point 1): jobs in real runc containers (the host
// image, the agent's defaults) look at what they are and try what an attacker would, and
// the test checks what they see: a seccomp filter, a user namespace whose root is an
// unprivileged host uid, /etc/shadow unreadable, keyrings, new namespaces, mounts, bpf and
// ptrace refused, and a fork bomb that stops at the pids limit while the node runs the next
// job. Runs as root; x86_64 (the probes name syscall numbers).
#include <sys/stat.h>

#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/local_cluster.h"

namespace drover {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Low, so that a fork bomb reaches it at once on a small machine.
constexpr int kPidsLimit = 128;

class ContainerSecurityE2eTest : public testing::LocalClusterTest {
 protected:
  ContainerSecurityE2eTest()
      : LocalClusterTest({.agent_flags = {"--metrics-interval", "200ms", "--pids-limit",
                                          absl::StrCat(kPidsLimit)}}) {}

  // Runs `script` in a job to its end and returns what rank 0 printed.
  std::string RunToEnd(const std::string& script) {
    std::string id = Submit(Shell(script));
    Finish(id);
    return Logs(id, 0);
  }

  // Waits for COMPLETED; a failure shows what the job wrote to stderr.
  void Finish(const std::string& id) {
    jobs_->WaitFor(id, v1::JobStatus::COMPLETED, absl::Seconds(60), [&] {
      return absl::StrCat("\nstderr:\n", Logs(id, 0, v1::STDERR), "\nstdout:\n", Logs(id, 0));
    });
  }
};

TEST_F(ContainerSecurityE2eTest, AJobRunsUnderSeccompInAUserNamespace) {
  std::string out = RunToEnd(
      "grep '^Seccomp:' /proc/self/status; echo map $(cat /proc/self/uid_map); "
      "echo gidmap $(cat /proc/self/gid_map); echo uid $(id -u); "
      "echo caps $(grep '^CapEff:' /proc/self/status); "
      "grep '^NoNewPrivs:' /proc/self/status");
  EXPECT_THAT(out, HasSubstr("Seccomp:\t2\n")) << "a seccomp filter (mode 2)";
  EXPECT_THAT(out, Not(HasSubstr("map 0 0 4294967295"))) << "the node's own user namespace";
  EXPECT_THAT(out, HasSubstr("map 0 100000 65536\n")) << "root is host uid 100000";
  EXPECT_THAT(out, HasSubstr("gidmap 0 100000 65536\n"));
  EXPECT_THAT(out, HasSubstr("uid 0\n")) << "the job is root in its namespace";
  EXPECT_THAT(out, HasSubstr("NoNewPrivs:\t1\n"));
  // Its processes belong to host uid 100000 on the node: what it writes too.
  std::string id = Submit(Shell("echo model > $DROVER_OUTPUT_DIR/model.txt; echo written"));
  Finish(id);
  EXPECT_EQ(Logs(id, 0), "written\n");
}

TEST_F(ContainerSecurityE2eTest, HostFilesOnlyRootMayReadStayUnreadableInTheHostImage) {
  struct stat st {};
  if (stat("/etc/shadow", &st) != 0 || (st.st_mode & S_IROTH) != 0) {
    GTEST_SKIP() << "this node has no /etc/shadow that others cannot read";
  }
  std::string id = Submit(Shell(
      "cat /etc/shadow; echo cat=$?; head -c 20 /etc/shadow >/dev/null 2>&1; echo head=$?; "
      "ls /etc/passwd >/dev/null && echo passwd-visible"));
  WaitFor(id, v1::JobStatus::COMPLETED);
  std::string out = Logs(id, 0);
  EXPECT_THAT(out, HasSubstr("cat=1\n")) << out;
  EXPECT_THAT(out, HasSubstr("head=1\n")) << out;
  EXPECT_THAT(out, HasSubstr("passwd-visible\n")) << "the host image still works";
  EXPECT_THAT(Logs(id, 0, v1::STDERR), HasSubstr("Permission denied"));
  EXPECT_THAT(out, Not(HasSubstr("root:"))) << "the host's password hashes";
}

// Each probe prints "NAME allowed" or "NAME refused ERRNO"; threads and processes, which
// every training job makes, must still work.
constexpr char kProbes[] = R"(/usr/bin/python3 - <<'EOF'
import ctypes, errno, os, threading
libc = ctypes.CDLL(None, use_errno=True)
def probe(name, call):
    ctypes.set_errno(0)
    result = call()
    if result == -1:
        print(name, "refused", errno.errorcode.get(ctypes.get_errno(), ctypes.get_errno()))
    else:
        print(name, "allowed")
# x86_64 syscall numbers.
probe("keyctl", lambda: libc.syscall(250, 0, ctypes.c_long(-4), 0))  # KEYCTL_GET_KEYRING_ID, user keyring
probe("add_key", lambda: libc.syscall(248, b"user", b"drover", b"x", 1, ctypes.c_long(-4)))
probe("request_key", lambda: libc.syscall(249, b"user", b"drover", None, 0))
probe("unshare-user", lambda: libc.unshare(0x10000000))  # CLONE_NEWUSER
probe("unshare-mount", lambda: libc.unshare(0x00020000))  # CLONE_NEWNS
probe("unshare-net", lambda: libc.unshare(0x40000000))  # CLONE_NEWNET
probe("mount", lambda: libc.mount(b"none", b"/tmp", b"tmpfs", 0, None))
probe("bpf", lambda: libc.syscall(321, 0, None, 0))
probe("ptrace", lambda: libc.ptrace(16, os.getppid(), None, None))  # PTRACE_ATTACH
probe("perf_event_open", lambda: libc.syscall(298, None, 0, -1, -1, 0))
probe("init_module", lambda: libc.syscall(175, None, 0, b""))
probe("kexec_load", lambda: libc.syscall(246, 0, 0, None, 0))
probe("swapon", lambda: libc.syscall(167, b"/tmp/swap", 0))
probe("reboot", lambda: libc.syscall(169, 0xfee1dead, 672274793, 0x4321fedc, None))
probe("open_by_handle_at", lambda: libc.syscall(304, -100, None, 0))
done = []
t = threading.Thread(target=lambda: done.append(1))
t.start(); t.join()
print("thread", "ran" if done else "failed")
pid = os.fork()
if pid == 0:
    os._exit(7)
print("fork", "ran" if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 7 else "failed")
EOF
unshare -U true 2>/dev/null; echo unshare-cli=$?
mkdir -p /tmp/m && mount -t tmpfs none /tmp/m 2>/dev/null; echo mount-cli=$?
)";

TEST_F(ContainerSecurityE2eTest, KeyringsNewNamespacesMountsAndTheKernelsToolsAreRefused) {
  std::string out = RunToEnd(kProbes);
  for (const char* name : {"keyctl", "add_key", "request_key", "unshare-user", "unshare-mount",
                           "unshare-net", "mount", "bpf", "ptrace", "perf_event_open",
                           "init_module", "kexec_load", "swapon", "reboot",
                           "open_by_handle_at"}) {
    EXPECT_THAT(out, HasSubstr(absl::StrCat(name, " refused EPERM\n"))) << name << "\n" << out;
  }
  EXPECT_THAT(out, HasSubstr("thread ran\n"));
  EXPECT_THAT(out, HasSubstr("fork ran\n"));
  EXPECT_THAT(out, Not(HasSubstr("unshare-cli=0"))) << out;
  EXPECT_THAT(out, Not(HasSubstr("mount-cli=0"))) << out;
}

// The filter lists x86_64 alone: a system call of the i386 ABI (`int 0x80`, which 64-bit
// processes may use too) or of the x32 ABI gets the bad-architecture action, SIGSYS, rather
// than slipping past an allowlist written for x86_64 numbers. Each probe runs in its own
// python, and the shell prints its status (128 + 31 for SIGSYS).
constexpr char kOtherAbiProbes[] = R"(/usr/bin/python3 - <<'EOF'
import ctypes, mmap
# mov eax, 20 (getpid in the i386 table); int 0x80; ret
code = b"\xb8\x14\x00\x00\x00\xcd\x80\xc3"
buf = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
buf.write(code)
call = ctypes.CFUNCTYPE(ctypes.c_long)(ctypes.addressof(ctypes.c_char.from_buffer(buf)))
print("i386 getpid returned", call(), flush=True)
EOF
echo i386=$?
/usr/bin/python3 -c 'import ctypes; print("x32 getpid returned", ctypes.CDLL(None).syscall(0x40000000 | 39), flush=True)'
echo x32=$?
/usr/bin/python3 -c 'import os; print("native pid", os.getpid(), flush=True)'
echo native=$?
)";

TEST_F(ContainerSecurityE2eTest, SystemCallsOfOtherAbisKillTheCaller) {
  std::string out = RunToEnd(kOtherAbiProbes);
  EXPECT_THAT(out, HasSubstr("i386=159\n")) << out;
  EXPECT_THAT(out, HasSubstr("x32=159\n")) << out;
  EXPECT_THAT(out, Not(HasSubstr("getpid returned"))) << "no other ABI's call returned\n" << out;
  EXPECT_THAT(out, HasSubstr("native=0\n")) << out;
}

TEST_F(ContainerSecurityE2eTest, AForkBombStopsAtThePidsLimitAndTheNodeRunsTheNextJob) {
  // Forks until the kernel says no, then reports how far it got and cleans up.
  std::string counted = Submit(Shell(R"(/usr/bin/python3 - <<'EOF'
import errno, os, signal
children = []
try:
    while len(children) < 100000:
        pid = os.fork()
        if pid == 0:
            signal.pause()
            os._exit(0)
        children.append(pid)
    print("no limit")
except OSError as e:
    print("forked", len(children), "then", errno.errorcode[e.errno])
for pid in children:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
EOF
)"));
  // A real one, left running. The job's shell must not fork once the bomb has taken every
  // pid, or it ends (exit code 2, "Cannot fork") before the test cancels it: what keeps the
  // job alive starts first, the bomb runs in one subshell (sh forks each side of a pipeline
  // itself), and the shell then only waits (a builtin).
  std::string bomb = Submit(Shell("sleep 600 & (b() { b | b & }; b) & wait"));
  Finish(counted);
  std::string out = Logs(counted, 0);
  std::vector<std::string> words = absl::StrSplit(out, ' ');
  ASSERT_EQ(words.size(), 4u) << out;
  EXPECT_EQ(words[0], "forked");
  int forked = 0;
  ASSERT_TRUE(absl::SimpleAtoi(words[1], &forked)) << out;
  // drover-init, sh and python count too.
  EXPECT_LE(forked, kPidsLimit) << out;
  EXPECT_GE(forked, kPidsLimit - 10) << out;
  EXPECT_EQ(words[3], "EAGAIN\n");

  // The node still serves: another job runs to its end while the bomb goes on.
  WaitFor(bomb, v1::JobStatus::RUNNING);
  std::string next = Submit(Shell("echo alive"));
  WaitFor(next, v1::JobStatus::COMPLETED, absl::Seconds(120));
  EXPECT_EQ(Logs(next, 0), "alive\n");
  grpc::ClientContext context;
  v1::CancelJobRequest request;
  request.set_job_id(bomb);
  v1::Job job;
  grpc::Status status = jobs_->stub().CancelJob(&context, request, &job);
  ASSERT_TRUE(status.ok()) << status.error_message();
  WaitFor(bomb, v1::JobStatus::CANCELED, absl::Seconds(60));
}

}  // namespace
}  // namespace drover
