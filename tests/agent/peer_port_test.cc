// The peer port a restarted agent binds again, from <work>/peer-port: read only from a
// small regular file, never through a link or from a fifo, and only a real port number.
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/time/clock.h"
#include "agent/agent.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"

namespace drover::agent {
namespace {

TEST(PeerPortTest, AWrittenPortIsReadBack) {
  testing::TempDir dir;
  const std::string file = dir.path() + "/peer-port";
  EXPECT_EQ(SavedPeerPort(file), 0) << "none yet";
  SavePeerPort(file, 40123);
  EXPECT_EQ(SavedPeerPort(file), 40123);
  SavePeerPort(file, 40124);
  EXPECT_EQ(SavedPeerPort(file), 40124);
  struct stat st {};
  ASSERT_EQ(stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(PeerPortTest, GarbageLinksAndFifosGiveNoPort) {
  testing::TempDir dir;
  const std::string file = dir.path() + "/peer-port";
  for (const char* text : {"", "abc\n", "0\n", "-5\n", "65536\n", "99999999999999999999\n",
                           "7070 7071\n"}) {
    std::ofstream(file, std::ios::trunc) << text;
    EXPECT_EQ(SavedPeerPort(file), 0) << text;
  }
  std::ofstream(file, std::ios::trunc) << std::string(1 << 20, '7');
  EXPECT_EQ(SavedPeerPort(file), 0) << "a huge file";

  std::filesystem::remove(file);
  std::ofstream(dir.path() + "/elsewhere") << "40123\n";
  std::filesystem::create_symlink(dir.path() + "/elsewhere", file);
  EXPECT_EQ(SavedPeerPort(file), 0) << "read through a link";
  SavePeerPort(file, 40125);  // replaces the link, does not write through it
  std::ifstream elsewhere(dir.path() + "/elsewhere");
  std::string kept;
  std::getline(elsewhere, kept);
  EXPECT_EQ(kept, "40123");
  EXPECT_EQ(SavedPeerPort(file), 40125);

  std::filesystem::remove(file);
  ASSERT_EQ(mkfifo(file.c_str(), 0600), 0);
  absl::Time start = absl::Now();
  EXPECT_EQ(SavedPeerPort(file), 0);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5)) << "blocked on a fifo";
}

}  // namespace
}  // namespace drover::agent
