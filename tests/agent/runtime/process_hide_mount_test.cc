// SpawnOptions::hide_mount: the child runs in a private copy of the agent's mounts without
// the hidden one (how crun runs on a hybrid cgroup node, oci_runtime_choice.h), and nothing
// of that reaches the agent's own namespace. Needs root (a mount namespace); uses the
// node's /sys/fs/cgroup/unified when it has one, else a tmpfs of its own.
#include <sys/mount.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "agent/runtime/process.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace drover::agent {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string OwnMountinfo() {
  std::ifstream in("/proc/self/mountinfo");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class HideMountTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "a mount namespace needs root";
    char pattern[] = "/tmp/drover-hide-mount-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    mount_ = dir_ + "/mnt";
    std::filesystem::create_directories(mount_);
    ASSERT_EQ(mount("tmpfs", mount_.c_str(), "tmpfs", 0, "size=1m"), 0);
    std::ofstream(mount_ + "/inside") << "x";
  }
  void TearDown() override {
    if (dir_.empty()) return;
    umount2(mount_.c_str(), MNT_DETACH);
    std::filesystem::remove_all(dir_);
  }
  std::string dir_;
  std::string mount_;
};

TEST_F(HideMountTest, TheChildDoesNotSeeTheHiddenMountAndTheAgentStillDoes) {
  const std::string probe = "test -e " + mount_ + "/inside && echo seen || echo hidden";
  absl::StatusOr<ProcessResult> hidden =
      RunProcess({"sh", "-c", probe}, absl::Seconds(10), "", "", {.hide_mount = mount_});
  ASSERT_TRUE(hidden.ok()) << hidden.status();
  EXPECT_TRUE(hidden->ok()) << hidden->Said();
  EXPECT_EQ(hidden->out, "hidden\n");

  absl::StatusOr<ProcessResult> plain = RunProcess({"sh", "-c", probe}, absl::Seconds(10));
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(plain->out, "seen\n");
  EXPECT_THAT(OwnMountinfo(), HasSubstr(" " + mount_ + " "));
  EXPECT_TRUE(std::filesystem::exists(mount_ + "/inside"));
}

TEST_F(HideMountTest, WhatTheChildMountsStaysInItsOwnNamespace) {
  const std::string inner = dir_ + "/inner";
  std::filesystem::create_directories(inner);
  absl::StatusOr<ProcessResult> result = RunProcess(
      {"sh", "-c", "mount -t tmpfs tmpfs " + inner + " && grep -c ' " + inner + " ' /proc/self/mountinfo"},
      absl::Seconds(10), "", "", {.hide_mount = mount_});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->ok()) << result->Said();
  EXPECT_EQ(result->out, "1\n");
  EXPECT_THAT(OwnMountinfo(), Not(HasSubstr(" " + inner + " ")));
}

TEST_F(HideMountTest, ArgumentsStdioAndExitCodeAreAsWithoutIt) {
  const std::string log = dir_ + "/out.log";
  absl::StatusOr<ProcessResult> to_file = RunProcess(
      {"sh", "-c", "echo out; echo err >&2; read line; echo \"in=$line\"; exit 3"},
      absl::Seconds(10), log, "", {.hide_mount = mount_});
  ASSERT_TRUE(to_file.ok()) << to_file.status();
  EXPECT_EQ(WEXITSTATUS(to_file->status), 3);
  std::ifstream in(log);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), "out\nerr\nin=\n");  // stdin is /dev/null

  absl::StatusOr<ProcessResult> piped = RunProcess({"sh", "-c", "cat; echo err >&2"},
                                                   absl::Seconds(10), "", "secret\n",
                                                   {.hide_mount = mount_});
  ASSERT_TRUE(piped.ok()) << piped.status();
  EXPECT_TRUE(piped->ok());
  EXPECT_EQ(piped->out, "secret\n");
  EXPECT_EQ(piped->err, "err\n");

  absl::StatusOr<ProcessResult> missing = RunProcess(
      {"/nonexistent/program"}, absl::Seconds(10), "", "", {.hide_mount = mount_});
  EXPECT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("/nonexistent/program"));

  std::string streamed;
  absl::StatusOr<int> status = RunStreaming(
      {"sh", "-c", "echo streamed; exit 4"},
      [&](bool, absl::string_view bytes) { streamed.append(bytes.data(), bytes.size()); }, nullptr, OnStop::kTerminate,
      {.hide_mount = mount_});
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(WEXITSTATUS(*status), 4);
  EXPECT_EQ(streamed, "streamed\n");
}

}  // namespace
}  // namespace drover::agent
