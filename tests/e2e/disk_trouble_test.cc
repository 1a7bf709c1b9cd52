// droverd's state disk in trouble, and droverd's stop, end to end with the real droverd and
// drover-agent (root: the state folder is a small tmpfs the test mounts, jobs run in runc).
//
// Disk full: while a filler file fills the tmpfs, clients submit jobs in a loop and the
// test records every answer; a job runs on the agent all the while. Then the filler goes,
// and the test checks what a user would notice: refusals said RESOURCE_EXHAUSTED or
// UNAVAILABLE with a message naming the state folder and the fix, submits work again
// without a restart, the running job's logs arrive complete and once, and after a SIGKILL
// and a restart on the same folder every acknowledged job is there and no refused one. A
// restart while the disk is still full works too.
//
// Stop: SIGTERM with an agent connected, a job running and clients following it
// (WatchJob, StreamLogs with follow) ends droverd well within its --shutdown-grace; the
// test prints how long it took.
#include <fcntl.h>
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "drover/v1/admin_service.grpc.pb.h"
#include "drover/v1/job_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/cluster.h"
#include "tests/testing/local_cluster.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/test_tls.h"

namespace drover {
namespace {

using ::testing::AnyOf;
using ::testing::HasSubstr;

// A tmpfs of `size` mounted at `path` for the test's life; unmounted (lazily, so that a
// process still holding a file cannot keep it) even when the test fails.
class TmpfsMount {
 public:
  TmpfsMount(std::string path, const std::string& size) : path_(std::move(path)) {
    std::filesystem::create_directories(path_);
    std::string options = absl::StrCat("size=", size, ",mode=0755");
    if (::mount("tmpfs", path_.c_str(), "tmpfs", 0, options.c_str()) != 0) {
      error_ = absl::StrCat("mount tmpfs on ", path_, ": ", strerror(errno));
    }
  }
  ~TmpfsMount() {
    if (error_.empty()) ::umount2(path_.c_str(), MNT_DETACH);
  }
  const std::string& error() const { return error_; }

 private:
  std::string path_;
  std::string error_;
};

// A file that takes every free byte of its file system; removed on destruction.
class Filler {
 public:
  explicit Filler(std::string path) : path_(std::move(path)) {}
  ~Filler() { Remove(); }
  // Appends until the disk is full (again: droverd may have freed a little meanwhile).
  void Fill() {
    int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0) << path_ << ": " << strerror(errno);
    std::string block(64 << 10, 'x');
    size_t piece = block.size();
    while (piece > 0) {
      // Smaller and smaller pieces fill the last partial block too.
      if (::write(fd, block.data(), piece) < 0) piece /= 2;
    }
    ::close(fd);
  }
  void Remove() { ::unlink(path_.c_str()); }

 private:
  std::string path_;
};

std::string Scrape(const std::string& endpoint) {
  auto page = testing::RunCommand(
      {"/usr/bin/python3", "-c",
       absl::StrCat("import urllib.request; print(urllib.request.urlopen('http://", endpoint,
                    "/metrics').read().decode())")});
  return page.ok() ? page->out : std::string();
}

// What one submit got back.
struct Outcome {
  std::string key;
  bool acked = false;
  std::string job_id;  // when acked
  grpc::StatusCode code = grpc::StatusCode::OK;
  std::string message;  // when refused
};

class DiskTroubleTest : public testing::LocalClusterTest {
 protected:
  void SetUp() override {
    LocalClusterTest::SetUp();
    if (IsSkipped()) return;
    state_ = dir_.path() + "/state";
    files_ = dir_.path() + "/files";
    mount_ = std::make_unique<TmpfsMount>(state_, "4m");
    ASSERT_EQ(mount_->error(), "");
    StartCluster({.droverd_files_dir = files_, .datastore_root = false, .droverd_metrics = true});
  }

  void TearDown() override {
    LocalClusterTest::TearDown();
    filler_.reset();
    mount_.reset();
  }

  std::string Context() { return AgentLogs(); }

  // A job printing `lines` numbered lines, one every `every` seconds, with /bin/sh in the
  // host image.
  static v1::JobSpec Counter(int lines, const std::string& every) {
    v1::JobSpec spec;
    spec.set_entry_script("bin/sh");
    spec.add_arguments()->set_value("-c");
    spec.add_arguments()->set_value(absl::StrCat("i=1; while [ $i -le ", lines,
                                                 " ]; do echo line-$i; i=$((i+1)); sleep ",
                                                 every, "; done"));
    spec.mutable_resources()->set_cpus(1);
    spec.mutable_resources()->set_memory_mib(256);
    return spec;
  }

  static std::string CounterOutput(int lines) {
    std::string out;
    for (int i = 1; i <= lines; ++i) absl::StrAppend(&out, "line-", i, "\n");
    return out;
  }

  // A job no node is large enough for: it stays QUEUED, so only the submit writes.
  static v1::JobSpec Unplaceable(const std::string& key) {
    v1::JobSpec spec;
    spec.set_entry_script("train.py");
    spec.set_idempotency_key(key);
    spec.mutable_resources()->set_cpus(1000);
    return spec;
  }

  Outcome Submit(const std::string& key) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::SubmitJobRequest request;
    *request.mutable_spec() = Unplaceable(key);
    v1::SubmitJobResponse response;
    grpc::Status status = jobs_->stub().SubmitJob(&context, request, &response);
    Outcome outcome{.key = key, .acked = status.ok()};
    if (status.ok()) {
      outcome.job_id = response.job().id();
    } else {
      outcome.code = status.error_code();
      outcome.message = status.error_message();
    }
    return outcome;
  }

  // Every job id droverd lists, by idempotency key.
  std::map<std::string, std::string> ListedKeys() {
    std::map<std::string, std::string> keys;
    std::string token;
    do {
      grpc::ClientContext context;
      v1::ListJobsRequest request;
      request.set_page_size(1000);
      request.set_page_token(token);
      v1::ListJobsResponse response;
      grpc::Status status = jobs_->stub().ListJobs(&context, request, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      if (!status.ok()) break;
      for (const v1::Job& job : response.jobs()) {
        EXPECT_FALSE(keys.contains(job.spec().idempotency_key())) << "listed twice: " << job.id();
        keys[job.spec().idempotency_key()] = job.id();
      }
      token = response.next_page_token();
    } while (!token.empty());
    return keys;
  }

  std::string state_;  // droverd's --state-dir: the tmpfs
  std::string files_;  // droverd's log and address file, off the tmpfs
  std::unique_ptr<TmpfsMount> mount_;
  std::unique_ptr<Filler> filler_;
};

TEST_F(DiskTroubleTest, FullStateDiskRefusesWritesLosesNothingAndRecoversByItself) {
  // Runs through the whole full period and after: 300 lines over about 20 s.
  constexpr int kLines = 300;
  std::string running = jobs_->Submit(Counter(kLines, "0.07"));
  jobs_->WaitFor(running, v1::JobStatus::RUNNING, absl::Seconds(60), [&] { return Context(); });
  std::vector<Outcome> outcomes;
  int next_key = 0;
  auto submit = [&] {
    outcomes.push_back(Submit(absl::StrCat("key-", next_key++)));
    return outcomes.back();
  };
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(submit().acked) << outcomes.back().message;

  filler_ = std::make_unique<Filler>(state_ + "/filler");
  filler_->Fill();
  // Submit until 20 were refused (some may still fit in pages SQLite already holds).
  int refused = 0;
  absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (refused < 20 && absl::Now() < deadline) {
    if (!submit().acked) {
      ++refused;
    } else {
      filler_->Fill();
    }
  }
  ASSERT_EQ(refused, 20) << "the full disk refused too few submits" << Context();
  for (const Outcome& o : outcomes) {
    if (o.acked) continue;
    EXPECT_THAT(o.code, AnyOf(grpc::StatusCode::RESOURCE_EXHAUSTED, grpc::StatusCode::UNAVAILABLE))
        << o.key << ": " << o.message;
    EXPECT_THAT(o.message, HasSubstr(state_)) << o.key;
    if (o.code == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      EXPECT_THAT(o.message, HasSubstr("state disk is full")) << o.key;
      EXPECT_THAT(o.message, HasSubstr("free space on")) << o.key;
    }
  }
  // `drover submit` shows droverd's message.
  filler_->Fill();
  testing::CommandResult cli =
      RunCli({"submit", "--cpus", "1000", "--idempotency-key", "key-cli", "train.py"});
  outcomes.push_back(Outcome{.key = "key-cli",
                             .acked = cli.exit_code == 0,
                             .job_id = std::string(absl::StripAsciiWhitespace(cli.out))});
  if (cli.exit_code != 0) {
    EXPECT_THAT(cli.err, HasSubstr("state disk")) << cli.err;
    EXPECT_THAT(cli.err, HasSubstr(state_)) << cli.err;
  }
  // A cancel is a write too: refused, or done (and then kept).
  std::string to_cancel = outcomes.front().job_id;
  grpc::ClientContext cancel_context;
  v1::CancelJobRequest cancel;
  cancel.set_job_id(to_cancel);
  v1::Job canceled;
  grpc::Status cancel_status = jobs_->stub().CancelJob(&cancel_context, cancel, &canceled);
  if (!cancel_status.ok()) {
    EXPECT_THAT(cancel_status.error_code(),
                AnyOf(grpc::StatusCode::RESOURCE_EXHAUSTED, grpc::StatusCode::UNAVAILABLE))
        << cancel_status.error_message();
  }
  // Reads still work, and the operator sees the trouble in the metrics.
  std::map<std::string, std::string> listed_while_full = ListedKeys();
  const size_t submitted_while_full = outcomes.size();
  EXPECT_THAT(Scrape(metrics_),
              HasSubstr("drover_state_write_errors_total{store=\"database\",kind=\"disk_full\"}"));
  EXPECT_THAT(droverd_->ReadLog(), HasSubstr("event=state_write_failed"));
  // An unclean stop while the disk is still full: droverd starts again with no manual step
  // (a start writes nothing) and shows what was stored.
  StopDroverd(SIGKILL);
  filler_->Fill();
  StartDroverd();
  if (HasFatalFailure()) return;
  EXPECT_EQ(ListedKeys(), listed_while_full);
  const bool refused_after_restart = !submit().acked;
  // The running job's output keeps coming while the disk is full: let some of it be refused.
  absl::SleepFor(absl::Seconds(2));

  filler_->Remove();
  // The next write works: no restart, no manual step.
  Outcome after = submit();
  ASSERT_TRUE(after.acked) << after.message << Context();
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(submit().acked) << outcomes.back().message;

  jobs_->WaitFor(running, v1::JobStatus::COMPLETED, absl::Seconds(90),
                 [&] { return Context(); });
  EXPECT_EQ(jobs_->Logs(running, 0), CounterOutput(kLines)) << Context();
  if (refused_after_restart) {
    EXPECT_THAT(droverd_->ReadLog(), HasSubstr("event=state_write_recovered"));
  }

  // An unclean stop, then a start on the same folder with no manual step.
  StopDroverd(SIGKILL);
  StartDroverd();
  std::map<std::string, std::string> listed = ListedKeys();
  int acked = 0, rejected = 0;
  for (size_t i = 0; i < outcomes.size(); ++i) {
    const Outcome& o = outcomes[i];
    if (o.acked) {
      ++acked;
      EXPECT_EQ(listed[o.key], o.job_id) << "acknowledged job lost: " << o.key;
      if (i < submitted_while_full) {
        EXPECT_EQ(listed_while_full[o.key], o.job_id) << "acknowledged, not listed: " << o.key;
      }
    } else {
      ++rejected;
      EXPECT_FALSE(listed.contains(o.key)) << "refused job stored: " << o.key;
    }
  }
  EXPECT_EQ(jobs_->Get(to_cancel).status().state(),
            cancel_status.ok() ? v1::JobStatus::CANCELED : v1::JobStatus::QUEUED);
  EXPECT_EQ(jobs_->Get(running).status().state(), v1::JobStatus::COMPLETED);
  EXPECT_EQ(jobs_->Logs(running, 0), CounterOutput(kLines));
  std::printf("submits: %d acknowledged, %d refused (disk full); cancel while full: %s\n", acked,
              rejected, cancel_status.ok() ? "done" : cancel_status.error_message().c_str());
}

TEST_F(DiskTroubleTest, SigtermWithAgentsAndFollowersStopsWellWithinTheGrace) {
  std::string running = jobs_->Submit(Counter(100000, "0.05"));
  jobs_->WaitFor(running, v1::JobStatus::RUNNING, absl::Seconds(60), [&] { return Context(); });
  // Clients following the job, as `drover watch` and `drover logs -f` do.
  grpc::ClientContext watch_context;
  v1::WatchJobRequest watch_request;
  watch_request.set_job_id(running);
  auto watch = jobs_->stub().WatchJob(&watch_context, watch_request);
  grpc::ClientContext logs_context;
  v1::StreamLogsRequest logs_request;
  logs_request.set_job_id(running);
  logs_request.set_follow(true);
  auto logs = jobs_->stub().StreamLogs(&logs_context, logs_request);
  std::atomic<bool> watch_ended = false, logs_ended = false;
  grpc::Status watch_status, logs_status;
  std::thread watcher([&] {
    v1::WatchJobResponse response;
    while (watch->Read(&response)) {
    }
    watch_status = watch->Finish();
    watch_ended = true;
  });
  std::thread follower([&] {
    v1::StreamLogsResponse response;
    while (logs->Read(&response)) {
    }
    logs_status = logs->Finish();
    logs_ended = true;
  });
  // Let the follower see some output first.
  absl::SleepFor(absl::Seconds(1));

  absl::Time sent = absl::Now();
  droverd_->Signal(SIGTERM);
  absl::StatusOr<int> status = droverd_->Wait(absl::Seconds(30));
  absl::Duration took = absl::Now() - sent;
  // Unblock the client threads whatever happened.
  watch_context.TryCancel();
  logs_context.TryCancel();
  watcher.join();
  follower.join();
  ASSERT_TRUE(status.ok()) << status.status() << Context();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << "wait status " << *status;
  std::printf("droverd exited %s after SIGTERM (agent connected, job running, 2 followers)\n",
              absl::FormatDuration(took).c_str());
  // The default grace is 10 s; open streams must not hold the stop that long.
  EXPECT_LT(took, absl::Seconds(5)) << Context();
  EXPECT_EQ(watch_status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << watch_status.error_message();
  EXPECT_THAT(logs_status.error_code(),
              AnyOf(grpc::StatusCode::UNAVAILABLE, grpc::StatusCode::CANCELLED))
      << logs_status.error_message();
  EXPECT_THAT(droverd_->ReadLog(), HasSubstr("event=droverd_stopped"));

  // The next start takes over with no manual step, and the job is still there.
  StartDroverd();
  EXPECT_EQ(jobs_->Get(running).spec().entry_script(), "bin/sh");
  absl::Status reconnected = testing::WaitForReadyNodes(*admin_, 1, absl::Seconds(30));
  ASSERT_TRUE(reconnected.ok()) << reconnected << Context();
  grpc::ClientContext cancel_context;
  v1::CancelJobRequest cancel;
  cancel.set_job_id(running);
  v1::Job canceled;
  EXPECT_TRUE(jobs_->stub().CancelJob(&cancel_context, cancel, &canceled).ok());
  jobs_->WaitFor(running, v1::JobStatus::CANCELED, absl::Seconds(60), [&] { return Context(); });
}

}  // namespace
}  // namespace drover
