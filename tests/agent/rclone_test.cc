// rclone for RCLONE datastores: the config file (mode 0600, passwords obscured, no value in
// any message), the mount and copy command lines, rclone's errors, and real mounts through
// FUSE of an `alias` remote (a local folder): read-only and read-write (written files are
// uploaded before the unmount), a failing mount that leaves nothing behind, and the
// clean-up of mounts an agent left. Mounts taken over from their records, as the next agent
// process does (also from another mount namespace), and records it refuses to trust (a
// reused pid, a symlink, none). The real-mount tests need root and /dev/fuse.
#include "agent/rclone.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/cluster.h"
#include "tests/testing/subprocess.h"

namespace drover::agent {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

v1::Datastore Remote(const std::string& name, std::map<std::string, std::string> options,
                     const std::string& path = "") {
  v1::Datastore store;
  store.set_name(name);
  store.set_type(v1::Datastore::RCLONE);
  store.set_path(path);
  for (auto& [key, value] : options) (*store.mutable_rclone_options())[key] = value;
  return store;
}

std::string Mountinfo() { return testing::ReadWholeFile("/proc/self/mountinfo"); }

// Whether a live (not zombie) process has `text` in its command line.
bool ProcessWith(const std::string& text) {
  std::error_code error;
  for (const auto& entry : fs::directory_iterator("/proc", error)) {
    std::string cmdline = testing::ReadWholeFile(entry.path().string() + "/cmdline");
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (cmdline.find(text) == std::string::npos) continue;
    std::string stat = testing::ReadWholeFile(entry.path().string() + "/stat");
    size_t paren = stat.rfind(')');
    if (paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z') {
      return true;
    }
  }
  return false;
}

TEST(RcloneConfigTest, WritesASectionPerRcloneDatastoreAndObscuresOnlyPasswordOptions) {
  v1::Datastore hostpath;
  hostpath.set_name("local");
  hostpath.set_type(v1::Datastore::HOSTPATH);
  std::vector<v1::Datastore> stores = {
      Remote("dav", {{"type", "webdav"}, {"url", "http://10.0.0.1:80"}, {"pass", "hunter2"},
                     {"user", "u"}}),
      hostpath,
      Remote("bucket", {{"type", "s3"}, {"secret_access_key", "s3cret"}})};
  absl::StatusOr<std::string> text = RcloneConfigText(
      stores,
      [](const std::string& type) -> absl::StatusOr<std::set<std::string>> {
        if (type == "webdav") return std::set<std::string>{"pass"};
        return std::set<std::string>{};
      },
      [](const std::string& value) -> absl::StatusOr<std::string> { return "OBSCURED(" + value + ")"; });
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text,
            "[dav]\npass = OBSCURED(hunter2)\ntype = webdav\nurl = http://10.0.0.1:80\nuser = u\n\n"
            "[bucket]\nsecret_access_key = s3cret\ntype = s3\n\n");
}

TEST(RcloneConfigTest, ErrorsNameTheDatastoreAndNeverAValue) {
  auto none = [](const std::string&) -> absl::StatusOr<std::set<std::string>> {
    return std::set<std::string>{"pass"};
  };
  auto failing = [](const std::string&) -> absl::StatusOr<std::string> {
    return absl::FailedPreconditionError("`rclone obscure` failed: broken");
  };
  absl::StatusOr<std::string> text =
      RcloneConfigText({Remote("dav", {{"type", "webdav"}, {"pass", "hunter2"}})}, none, failing);
  EXPECT_EQ(text.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(text.status().message()), HasSubstr("datastore 'dav': option `pass`"));
  EXPECT_THAT(std::string(text.status().message()), Not(HasSubstr("hunter2")));

  text = RcloneConfigText({Remote("two", {{"type", "webdav"}, {"pass", "a\nb"}})}, none,
                          [](const std::string& v) -> absl::StatusOr<std::string> { return v; });
  EXPECT_THAT(std::string(text.status().message()),
              HasSubstr("datastore 'two': the value of rclone option `pass` is not one line"));
  EXPECT_THAT(std::string(text.status().message()), Not(HasSubstr("a\nb")));

  text = RcloneConfigText({Remote("untyped", {{"url", "x"}})}, none, failing);
  EXPECT_THAT(std::string(text.status().message()),
              HasSubstr("datastore 'untyped': has no rclone option `type`"));
}

TEST(RcloneConfigTest, RealFileIsPrivateAndRcloneRevealsThePassword) {
  testing::TempDir dir;
  std::string path = dir.path() + "/rclone.conf";
  std::ofstream(path) << "old contents\n";
  chmod(path.c_str(), 0644);
  absl::Status written = WriteRcloneConfig(
      RcloneTools(), {Remote("dav", {{"type", "webdav"}, {"url", "http://h"}, {"pass", "hunter2"}})},
      path);
  ASSERT_TRUE(written.ok()) << written;
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::string text = testing::ReadWholeFile(path);
  EXPECT_THAT(text, HasSubstr("[dav]\n"));
  EXPECT_THAT(text, HasSubstr("url = http://h\n"));
  EXPECT_THAT(text, Not(HasSubstr("hunter2"))) << "webdav's pass is kept obscured";
  EXPECT_THAT(text, Not(HasSubstr("old contents")));
  // rclone reads it back as the password given.
  size_t at = text.find("pass = ");
  ASSERT_NE(at, std::string::npos);
  std::string obscured = text.substr(at + 7, text.find('\n', at) - at - 7);
  auto reveal = testing::RunCommand({"/usr/bin/rclone", "reveal", "--", obscured});
  ASSERT_TRUE(reveal.ok());
  EXPECT_EQ(reveal->out, "hunter2\n") << text << reveal->err;
}

TEST(RcloneConfigTest, UnknownBackendIsRefusedNamingTheDatastore) {
  testing::TempDir dir;
  absl::Status written = WriteRcloneConfig(
      RcloneTools(), {Remote("odd", {{"type", "no-such-backend"}, {"pass", "hunter2"}})},
      dir.path() + "/rclone.conf");
  EXPECT_EQ(written.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(written.message()),
              HasSubstr("datastore 'odd': rclone has no backend 'no-such-backend'"));
}

TEST(RcloneCommandTest, RemoteJoinsTheDatastorePathAndTheReference) {
  EXPECT_EQ(RcloneRemote(Remote("s3", {}, "bucket/prefix"), "train/a.txt"),
            "s3:bucket/prefix/train/a.txt");
  EXPECT_EQ(RcloneRemote(Remote("s3", {}, "bucket"), ""), "s3:bucket");
  EXPECT_EQ(RcloneRemote(Remote("dav", {}, ""), "x"), "dav:x");
  EXPECT_EQ(RcloneRemote(Remote("dav", {}, ""), ""), "dav:");
}

TEST(RcloneCommandTest, MountFlagsForReadOnlyAndReadWrite) {
  RcloneMountSpec spec{.datastore = "dav",
                       .node = "n1",
                       .config = "/w/a/rclone/rclone.conf",
                       .remote = "dav:data",
                       .mountpoint = "/w/mounts/j-1-1/dav",
                       .cache_dir = "/w/a/rclone/cache-dav",
                       .log_path = "/w/a/rclone/mount-dav.log"};
  EXPECT_THAT(RcloneMountArgs(RcloneTools(), spec),
              ElementsAre("rclone", "mount", "dav:data", "/w/mounts/j-1-1/dav", "--config",
                          "/w/a/rclone/rclone.conf", "--cache-dir", "/w/a/rclone/cache-dav",
                          "--read-only", "--vfs-cache-mode", "off", "--dir-cache-time", "1h"));
  spec.read_write = true;
  EXPECT_THAT(RcloneMountArgs({.rclone = "/opt/rclone"}, spec),
              ElementsAre("/opt/rclone", "mount", "dav:data", "/w/mounts/j-1-1/dav", "--config",
                          "/w/a/rclone/rclone.conf", "--cache-dir", "/w/a/rclone/cache-dav",
                          "--vfs-cache-mode", "writes", "--vfs-write-back", "0s"));
}

TEST(RcloneCommandTest, ErrorIsTheLastErrorLineWithoutTimestamp) {
  EXPECT_EQ(RcloneError("2026/11/26 15:04:40 NOTICE: webdav root '': something\n"
                        "2026/11/26 15:04:44 ERROR : IO error: couldn't list files: Unauthorized: "
                        "401 Unauthorized\n"
                        "2026/11/26 15:04:45 ERROR : /w/mounts/x: Unmounted rclone mount\n"),
            "IO error: couldn't list files: Unauthorized: 401 Unauthorized");
  EXPECT_EQ(RcloneError("2026/11/26 15:09:21 ERROR : webdav root 'nope': error reading source "
                        "root directory: directory not found\n"
                        "2026/11/26 15:09:21 ERROR : Attempt 3/3 failed with 1 errors and: "
                        "directory not found\n"
                        "2026/11/26 15:09:21 Failed to copyto: directory not found\n"),
            "webdav root 'nope': error reading source root directory: directory not found");
  EXPECT_EQ(RcloneError("2026/11/26 15:04:27 Failed to create file system for \"ds:\": bad\n"),
            "Failed to create file system for \"ds:\": bad");
  EXPECT_EQ(RcloneError(""), "no message from rclone");
}

TEST(RcloneRecordTest, RecordTextRoundTripsAndDamageIsRefused) {
  RcloneProcessRecord record{
      .pid = 4242, .start_time = 987654321, .state = RcloneProcessRecord::State::kReleasing};
  EXPECT_EQ(RcloneRecordText(record), "pid=4242 start=987654321 state=releasing\n");
  absl::StatusOr<RcloneProcessRecord> read = ParseRcloneRecord(RcloneRecordText(record));
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->pid, 4242);
  EXPECT_EQ(read->start_time, 987654321u);
  EXPECT_EQ(read->state, RcloneProcessRecord::State::kReleasing);
  for (const char* damaged : {"", "pid=12 start=3", "pid=0 start=3 state=mounted",
                              "pid=-5 start=3 state=mounted", "pid=1 start=x state=mounted",
                              "pid=1 start=3 state=gone"}) {
    EXPECT_FALSE(ParseRcloneRecord(damaged).ok()) << damaged;
  }
}

TEST(RcloneRecordTest, StartTimeIsTheTwentySecondFieldWhateverTheProcessName) {
  // A name with spaces and parentheses cannot shift the fields.
  std::string stat =
      "77 (evil) 1 2 3 (x) S 1 77 77 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 123456 5000 "
      "300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
  EXPECT_EQ(StartTimeFromStat(stat), std::optional<uint64_t>(123456));
  EXPECT_EQ(StartTimeFromStat("77 (short) S 1 2"), std::nullopt);
  EXPECT_EQ(StartTimeFromStat(""), std::nullopt);
  EXPECT_TRUE(StartTimeFromStat(testing::ReadWholeFile("/proc/self/stat")).has_value());
}

TEST(RcloneCommandTest, MountsUnderAFolderFromMountinfo) {
  std::string mountinfo =
      "22 1 0:21 / /proc rw,nosuid - proc proc rw\n"
      "44 27 0:39 / /w/mounts/j-1-1/dav ro,nosuid,nodev,relatime - fuse.rclone dav: ro,user_id=0\n"
      "45 27 0:40 / /w/mounts/j-2-1/with\\040space rw - fuse.rclone x: rw\n"
      "46 27 0:41 / /w/mounts/j-2-1/sshfs rw - fuse.sshfs h: rw\n"
      "47 27 0:42 / /w2/mounts/j-3-1/dav rw shared:5 - fuse.rclone y: rw\n"
      "48 44 0:43 / /w/mounts/j-1-1/dav/inner rw master:2 - fuse.rclone z: rw\n";
  EXPECT_THAT(RcloneMountsUnder(mountinfo, "/w"),
              ElementsAre("/w/mounts/j-2-1/with space", "/w/mounts/j-1-1/dav/inner",
                          "/w/mounts/j-1-1/dav"));
  EXPECT_THAT(RcloneMountsUnder(mountinfo, "/w/mounts/j-1-1/dav"),
              ElementsAre("/w/mounts/j-1-1/dav/inner", "/w/mounts/j-1-1/dav"));
  EXPECT_THAT(RcloneMountsUnder(mountinfo, "/elsewhere"), ElementsAre());
}

// Real mounts of an `alias` remote: a local folder seen through rclone and FUSE.
class RcloneMountTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0 || access("/dev/fuse", R_OK | W_OK) != 0) {
      GTEST_SKIP() << "FUSE mounts need root and /dev/fuse";
    }
    remote_ = dir_.path() + "/remote";
    fs::create_directories(remote_ + "/data");
    std::ofstream(remote_ + "/data/a.txt") << "sample a\n";
    config_ = dir_.path() + "/rclone.conf";
    ASSERT_TRUE(WriteRcloneConfig(tools_, {Remote("store", {{"type", "alias"}, {"remote", remote_}})},
                                  config_)
                    .ok());
  }

  RcloneMountSpec Spec(bool read_write, const std::string& config = "") {
    return {.datastore = "store",
            .node = "n1",
            .config = config.empty() ? config_ : config,
            .remote = "store:data",
            .mountpoint = dir_.path() + "/mounts/store",
            .cache_dir = dir_.path() + "/cache",
            .log_path = dir_.path() + "/mount.log",
            .read_write = read_write,
            .record_path = record_};
  }

  // The state the mount's record says.
  std::string RecordedState() {
    absl::StatusOr<RcloneProcessRecord> record =
        ParseRcloneRecord(testing::ReadWholeFile(record_));
    if (!record.ok()) return record.status().ToString();
    switch (record->state) {
      case RcloneProcessRecord::State::kMounted: return "mounted";
      case RcloneProcessRecord::State::kReleasing: return "releasing";
      case RcloneProcessRecord::State::kReleased: return "released";
    }
    return "?";
  }

  // Reaps `pid`, a child of this test: the agent that left it is this test, and has not
  // exited (an exited agent's rclone is reaped by whoever inherits it).
  static void Reap(pid_t pid) {
    absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (waitpid(pid, nullptr, WNOHANG) == 0 && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(10));
    }
  }

  void ExpectNothingLeft(pid_t pid) {
    EXPECT_THAT(Mountinfo(), Not(HasSubstr(dir_.path()))) << "mount left behind";
    if (pid != 0) {
      EXPECT_NE(kill(pid, 0), 0) << "rclone " << pid << " still there";
    }
    EXPECT_FALSE(ProcessWith(dir_.path() + "/mounts/store")) << "rclone still running";
    EXPECT_FALSE(fs::exists(dir_.path() + "/mounts/store"));
  }

  testing::TempDir dir_;
  RcloneTools tools_;
  std::string remote_;
  std::string config_;
  std::string record_ = dir_.path() + "/rclone-store";
};

TEST_F(RcloneMountTest, ReadOnlyMountReadsAndRefusesWritesThenLeavesNothing) {
  absl::StatusOr<std::unique_ptr<RcloneMount>> mount =
      RcloneMount::Start(tools_, Spec(false), absl::Seconds(60), nullptr);
  ASSERT_TRUE(mount.ok()) << mount.status();
  pid_t pid = (*mount)->pid();
  EXPECT_THAT(Mountinfo(), HasSubstr(dir_.path() + "/mounts/store"));
  EXPECT_EQ(testing::ReadWholeFile(dir_.path() + "/mounts/store/a.txt"), "sample a\n");
  std::ofstream(dir_.path() + "/mounts/store/new.txt") << "x";
  EXPECT_FALSE(fs::exists(remote_ + "/data/new.txt")) << "a read-only mount took a write";
  EXPECT_TRUE((*mount)->Unmount(absl::Seconds(10)).ok());
  ExpectNothingLeft(pid);
}

TEST_F(RcloneMountTest, ReadWriteMountUploadsWrittenFilesBeforeItUnmounts) {
  absl::StatusOr<std::unique_ptr<RcloneMount>> mount =
      RcloneMount::Start(tools_, Spec(true), absl::Seconds(60), nullptr);
  ASSERT_TRUE(mount.ok()) << mount.status();
  pid_t pid = (*mount)->pid();
  {
    // Written, reopened and appended to: what streamed writes cannot do.
    std::ofstream out(dir_.path() + "/mounts/store/ckpt.bin", std::ios::binary);
    out << std::string(8 << 20, 'c');
  }
  std::ofstream(dir_.path() + "/mounts/store/ckpt.bin", std::ios::app) << "tail";
  absl::Status unmounted = (*mount)->Unmount(absl::Seconds(60));
  EXPECT_TRUE(unmounted.ok()) << unmounted;
  EXPECT_EQ(fs::file_size(remote_ + "/data/ckpt.bin"), (8u << 20) + 4);
  ExpectNothingLeft(pid);
  EXPECT_FALSE(fs::exists(dir_.path() + "/cache"));
}

TEST_F(RcloneMountTest, FailingMountNamesTheDatastoreAndRclonesErrorAndLeavesNothing) {
  std::string bad = dir_.path() + "/bad.conf";
  ASSERT_TRUE(WriteRcloneConfig(tools_,
                                {Remote("store", {{"type", "webdav"},
                                                  {"url", absl::StrCat("http://127.0.0.1:",
                                                                       testing::FreeLoopbackPort())},
                                                  {"pass", "hunter2"}})},
                                bad)
                  .ok());
  absl::StatusOr<std::unique_ptr<RcloneMount>> mount =
      RcloneMount::Start(tools_, Spec(false, bad), absl::Seconds(60), nullptr);
  ASSERT_FALSE(mount.ok());
  EXPECT_EQ(mount.status().code(), absl::StatusCode::kUnavailable);
  std::string message(mount.status().message());
  EXPECT_THAT(message, HasSubstr("datastore 'store': mounting store:data on node n1 failed"));
  EXPECT_THAT(message, HasSubstr("connection refused"));
  EXPECT_THAT(message, Not(HasSubstr("hunter2")));
  ExpectNothingLeft(0);
}

TEST_F(RcloneMountTest, StopEndsAMountThatDoesNotAnswer) {
  // A server that accepts and never answers: the listing of the root hangs until stopped.
  int port = testing::FreeLoopbackPort();
  auto server = testing::SpawnDaemon(
      {"/usr/bin/python3", "-c",
       absl::StrCat("import socket\ns=socket.socket()\ns.bind(('127.0.0.1',", port,
                    "))\ns.listen()\nc=[]\nwhile True: c.append(s.accept())")},
      dir_.path() + "/server.log");
  ASSERT_TRUE(server.ok());
  absl::SleepFor(absl::Milliseconds(500));
  std::string hung = dir_.path() + "/hung.conf";
  ASSERT_TRUE(WriteRcloneConfig(tools_,
                                {Remote("store", {{"type", "webdav"},
                                                  {"url", absl::StrCat("http://127.0.0.1:", port)}})},
                                hung)
                  .ok());
  absl::Time stop_at = absl::Now() + absl::Seconds(2);
  absl::StatusOr<std::unique_ptr<RcloneMount>> mount = RcloneMount::Start(
      tools_, Spec(false, hung), absl::Seconds(60), [stop_at] { return absl::Now() > stop_at; });
  kill(*server, SIGKILL);
  waitpid(*server, nullptr, 0);
  EXPECT_EQ(mount.status().code(), absl::StatusCode::kCancelled) << mount.status();
  ExpectNothingLeft(0);
}

TEST_F(RcloneMountTest, LeftoverMountsUnderAFolderAreUnmounted) {
  // As an agent killed with SIGKILL leaves it: rclone running, nobody's child here.
  std::string mountpoint = dir_.path() + "/work/mounts/j-1-1/store";
  fs::create_directories(mountpoint);
  auto started = testing::SpawnDaemon({"/usr/bin/rclone", "mount", "store:data", mountpoint,
                                       "--config", config_, "--read-only"},
                                      dir_.path() + "/leftover.log");
  ASSERT_TRUE(started.ok());
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (!absl::StrContains(Mountinfo(), mountpoint) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_THAT(Mountinfo(), HasSubstr(mountpoint));
  EXPECT_THAT(UnmountLeftoverRcloneMounts(tools_, dir_.path() + "/work"), ElementsAre(mountpoint));
  EXPECT_THAT(Mountinfo(), Not(HasSubstr(mountpoint)));
  int status = 0;
  EXPECT_EQ(waitpid(*started, &status, 0), *started) << "rclone exits once unmounted";
  EXPECT_THAT(UnmountLeftoverRcloneMounts(tools_, dir_.path() + "/work"), ElementsAre());
}

TEST_F(RcloneMountTest, LeftMountIsTakenOverFromItsRecordAndUploadsWritesOfBothLives) {
  absl::StatusOr<std::unique_ptr<RcloneMount>> first =
      RcloneMount::Start(tools_, Spec(true), absl::Seconds(60), nullptr);
  ASSERT_TRUE(first.ok()) << first.status();
  const pid_t pid = (*first)->pid();
  EXPECT_EQ(RecordedState(), "mounted");
  std::ofstream(dir_.path() + "/mounts/store/before.txt") << "before\n";
  // The agent stops and leaves its jobs running.
  (*first)->Leave();
  first->reset();
  EXPECT_EQ(kill(pid, 0), 0) << "rclone ended with the agent";
  ASSERT_THAT(Mountinfo(), HasSubstr(dir_.path() + "/mounts/store"));

  absl::StatusOr<std::unique_ptr<RcloneMount>> second = RcloneMount::Adopt(tools_, Spec(true));
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ((*second)->pid(), pid);
  EXPECT_FALSE((*second)->other_namespace());
  EXPECT_EQ(testing::ReadWholeFile(dir_.path() + "/mounts/store/before.txt"), "before\n");
  std::ofstream(dir_.path() + "/mounts/store/after.txt") << "after\n";
  absl::Status unmounted = (*second)->Unmount(absl::Seconds(60));
  EXPECT_TRUE(unmounted.ok()) << unmounted;
  EXPECT_EQ(testing::ReadWholeFile(remote_ + "/data/before.txt"), "before\n");
  EXPECT_EQ(testing::ReadWholeFile(remote_ + "/data/after.txt"), "after\n");
  EXPECT_EQ(RecordedState(), "released");
  Reap(pid);
  ExpectNothingLeft(pid);
  EXPECT_FALSE(fs::exists(dir_.path() + "/cache"));
}

TEST_F(RcloneMountTest, MountInAnotherMountNamespaceIsTakenOverAndUnmountedThere) {
  // As an agent confined to a mount namespace of its own (a test host) leaves it: the next
  // agent runs in another one and does not see the mount.
  RcloneMountSpec spec = Spec(false);
  fs::create_directories(spec.mountpoint);
  std::vector<std::string> argv = {"/usr/bin/unshare", "--mount", "--propagation", "private"};
  for (const std::string& arg : RcloneMountArgs(tools_, spec)) argv.push_back(arg);
  argv[4] = "/usr/bin/rclone";
  absl::StatusOr<pid_t> started = testing::SpawnDaemon(argv, spec.log_path);
  ASSERT_TRUE(started.ok()) << started.status();
  const pid_t pid = *started;
  const std::string inside = absl::StrCat("/proc/", pid, "/root", spec.mountpoint, "/a.txt");
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (testing::ReadWholeFile(inside) != "sample a\n" && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_EQ(testing::ReadWholeFile(inside), "sample a\n");
  ASSERT_THAT(Mountinfo(), Not(HasSubstr(spec.mountpoint))) << "not another namespace";
  std::optional<uint64_t> start =
      StartTimeFromStat(testing::ReadWholeFile(absl::StrCat("/proc/", pid, "/stat")));
  ASSERT_TRUE(start.has_value());
  std::ofstream(record_) << RcloneRecordText({.pid = pid, .start_time = *start});
  chmod(record_.c_str(), 0600);
  // Held like the namespace of a container that still uses the mount.
  int ns = open(absl::StrCat("/proc/", pid, "/ns/mnt").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(ns, 0);

  absl::StatusOr<std::unique_ptr<RcloneMount>> mount = RcloneMount::Adopt(tools_, spec);
  ASSERT_TRUE(mount.ok()) << mount.status();
  EXPECT_TRUE((*mount)->other_namespace());
  EXPECT_EQ((*mount)->pid(), pid);
  absl::Status unmounted = (*mount)->Unmount(absl::Seconds(10));
  EXPECT_TRUE(unmounted.ok()) << unmounted;
  Reap(pid);
  ExpectNothingLeft(pid);
  auto table = testing::RunCommand({"/usr/bin/nsenter", absl::StrCat("--mount=/proc/", getpid(),
                                                                     "/fd/", ns),
                                    "--", "cat", "/proc/self/mountinfo"});
  close(ns);
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_THAT(table->out, Not(HasSubstr(spec.mountpoint))) << "left mounted in its namespace";
  EXPECT_EQ(RecordedState(), "released");
}

TEST_F(RcloneMountTest, RcloneThatDiedWhileNoAgentRanIsNotTakenOverAndNothingIsLeft) {
  absl::StatusOr<std::unique_ptr<RcloneMount>> first =
      RcloneMount::Start(tools_, Spec(true), absl::Seconds(60), nullptr);
  ASSERT_TRUE(first.ok()) << first.status();
  const pid_t pid = (*first)->pid();
  (*first)->Leave();
  first->reset();
  kill(pid, SIGKILL);
  Reap(pid);
  absl::StatusOr<std::unique_ptr<RcloneMount>> second = RcloneMount::Adopt(tools_, Spec(true));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(second.status().message()),
              HasSubstr(absl::StrCat("datastore 'store': its rclone process (pid ", pid,
                                     ") ended while no drover-agent ran on node n1")));
  ExpectNothingLeft(0);
  EXPECT_EQ(RecordedState(), "released");
}

TEST_F(RcloneMountTest, RecordOfAReusedPidIsNotTrustedAndThatProcessIsLeftAlone) {
  // Another process now has the recorded pid: once with another start time, once with its
  // own (but it is not that rclone mount).
  auto other = testing::SpawnDaemon({"/usr/bin/sleep", "600"}, dir_.path() + "/sleep.log");
  ASSERT_TRUE(other.ok());
  std::optional<uint64_t> start =
      StartTimeFromStat(testing::ReadWholeFile(absl::StrCat("/proc/", *other, "/stat")));
  ASSERT_TRUE(start.has_value());
  for (uint64_t recorded : {*start + 1, *start}) {
    std::ofstream(record_, std::ios::trunc) << RcloneRecordText({.pid = *other, .start_time = recorded});
    chmod(record_.c_str(), 0600);
    absl::StatusOr<std::unique_ptr<RcloneMount>> mount = RcloneMount::Adopt(tools_, Spec(false));
    EXPECT_EQ(mount.status().code(), absl::StatusCode::kFailedPrecondition) << recorded;
    EXPECT_THAT(std::string(mount.status().message()), HasSubstr("ended while no drover-agent ran"));
    RcloneMount::RemoveLeftover(tools_, Spec(false));
    EXPECT_EQ(waitpid(*other, nullptr, WNOHANG), 0) << "the other process was signalled";
  }
  kill(*other, SIGKILL);
  waitpid(*other, nullptr, 0);
}

TEST_F(RcloneMountTest, RecordThatIsASymlinkOrMissingIsNotTrusted) {
  // A record written by someone else: never followed, never read.
  std::string elsewhere = dir_.path() + "/elsewhere";
  std::ofstream(elsewhere) << RcloneRecordText({.pid = getpid(), .start_time = 1});
  fs::create_symlink(elsewhere, record_);
  absl::StatusOr<std::unique_ptr<RcloneMount>> mount = RcloneMount::Adopt(tools_, Spec(false));
  EXPECT_EQ(mount.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(mount.status().message()), HasSubstr("datastore 'store': its record"));
  EXPECT_EQ(testing::ReadWholeFile(elsewhere), RcloneRecordText({.pid = getpid(), .start_time = 1}));
  fs::remove(record_);
  mount = RcloneMount::Adopt(tools_, Spec(false));
  EXPECT_EQ(mount.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(mount.status().message()), HasSubstr("no record of its rclone process"));
}

}  // namespace
}  // namespace drover::agent
