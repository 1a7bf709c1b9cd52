// RuncRuntime's side of the runc command line, with a scripted runc in place of the real one
// (RuncOptions::run_process): what it asks runc, and what it makes of runc's answers,
// refusals, hangs and garbage. No root, no runc; the containers themselves are tested in
// runc_runtime_test.cc.
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "agent/runtime/runc_runtime.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace drover::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kVersion[] =
    "runc version 1.1.12\ncommit: v1.1.12-0-g51d5e94\nspec: 1.0.2-dev\ngo: go1.20.13\n";

// runc as a script: `answer(args)` for the arguments after `--root DIR`.
class RuncCommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/drover-runc-commands-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<RuncRuntime> Open(std::function<ProcessResult(std::vector<std::string>)> answer,
                                    std::string version = kVersion) {
    RuncOptions options;
    options.root_dir = dir_ + "/runc";
    options.runc_path = "/fake/runc";
    options.run_process = [this, answer, version](const std::vector<std::string>& argv,
                                                  absl::Duration,
                                                  const std::string&) -> absl::StatusOr<ProcessResult> {
      absl::MutexLock lock(&mu_);
      calls_.push_back(argv);
      std::vector<std::string> args(argv.begin() + 3, argv.end());
      if (args == std::vector<std::string>{"--version"}) return Exit(0, version);
      return answer(args);
    };
    absl::StatusOr<std::unique_ptr<RuncRuntime>> opened = RuncRuntime::Open(options);
    EXPECT_TRUE(opened.ok()) << opened.status();
    return opened.ok() ? *std::move(opened) : nullptr;
  }

  static ProcessResult Exit(int code, std::string out, std::string err = "") {
    ProcessResult result;
    result.status = code << 8;  // as waitpid reports an exit
    result.out = std::move(out);
    result.err = std::move(err);
    return result;
  }

  std::vector<std::vector<std::string>> calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }

  std::string dir_;
  absl::Mutex mu_;
  std::vector<std::vector<std::string>> calls_ ABSL_GUARDED_BY(mu_);
};

TEST_F(RuncCommandsTest, ListReadsRuncsJsonAndEveryCallNamesTheAgentsRoot) {
  auto runtime = Open([](const std::vector<std::string>& args) {
    EXPECT_THAT(args, ElementsAre("list", "--format", "json"));
    return Exit(0, R"([{"id":"drover-j-1-1-a","pid":4242,"status":"running","bundle":"/b/1"},
                      {"id":"drover-j-2-1-b","pid":77,"status":"stopped","bundle":"/b/2"}])");
  });
  ASSERT_NE(runtime, nullptr);
  absl::StatusOr<std::vector<ContainerInfo>> list = runtime->List();
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].id, "drover-j-1-1-a");
  EXPECT_EQ((*list)[0].pid, 4242);
  EXPECT_TRUE((*list)[0].running);
  EXPECT_EQ((*list)[0].bundle_dir, "/b/1");
  EXPECT_EQ((*list)[1].pid, 0) << "a stopped container's old pid may be anyone's now";
  EXPECT_FALSE((*list)[1].running);
  for (const std::vector<std::string>& argv : calls()) {
    ASSERT_GE(argv.size(), 3u);
    EXPECT_EQ(argv[0], "/fake/runc");
    EXPECT_EQ(argv[1], "--root");
    EXPECT_EQ(argv[2], dir_ + "/runc");
  }
}

TEST_F(RuncCommandsTest, RuncsNullListIsNoContainer) {
  auto runtime = Open([](const std::vector<std::string>&) { return Exit(0, "null\n"); });
  ASSERT_NE(runtime, nullptr);
  absl::StatusOr<std::vector<ContainerInfo>> list = runtime->List();
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_TRUE(list->empty());
}

TEST_F(RuncCommandsTest, AContainerRuncDoesNotKnowIsNotFound) {
  auto runtime = Open([](const std::vector<std::string>& args) {
    EXPECT_EQ(args[0], "state");
    return Exit(1, "", "time=\"2026-12-07T05:00:00Z\" level=error msg=\"container does not exist\"\n");
  });
  ASSERT_NE(runtime, nullptr);
  absl::StatusOr<ContainerState> state = runtime->Inspect("drover-j-9-1-x");
  EXPECT_EQ(state.status().code(), absl::StatusCode::kNotFound) << state.status();
  EXPECT_THAT(std::string(state.status().message()), HasSubstr("drover-j-9-1-x"));
}

constexpr char kCrunVersion[] =
    "crun version 1.8.1\ncommit: f8a096be060b22ccd3d5f3ebe44108517fbf6c30\nrundir: /run/crun\n"
    "spec: 1.0.0\n+SYSTEMD +SELINUX +APPARMOR +CAP +SECCOMP +EBPF +YAJL\n";

TEST_F(RuncCommandsTest, AContainerCrunDoesNotKnowIsNotFound) {
  auto runtime = Open(
      [this](const std::vector<std::string>& args) {
        return Exit(1, "", absl::StrCat("error opening file `", dir_, "/runc/", args[1],
                                        "/status`: No such file or directory\n"));
      },
      kCrunVersion);
  ASSERT_NE(runtime, nullptr);
  absl::StatusOr<ContainerState> state = runtime->Inspect("drover-j-9-1-x");
  EXPECT_EQ(state.status().code(), absl::StatusCode::kNotFound) << state.status();
  EXPECT_TRUE(runtime->Delete("drover-j-9-1-x").ok()) << "already gone is deleted";
}

TEST_F(RuncCommandsTest, CrunsOtherMissingFilesAreNotAMissingContainer) {
  // `crun start` of a container that has stopped: its exec fifo is gone, the container is not.
  auto runtime = Open(
      [this](const std::vector<std::string>& args) {
        if (args[0] == "state") {
          return Exit(0, R"({"id":"c","pid":0,"status":"stopped","bundle":"/b"})");
        }
        return Exit(1, "", absl::StrCat("cannot open `", dir_, "/runc/", args[1],
                                        "/exec.fifo`: No such file or directory\n"));
      },
      kCrunVersion);
  ASSERT_NE(runtime, nullptr);
  absl::Status started = runtime->Start("c");
  EXPECT_EQ(started.code(), absl::StatusCode::kUnavailable) << started;
}

TEST(CrunCgroupBaseTest, CrunGetsTheCgroupRuncWouldChooseForARelativePath) {
  // cgroup v2: beside the agent's own cgroup, as runc does (a cgroup with processes cannot
  // give its children controllers).
  EXPECT_EQ(CrunCgroupBase("0::/system.slice/drover-agent.service\n"), "/system.slice");
  EXPECT_EQ(CrunCgroupBase("0::/drover-agent\n"), "");
  EXPECT_EQ(CrunCgroupBase("0::/\n"), "");
  // v1 hierarchies: below the agent's own cgroup.
  EXPECT_EQ(CrunCgroupBase("4:memory:/agents/a\n3:pids:/agents/a\n1:cpu,cpuacct:/agents/a\n"
                           "0::/agents/a\n"),
            "/agents/a");
  EXPECT_EQ(CrunCgroupBase("4:memory:/\n1:cpu,cpuacct:/\n0::/\n"), "");
  // One path for every hierarchy: where they differ, memory's (this build machine's
  // layout), so that the containers stay under the agent's memory limit.
  EXPECT_EQ(CrunCgroupBase("9:name=systemd:/\n8:pids:/\n4:memory:/process_api/eb96\n"
                           "2:cpuacct:/\n1:cpu:/\n0::/\n"),
            "/process_api/eb96");
  EXPECT_EQ(CrunCgroupBase(""), "");
}

TEST_F(RuncCommandsTest, ARuncThatHangsIsUnavailableNamingTheTimeout) {
  auto runtime = Open([](const std::vector<std::string>&) {
    ProcessResult hung = Exit(0, "");
    hung.timed_out = true;
    hung.status = SIGKILL;  // killed at the deadline
    return hung;
  });
  ASSERT_NE(runtime, nullptr);
  absl::StatusOr<ContainerState> state = runtime->Inspect("drover-j-1-1-a");
  EXPECT_EQ(state.status().code(), absl::StatusCode::kUnavailable) << state.status();
  EXPECT_THAT(std::string(state.status().message()), HasSubstr("did not finish within"));
}

TEST_F(RuncCommandsTest, GarbageFromRuncIsAnErrorNotAContainer) {
  for (const char* garbage : {"[{", "{\"id\":", "not json", "[[[[[[[[[[[[[[[[[[[[[[[["}) {
    SCOPED_TRACE(garbage);
    auto runtime = Open([garbage](const std::vector<std::string>&) { return Exit(0, garbage); });
    ASSERT_NE(runtime, nullptr);
    absl::StatusOr<std::vector<ContainerInfo>> list = runtime->List();
    EXPECT_FALSE(list.ok());
  }
}

}  // namespace
}  // namespace drover::agent
