// Fault injection (issue 7): jobs run on the real droverd and two real drover-agents (runc
// containers) while the daemons are killed and restarted at random: droverd SIGKILLed or
// stopped with SIGTERM, an agent SIGKILLed or stopped with SIGTERM (which leaves its jobs
// running), both at once; each down for 0 to 1.5 s, well within the node lease. A recorder
// polls droverd as a client would and keeps every state it was told. Afterwards every job
// must have its real end (exit code) in its first attempt, its whole output once and in
// order, and a history without a step back. Each round has its own seed, printed so that a
// failure can be replayed (DROVER_FAULT_SEED=N runs one round with it). Root only.
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <random>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "drover/v1/admin_service.grpc.pb.h"
#include "drover/v1/job_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/cluster.h"
#include "tests/testing/local_cluster.h"
#include "tests/testing/subprocess.h"

namespace drover {
namespace {

using State = v1::JobStatus::State;

bool Terminal(State state) {
  return state == v1::JobStatus::COMPLETED || state == v1::JobStatus::FAILED ||
         state == v1::JobStatus::CANCELED;
}

// Where a state is in an attempt's life: never lower later on.
int Order(State state) {
  switch (state) {
    case v1::JobStatus::QUEUED: return 0;
    case v1::JobStatus::PREPARING: return 1;
    case v1::JobStatus::STARTING: return 2;
    case v1::JobStatus::RUNNING: return 3;
    case v1::JobStatus::FINALIZING: return 4;
    default: return 5;
  }
}

struct Seen {
  State state;
  int attempt;
};

// A local cluster of droverd and two agents per round, in the round's own folder.
class FaultInjectionTest : public testing::LocalClusterTest {
 protected:
  // Polls every job every 20 ms, as a client following them would, and records each state
  // it is told; RPC errors (droverd down) are skipped.
  void Record(const std::vector<std::string>& ids, std::atomic<bool>& done) {
    // Reconnects as the CLI does (within a second of droverd being back), not after gRPC's
    // default backoff of up to two minutes, which several restarts in a row reach; and
    // like the CLI it waits on the channel between polls, which drives a reconnection's
    // TLS handshake (calls to a failed channel fail at once and drive nothing).
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    auto channel = grpc::CreateCustomChannel(listen_, testing::TlsCredentials(), args);
    auto stub = v1::JobService::NewStub(channel);
    while (!done) {
      for (const std::string& id : ids) {
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
        v1::GetJobRequest request;
        request.set_job_id(id);
        v1::Job job;
        if (!stub->GetJob(&context, request, &job).ok()) continue;
        absl::MutexLock lock(&mu_);
        std::vector<Seen>& seen = history_[id];
        if (seen.empty() || seen.back().state != job.status().state() ||
            seen.back().attempt != job.status().attempt()) {
          seen.push_back({job.status().state(), job.status().attempt()});
        }
      }
      absl::Time next = absl::Now() + absl::Milliseconds(20);
      channel->WaitForConnected(absl::ToChronoTime(next));
      absl::SleepFor(next - absl::Now());
    }
  }

  void RunRound(uint32_t seed);

  std::string round_dir_;
  std::string jobs_on_exit_;  // the --jobs-on-exit of the agents started next
  absl::Mutex mu_;
  std::map<std::string, std::vector<Seen>> history_ ABSL_GUARDED_BY(mu_);
};

void FaultInjectionTest::RunRound(uint32_t seed) {
  SCOPED_TRACE(absl::StrCat("DROVER_FAULT_SEED=", seed));
  std::mt19937 random(seed);
  auto pick = [&](int n) { return static_cast<int>(random() % static_cast<uint32_t>(n)); };
  round_dir_ = absl::StrCat(dir_.path(), "/round-", seed);
  {
    absl::MutexLock lock(&mu_);
    history_.clear();
  }
  jobs_on_exit_ = "keep";
  StartCluster({.agents = 2,
                .agent_flags_of =
                    [this](int) {
                      return std::vector<std::string>{"--jobs-on-exit", jobs_on_exit_, "--cpus",
                                                      "4", "--memory", "4Gi"};
                    },
                .folder = round_dir_,
                .datastore_root = false});
  if (HasFatalFailure()) return;
  // A client of its own across droverd's restarts, as a user's.
  testing::JobClient jobs(testing::TlsChannel(listen_));

  // Six jobs of 1 to 4 s of numbered lines, some ending with code 3.
  struct Expected {
    int lines;
    int code;
  };
  std::map<std::string, Expected> expected;
  std::vector<std::string> ids;
  for (int j = 0; j < 6; ++j) {
    Expected e{50 + pick(150), pick(3) == 0 ? 3 : 0};
    v1::JobSpec spec;
    spec.set_entry_script("bin/sh");
    spec.add_arguments()->set_value("-c");
    spec.add_arguments()->set_value(absl::StrCat(
        "echo started; i=0; while [ $i -lt ", e.lines,
        " ]; do i=$((i+1)); echo line $i; sleep 0.02; done; echo done; exit ", e.code));
    spec.mutable_resources()->set_cpus(1);
    spec.mutable_resources()->set_memory_mib(128);
    std::string id = jobs.Submit(spec);
    ASSERT_FALSE(id.empty());
    expected[id] = e;
    ids.push_back(id);
  }
  std::atomic<bool> done{false};
  std::thread recorder([&] { Record(ids, done); });

  // Four faults, 0.2 to 1 s apart.
  std::string faults;
  for (int f = 0; f < 4 && !HasFatalFailure(); ++f) {
    absl::SleepFor(absl::Milliseconds(200 + pick(800)));
    const absl::Duration down = std::vector<absl::Duration>{
        absl::ZeroDuration(), absl::Milliseconds(300), absl::Milliseconds(1500)}[pick(3)];
    const int kind = pick(5);
    const int k = pick(2);
    const int signal = pick(2) == 0 ? SIGKILL : SIGTERM;
    absl::StrAppend(&faults, " ",
                    kind <= 1   ? "droverd"
                    : kind <= 3 ? absl::StrCat("agent", k)
                                : absl::StrCat("droverd+agent", k),
                    kind <= 3 && signal == SIGTERM ? "/TERM" : "/KILL", "/",
                    absl::FormatDuration(down));
    if (kind <= 1) {
      StopDroverd(signal);
      absl::SleepFor(down);
      StartDroverd();
    } else if (kind <= 3) {
      StopAgent(k, signal);
      absl::SleepFor(down);
      StartAgent(k);
    } else {
      StopDroverd(SIGKILL);
      StopAgent(k, SIGKILL);
      absl::SleepFor(down);
      StartDroverd();
      StartAgent(k);
    }
  }
  SCOPED_TRACE(absl::StrCat("faults:", faults));

  // Like a client following the jobs: an RPC that fails (droverd just restarted) is retried.
  absl::Time deadline = absl::Now() + absl::Seconds(90);
  for (const std::string& id : ids) {
    State state = v1::JobStatus::STATE_UNSPECIFIED;
    while (!Terminal(state) && absl::Now() < deadline) {
      grpc::ClientContext context;
      v1::GetJobRequest request;
      request.set_job_id(id);
      v1::Job job;
      if (jobs.stub().GetJob(&context, request, &job).ok()) state = job.status().state();
      if (!Terminal(state)) absl::SleepFor(absl::Milliseconds(50));
    }
    ASSERT_TRUE(Terminal(state)) << id << " did not end; logs:" << AgentLogs();
  }
  // The recorder, a client of its own, is told the ends too (it polls every 20 ms).
  auto recorded_ends = [&] {
    absl::MutexLock lock(&mu_);
    for (const std::string& id : ids) {
      if (history_[id].empty() || !Terminal(history_[id].back().state)) return false;
    }
    return true;
  };
  deadline = absl::Now() + absl::Seconds(10);
  while (!recorded_ends() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  done = true;
  recorder.join();

  for (const std::string& id : ids) {
    SCOPED_TRACE(id);
    v1::Job job = jobs.Get(id);
    const Expected& e = expected[id];
    EXPECT_EQ(job.status().attempt(), 1) << "a restart is not a workload event";
    ASSERT_EQ(job.status().exits_size(), 1) << job.status().DebugString();
    EXPECT_EQ(job.status().exits(0).exit_code(), e.code);
    EXPECT_EQ(job.status().exits(0).signal(), 0);
    std::string out = jobs.Logs(id, 0);
    std::vector<std::string> lines = absl::StrSplit(out, '\n');
    ASSERT_EQ(lines.size(), static_cast<size_t>(e.lines) + 3) << "lost or doubled output:\n"
                                                               << out << AgentLogs();
    EXPECT_EQ(lines[0], "started");
    for (int i = 1; i <= e.lines; ++i) ASSERT_EQ(lines[i], absl::StrCat("line ", i));
    EXPECT_EQ(lines[e.lines + 1], "done");
    EXPECT_EQ(lines[e.lines + 2], "");

    absl::MutexLock lock(&mu_);
    const std::vector<Seen>& seen = history_[id];
    ASSERT_FALSE(seen.empty());
    EXPECT_TRUE(Terminal(seen.back().state));
    for (size_t i = 1; i < seen.size(); ++i) {
      EXPECT_EQ(seen[i].attempt, 1);
      EXPECT_GE(Order(seen[i].state), Order(seen[i - 1].state))
          << "told " << v1::JobStatus::State_Name(seen[i].state) << " after "
          << v1::JobStatus::State_Name(seen[i - 1].state);
      EXPECT_FALSE(Terminal(seen[i - 1].state)) << "an ended job was told a new state";
    }
  }

  // The last agents stop their jobs (none run) and leave nothing behind.
  StopCluster();
}

TEST_F(FaultInjectionTest, JobsEndAsTheyReallyDidThroughRandomDaemonRestarts) {
  std::vector<uint32_t> seeds;
  if (const char* fixed = std::getenv("DROVER_FAULT_SEED"); fixed != nullptr && *fixed != '\0') {
    seeds.push_back(static_cast<uint32_t>(std::strtoul(fixed, nullptr, 10)));
  } else {
    std::random_device device;
    for (int round = 0; round < 3; ++round) seeds.push_back(device());
  }
  for (uint32_t seed : seeds) {
    RunRound(seed);
    if (HasFailure()) {
      // Whatever still runs goes: containers are stopped by an agent that stops its jobs.
      jobs_on_exit_ = "stop";
      for (int k = 0; k < static_cast<int>(agents_.size()); ++k) {
        KillAgent(k);
        StartAgent(k);
      }
      absl::SleepFor(absl::Seconds(1));
      break;
    }
  }
}

}  // namespace
}  // namespace drover
