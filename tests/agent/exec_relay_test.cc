// The exec relay's Unix socket under a flood: at most its limit of connections is served
// at once (one thread each); the others are answered with an error naming the limit and
// closed; once connections end, new ones are served again.
#include "agent/exec_relay.h"

#include <dirent.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "agent/launcher/exec_frames.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"

namespace drover::agent {
namespace {

using ::testing::HasSubstr;
namespace frames = exec_frames;

int Threads() {
  int count = 0;
  if (DIR* tasks = opendir("/proc/self/task")) {
    while (dirent* entry = readdir(tasks)) count += entry->d_name[0] != '.';
    closedir(tasks);
  }
  return count;
}

int Connect(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address = {};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// The first frame the relay sends on `fd`: "F:message" for an error.
std::string FirstFrame(int fd) {
  frames::Type type;
  std::string payload;
  if (!frames::ReadFrame(fd, &type, &payload)) return "closed";
  return std::string(1, static_cast<char>(type)) + ":" + payload;
}

TEST(ExecRelayTest, AFloodOfConnectionsIsRefusedPastTheLimitAndTheRelayServesOn) {
  // As drover-agent's main does; here also for this test's own writes to a connection the
  // relay refused and closed meanwhile.
  signal(SIGPIPE, SIG_IGN);
  testing::TempDir dir;
  const std::string socket_path = dir.path() + "/exec.sock";
  v1::AttemptRef attempt;
  attempt.set_job_id("j-9");
  attempt.set_epoch(1);
  constexpr int kLimit = 8;
  ExecRelay relay(attempt, "secret", {}, [](const ExecPeer&) { return nullptr; }, kLimit);
  ASSERT_TRUE(relay.Listen(socket_path).ok());
  const int threads_before = Threads();

  // kLimit connections that say nothing hold every place.
  std::vector<int> held;
  for (int i = 0; i < kLimit; ++i) {
    held.push_back(Connect(socket_path));
    ASSERT_GE(held.back(), 0);
  }
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (Threads() < threads_before + kLimit && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  // The flood (issue 16: 1,500 connections made 1,513 threads): all open at once.
  std::vector<int> flood;
  for (int i = 0; i < 500; ++i) {
    int fd = Connect(socket_path);
    if (fd >= 0) flood.push_back(fd);
  }
  ASSERT_GT(flood.size(), 100u);
  int refused = 0;
  for (int fd : flood) {
    std::string frame = FirstFrame(fd);
    if (frame.rfind("F:", 0) == 0 && absl::StrContains(frame, "connections open")) ++refused;
    close(fd);
  }
  EXPECT_EQ(refused, static_cast<int>(flood.size())) << "every connection past the limit";
  EXPECT_LE(Threads(), threads_before + kLimit) << "a thread per connection past the limit";

  // The held connections end: their places serve new ones again.
  for (int fd : held) close(fd);
  std::string frame;
  deadline = absl::Now() + absl::Seconds(30);
  do {
    int fd = Connect(socket_path);
    ASSERT_GE(fd, 0);
    frames::WriteFrame(fd, frames::kHost, "nowhere");
    frames::WriteFrame(fd, frames::kCommand, "true");
    frame = FirstFrame(fd);
    close(fd);
    if (absl::StrContains(frame, "not a node of job j-9")) break;
    absl::SleepFor(absl::Milliseconds(20));
  } while (absl::Now() < deadline);
  EXPECT_THAT(frame, HasSubstr("not a node of job j-9")) << "served after the flood";
  deadline = absl::Now() + absl::Seconds(30);
  while (Threads() > threads_before && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_LE(Threads(), threads_before) << "threads of ended connections were not joined";
  relay.Stop();
}

TEST(ExecRelayTest, ANodeWithoutAChannelGetsAnErrorNotACrash) {
  testing::TempDir dir;
  v1::AttemptRef attempt;
  attempt.set_job_id("j-4");
  attempt.set_epoch(1);
  ExecRelay relay(attempt, "secret", {{"10.0.0.2", {.node = "n-2", .endpoint = "10.0.0.2:1"}}},
                  [](const ExecPeer&) { return nullptr; });
  ASSERT_TRUE(relay.Listen(dir.path() + "/exec.sock").ok());
  int fd = Connect(dir.path() + "/exec.sock");
  ASSERT_GE(fd, 0);
  frames::WriteFrame(fd, frames::kHost, "10.0.0.2");
  frames::WriteFrame(fd, frames::kCommand, "true");
  EXPECT_EQ(FirstFrame(fd), "F:drover-agent cannot reach node n-2");
  close(fd);
}

TEST(ExecRelayTest, OnlyNodesOfTheAttemptMayRunCommandsInIt) {
  v1::AssignAttempt assignment;
  assignment.mutable_attempt()->set_job_id("j-3");
  assignment.mutable_attempt()->set_epoch(2);
  assignment.add_node_names("gpu-01");
  assignment.add_node_names("gpu-02");
  EXPECT_TRUE(CheckCallerOfAttempt(assignment, "gpu-01").ok());
  EXPECT_TRUE(CheckCallerOfAttempt(assignment, "gpu-02").ok());
  absl::Status other = CheckCallerOfAttempt(assignment, "gpu-03");
  EXPECT_EQ(other.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(other.message()), HasSubstr("node 'gpu-03' is not a node of job j-3 attempt 2"));
  EXPECT_EQ(CheckCallerOfAttempt(assignment, "").code(), absl::StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace drover::agent
