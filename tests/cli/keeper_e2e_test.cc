// The connection keeper (cli/keeper.h) with the built `drover` binary and a real droverd:
// calls go through it without TLS in the CLI, every caller keeps their own identity, other
// uids and unsafe folders are refused, and the keeper does not outlive its socket.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "cli/commands.h"
#include "cli/keeper_socket.h"
#include "tests/cli/cli_e2e_fixture.h"

namespace drover::cli {
namespace {

// What the CLI's stderr shows, with gRPC's handshaker trace on, when it makes a TLS
// handshake itself.
constexpr char kTlsHandshake[] = "adding handshaker security";
const std::vector<std::string> kTraceHandshakes = {"GRPC_TRACE=handshaker",
                                                   "GRPC_VERBOSITY=debug"};

// Whether process `pid` has ended (gone, or a zombie its new parent has not reaped).
bool Ended(pid_t pid) {
  std::string stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
  if (stat.empty()) return true;
  size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z';
}

class KeeperE2eTest : public CliE2eTest {
 protected:
  void SetUp() override {
    CliE2eTest::SetUp();
    runtime_ = dir_.path() + "/run";
    ASSERT_EQ(mkdir(runtime_.c_str(), 0700), 0);
  }

  void TearDown() override {
    // No keeper outlives its test: one whose socket is removed ends within a second.
    if (keeper_pid_ > 0) {
      unlink(SocketPath().c_str());
      EXPECT_TRUE(WaitUntil([&] { return Ended(keeper_pid_); })) << "keeper " << keeper_pid_;
    }
  }

  // `drover ARGS...` with the keeper on, its folder under this test's folder.
  CommandResult DroverKept(std::vector<std::string> args, std::vector<std::string> env = {}) {
    env.push_back("DROVER_KEEPER=on");
    env.push_back("XDG_RUNTIME_DIR=" + runtime_);
    return Drover(std::move(args), std::move(env));
  }

  std::string Folder() const { return runtime_ + "/drover"; }
  std::string SocketPath() const {
    return absl::StrCat(Folder(), "/",
                        KeeperSocketName(droverd_->address(), droverd_->ca_file(),
                                         ReadFile(droverd_->ca_file()), DroverVersion()));
  }

  static bool WaitUntil(const std::function<bool()>& done) {
    absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (absl::Now() < deadline) {
      if (done()) return true;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return done();
  }

  // Waits for the keeper the first call started to listen; returns its pid (0: none came).
  pid_t WaitForKeeper() {
    pid_t pid = 0;
    WaitUntil([&] {
      absl::StatusOr<int> fd = ConnectToKeeper(SocketPath(), getuid());
      if (!fd.ok()) return false;
      struct ucred cred;
      socklen_t size = sizeof(cred);
      if (getsockopt(*fd, SOL_SOCKET, SO_PEERCRED, &cred, &size) == 0) pid = cred.pid;
      close(*fd);
      return true;
    });
    keeper_pid_ = pid;
    return pid;
  }

  // Starts the keeper (the first call goes direct and starts it) and waits for it.
  pid_t StartKeeper() {
    CommandResult first = DroverKept({"whoami"});
    EXPECT_EQ(first.exit_code, 0) << first.err;
    pid_t pid = WaitForKeeper();
    EXPECT_GT(pid, 0) << "no keeper listens on " << SocketPath();
    return pid;
  }

  std::string runtime_;
  pid_t keeper_pid_ = 0;
};

TEST_F(KeeperE2eTest, SubmitGoesThroughTheKeeperWithoutATlsHandshakeInTheCli) {
  StartKeeper();
  CommandResult kept =
      DroverKept({"submit", "--cpus", "1", "--image", "host", "bin/true"}, kTraceHandshakes);
  ASSERT_EQ(kept.exit_code, 0) << kept.err;
  EXPECT_THAT(kept.out, MatchesRegex("j-[0-9]+\n"));
  EXPECT_THAT(kept.err, Not(HasSubstr(kTlsHandshake)));
  std::string id(absl::StripTrailingAsciiWhitespace(kept.out));
  CommandResult shown = DroverKept({"show", id, "-o", "json"}, kTraceHandshakes);
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_EQ(ParseJob(shown.out).id(), id);
  EXPECT_THAT(shown.err, Not(HasSubstr(kTlsHandshake)));
  // The same call without the keeper makes its own handshake (the trace shows one).
  CommandResult direct = Drover({"show", id}, {"DROVER_KEEPER=off", kTraceHandshakes[0],
                                               kTraceHandshakes[1]});
  ASSERT_EQ(direct.exit_code, 0) << direct.err;
  EXPECT_THAT(direct.err, HasSubstr(kTlsHandshake));
}

TEST_F(KeeperE2eTest, EveryCallerKeepsTheirOwnIdentityThroughOneKeeper) {
  pid_t keeper = StartKeeper();
  CommandResult created = DroverKept({"user", "create", "bob", "--role", "user"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  std::string bob_token(absl::StripAsciiWhitespace(created.out));

  CommandResult bob = DroverKept({"whoami"}, {"DROVER_TOKEN=" + bob_token});
  ASSERT_EQ(bob.exit_code, 0) << bob.err;
  EXPECT_THAT(bob.out, StartsWith("bob user"));
  CommandResult admin = DroverKept({"whoami"});
  ASSERT_EQ(admin.exit_code, 0) << admin.err;
  EXPECT_THAT(admin.out, Not(HasSubstr("bob")));
  // Bob's token does not make him an admin, and no token is no identity: the keeper
  // grants nothing of its own.
  CommandResult bob_admin = DroverKept({"user", "list"}, {"DROVER_TOKEN=" + bob_token});
  EXPECT_EQ(bob_admin.exit_code, kExitAuth) << bob_admin.err;
  CommandResult nobody = DroverKept({"whoami"}, {"DROVER_TOKEN="});
  EXPECT_EQ(nobody.exit_code, kExitAuth) << nobody.err;
  // All of it through the one keeper.
  EXPECT_EQ(WaitForKeeper(), keeper);
}

TEST_F(KeeperE2eTest, AKeeperClosesConnectionsFromOtherUids) {
  if (getuid() != 0) GTEST_SKIP() << "needs root to connect as another uid";
  StartKeeper();
  // Let another uid reach the socket at all (the folders are 0700 otherwise).
  ASSERT_EQ(chmod(runtime_.c_str(), 0711), 0);
  ASSERT_EQ(chmod(Folder().c_str(), 0711), 0);
  ASSERT_EQ(chmod(SocketPath().c_str(), 0777), 0);
  std::string path = SocketPath();
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // 0: the keeper closed the connection without a byte; 2: accepted; 3: setup failed.
    if (setuid(65534) != 0) _exit(3);
    struct sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), path.size());
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (connect(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) != 0) _exit(3);
    struct pollfd pfd = {.fd = fd, .events = POLLIN, .revents = 0};
    if (poll(&pfd, 1, 5000) <= 0) _exit(2);
    char byte;
    _exit(read(fd, &byte, 1) == 0 ? 0 : 2);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "another uid's connection was not closed";
  ASSERT_EQ(chmod(Folder().c_str(), 0700), 0);
  // The keeper goes on serving its own user.
  CommandResult after = DroverKept({"whoami"});
  EXPECT_EQ(after.exit_code, 0) << after.err;
}

TEST_F(KeeperE2eTest, AStaleSocketFileIsReplacedAndTheCallGoesDirect) {
  ASSERT_EQ(mkdir(Folder().c_str(), 0700), 0);
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::string path = SocketPath();
  std::memcpy(addr.sun_path, path.data(), path.size());
  int stale = socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_EQ(bind(stale, reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)), 0);
  close(stale);  // the file stays, nobody listens: a keeper that died

  CommandResult r = DroverKept({"whoami"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, IsEmpty());
  EXPECT_GT(WaitForKeeper(), 0) << "no keeper replaced the stale socket";
}

TEST_F(KeeperE2eTest, TheKeeperHoldsNoToken) {
  pid_t keeper = StartKeeper();
  ASSERT_GT(keeper, 0);
  std::string environment = ReadFile(absl::StrCat("/proc/", keeper, "/environ"));
  EXPECT_THAT(environment, Not(HasSubstr("DROVER_TOKEN=")));
  std::string command_line = ReadFile(absl::StrCat("/proc/", keeper, "/cmdline"));
  EXPECT_THAT(command_line, HasSubstr("__keeper"));
  EXPECT_THAT(command_line, Not(HasSubstr("drv_")));
}

TEST_F(KeeperE2eTest, ASymlinkedFolderIsRefusedWithAClearMessage) {
  std::string elsewhere = dir_.path() + "/elsewhere";
  ASSERT_EQ(mkdir(elsewhere.c_str(), 0700), 0);
  ASSERT_EQ(symlink(elsewhere.c_str(), Folder().c_str()), 0);
  CommandResult r = DroverKept({"whoami"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("not using the connection keeper: " + Folder() + " is a symlink"));
  EXPECT_TRUE(std::filesystem::is_empty(elsewhere)) << "a keeper was started behind a symlink";
}

TEST_F(KeeperE2eTest, AFolderOpenToOthersIsRefusedWithAClearMessage) {
  ASSERT_EQ(mkdir(Folder().c_str(), 0700), 0);
  ASSERT_EQ(chmod(Folder().c_str(), 0755), 0);
  CommandResult r = DroverKept({"whoami"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("mode is not 0700"));
  EXPECT_TRUE(std::filesystem::is_empty(Folder())) << "a keeper was started in an open folder";
}

TEST_F(KeeperE2eTest, TheKeeperExitsWhenItsSocketIsRemoved) {
  pid_t keeper = StartKeeper();
  ASSERT_GT(keeper, 0);
  ASSERT_EQ(unlink(SocketPath().c_str()), 0);
  EXPECT_TRUE(WaitUntil([&] { return Ended(keeper); })) << "keeper " << keeper << " still runs";
  keeper_pid_ = 0;
}

TEST_F(KeeperE2eTest, TheKeeperExitsWhenIdleAndTakesItsSocketAlong) {
  CommandResult first = DroverKept({"whoami"}, {"DROVER_KEEPER_IDLE=2"});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  pid_t keeper = WaitForKeeper();
  ASSERT_GT(keeper, 0);
  EXPECT_TRUE(WaitUntil([&] { return Ended(keeper); })) << "keeper " << keeper << " still runs";
  EXPECT_FALSE(std::filesystem::exists(SocketPath()));
  keeper_pid_ = 0;
}

TEST_F(KeeperE2eTest, AStoppedDroverdIsReportedAsWithoutTheKeeper) {
  StartKeeper();
  droverd_->Signal(SIGKILL);
  ASSERT_TRUE(droverd_->Wait(absl::Seconds(10)).ok());
  CommandResult r = DroverKept({"whoami"});
  EXPECT_EQ(r.exit_code, kExitUnavailable);
  EXPECT_THAT(r.err, HasSubstr("cannot reach droverd at " + droverd_->address()));
}

}  // namespace
}  // namespace drover::cli
