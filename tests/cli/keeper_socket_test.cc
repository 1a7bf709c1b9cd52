// The connection keeper's rendezvous (cli/keeper_socket.h) and its flags (cli/keeper.h):
// which folders are safe, what the socket is called, who may answer on it.
#include "cli/keeper_socket.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "cli/keeper.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace drover::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;

// A Unix socket bound at `path`, listening when `listen_too`; the descriptor (or -1).
int BindAt(const std::string& path, bool listen_too) {
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) != 0 ||
      (listen_too && listen(fd, 4) != 0)) {
    close(fd);
    return -1;
  }
  return fd;
}

// A fresh folder per test, removed after it.
class ScratchDir {
 public:
  ScratchDir() {
    std::string pattern = ::testing::TempDir() + "/keeper-test-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) std::abort();
    path_ = pattern;
  }
  ~ScratchDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class KeeperSocketTest : public ::testing::Test {
 protected:
  ScratchDir dir_;
};

TEST_F(KeeperSocketTest, MakesAPrivateFolderUnderTheRuntimeDir) {
  absl::StatusOr<std::string> folder = KeeperFolder(dir_.path(), getuid());
  ASSERT_TRUE(folder.ok()) << folder.status();
  EXPECT_EQ(*folder, dir_.path() + "/drover");
  struct stat st;
  ASSERT_EQ(lstat(folder->c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  // Found again as it is.
  EXPECT_TRUE(KeeperFolder(dir_.path(), getuid()).ok());
}

TEST_F(KeeperSocketTest, WithoutARuntimeDirUsesAFolderPerUidInTmp) {
  std::string expected = absl::StrCat("/tmp/drover-", getuid());
  absl::StatusOr<std::string> folder = KeeperFolder("", getuid());
  // This machine's own folder may be unsafe; then it is named in the refusal.
  if (folder.ok()) {
    EXPECT_EQ(*folder, expected);
  } else {
    EXPECT_THAT(folder.status().message(), HasSubstr(expected));
  }
}

TEST_F(KeeperSocketTest, RefusesASymlinkedFolder) {
  std::string elsewhere = dir_.path() + "/elsewhere";
  ASSERT_EQ(mkdir(elsewhere.c_str(), 0700), 0);
  ASSERT_EQ(symlink(elsewhere.c_str(), (dir_.path() + "/drover").c_str()), 0);
  absl::StatusOr<std::string> folder = KeeperFolder(dir_.path(), getuid());
  EXPECT_EQ(folder.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(folder.status().message(), HasSubstr("is a symlink"));
  EXPECT_THAT(folder.status().message(), HasSubstr("DROVER_KEEPER=off"));
}

TEST_F(KeeperSocketTest, RefusesAFolderOpenToOthers) {
  ASSERT_EQ(mkdir((dir_.path() + "/drover").c_str(), 0700), 0);
  ASSERT_EQ(chmod((dir_.path() + "/drover").c_str(), 0755), 0);
  absl::StatusOr<std::string> folder = KeeperFolder(dir_.path(), getuid());
  EXPECT_EQ(folder.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(folder.status().message(), HasSubstr("mode is not 0700"));
}

TEST_F(KeeperSocketTest, RefusesAFolderOfAnotherUser) {
  ASSERT_EQ(mkdir((dir_.path() + "/drover").c_str(), 0700), 0);
  absl::StatusOr<std::string> folder = KeeperFolder(dir_.path(), getuid() + 1);
  EXPECT_EQ(folder.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(folder.status().message(), HasSubstr("belongs to another user"));
}

TEST_F(KeeperSocketTest, RefusesAFileWhereTheFolderShouldBe) {
  std::ofstream(dir_.path() + "/drover") << "not a folder";
  absl::StatusOr<std::string> folder = KeeperFolder(dir_.path(), getuid());
  EXPECT_EQ(folder.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(folder.status().message(), HasSubstr("is not a folder"));
}

TEST(KeeperSocketName, DiffersForEachServerCaAndVersion) {
  std::string name = KeeperSocketName("h:1", "/ca", "PEM", "0.1.0");
  EXPECT_THAT(name, MatchesRegex("[0-9a-f]{16}\\.sock"));
  EXPECT_EQ(name, KeeperSocketName("h:1", "/ca", "PEM", "0.1.0"));
  EXPECT_NE(name, KeeperSocketName("h:2", "/ca", "PEM", "0.1.0"));
  EXPECT_NE(name, KeeperSocketName("h:1", "/ca2", "PEM", "0.1.0"));
  EXPECT_NE(name, KeeperSocketName("h:1", "/ca", "PEM2", "0.1.0"));
  EXPECT_NE(name, KeeperSocketName("h:1", "/ca", "PEM", "0.1.1"));
  // Parts do not run into each other.
  EXPECT_NE(KeeperSocketName("h:1", "/ca", "", ""), KeeperSocketName("h:1/", "ca", "", ""));
}

TEST_F(KeeperSocketTest, NoKeeperWhenTheFileIsMissingOrStale) {
  std::string path = dir_.path() + "/k.sock";
  EXPECT_EQ(ConnectToKeeper(path, getuid()).status().code(), absl::StatusCode::kUnavailable);
  int stale = BindAt(path, /*listen_too=*/false);  // a file nobody listens on
  ASSERT_GE(stale, 0);
  close(stale);
  EXPECT_EQ(ConnectToKeeper(path, getuid()).status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(KeeperSocketTest, ConnectsToAListenerOfItsOwnUidOnly) {
  std::string path = dir_.path() + "/k.sock";
  int listener = BindAt(path, /*listen_too=*/true);
  ASSERT_GE(listener, 0);
  absl::StatusOr<int> fd = ConnectToKeeper(path, getuid());
  ASSERT_TRUE(fd.ok()) << fd.status();
  close(*fd);
  // A listener of another uid (here: this one, seen by a caller who is someone else).
  absl::StatusOr<int> other = ConnectToKeeper(path, getuid() + 1);
  EXPECT_EQ(other.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(other.status().message(), HasSubstr("not this user's"));
  close(listener);
}

TEST_F(KeeperSocketTest, RefusesAPathTooLongForASocket) {
  std::string path = dir_.path() + "/" + std::string(120, 'x') + ".sock";
  absl::StatusOr<int> fd = ConnectToKeeper(path, getuid());
  EXPECT_EQ(fd.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(fd.status().message(), HasSubstr("XDG_RUNTIME_DIR"));
}

TEST(ParseKeeperArgs, ReadsItsFlags) {
  absl::StatusOr<KeeperOptions> options = ParseKeeperArgs(
      {"--socket", "/r/drover/x.sock", "--server", "h:7070", "--ca", "/ca.crt", "--idle", "9"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->socket_path, "/r/drover/x.sock");
  EXPECT_EQ(options->address, "h:7070");
  EXPECT_EQ(options->ca_file, "/ca.crt");
  EXPECT_EQ(options->idle, absl::Seconds(9));
}

TEST(ParseKeeperArgs, RefusesBadFlags) {
  EXPECT_FALSE(ParseKeeperArgs({}).ok());
  EXPECT_FALSE(ParseKeeperArgs({"--socket", "/s", "--server", "h:1"}).ok());  // no --ca
  EXPECT_FALSE(ParseKeeperArgs({"--socket", "/s", "--server", "h:1", "--ca"}).ok());
  EXPECT_FALSE(
      ParseKeeperArgs({"--socket", "/s", "--server", "h:1", "--ca", "/c", "--idle", "-3"}).ok());
  EXPECT_FALSE(
      ParseKeeperArgs({"--socket", "/s", "--server", "h:1", "--ca", "/c", "--idle", "soon"}).ok());
  absl::StatusOr<KeeperOptions> unknown =
      ParseKeeperArgs({"--socket", "/s", "--server", "h:1", "--ca", "/c", "--token", "t"});
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(unknown.status().message(), HasSubstr("unknown flag '--token'"));
}

TEST_F(KeeperSocketTest, AKeeperRefusesAnUnsafeFolder) {
  ASSERT_EQ(mkdir((dir_.path() + "/open").c_str(), 0700), 0);
  ASSERT_EQ(chmod((dir_.path() + "/open").c_str(), 0777), 0);
  absl::Status run = RunKeeper({.socket_path = dir_.path() + "/open/x.sock",
                                .address = "127.0.0.1:1",
                                .ca_file = dir_.path() + "/none.crt"});
  EXPECT_EQ(run.code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace drover::cli
