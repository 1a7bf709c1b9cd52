// The local admin socket (server/admin_socket.h) without a server: who may use it, and how
// it is made (mode 0600, a stale socket replaced, anything else at the path left alone).
#include "server/admin_socket.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"

namespace drover::server {
namespace {

using ::testing::HasSubstr;

TEST(AdminSocketTest, OnlyRootAndDroverdsOwnUserMayUseIt) {
  EXPECT_TRUE(AdminSocketPeerAllowed(0, 0));
  EXPECT_TRUE(AdminSocketPeerAllowed(0, 998));
  EXPECT_TRUE(AdminSocketPeerAllowed(998, 998));
  EXPECT_FALSE(AdminSocketPeerAllowed(1000, 998));
  EXPECT_FALSE(AdminSocketPeerAllowed(65534, 0));
}

TEST(AdminSocketTest, IsMadePrivateAndReplacesOnlyAStaleSocket) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/admin.sock";
  {
    // A stale socket of a droverd that died.
    int stale = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::snprintf(address.sun_path, sizeof address.sun_path, "%s", path.c_str());
    ASSERT_EQ(::bind(stale, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    ::close(stale);
  }
  absl::StatusOr<std::unique_ptr<AdminSocket>> socket = AdminSocket::Listen(path);
  ASSERT_TRUE(socket.ok()) << socket.status();
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  (*socket)->Stop();
  EXPECT_NE(::stat(path.c_str(), &st), 0) << "Stop removes the socket";

  // A regular file at the path is nobody's socket: it stays, and droverd says why.
  const std::string file = dir.path() + "/not-a-socket";
  std::ofstream(file) << "keep me";
  absl::StatusOr<std::unique_ptr<AdminSocket>> refused = AdminSocket::Listen(file);
  EXPECT_TRUE(absl::IsUnavailable(refused.status())) << refused.status();
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr(file));
  std::ifstream kept(file);
  std::string content;
  std::getline(kept, content);
  EXPECT_EQ(content, "keep me");

  absl::StatusOr<std::unique_ptr<AdminSocket>> long_path =
      AdminSocket::Listen(dir.path() + "/" + std::string(200, 'x'));
  EXPECT_TRUE(absl::IsInvalidArgument(long_path.status())) << long_path.status();
}

}  // namespace
}  // namespace drover::server
