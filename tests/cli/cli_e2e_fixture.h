// The fixture of the tests of the built `drover` binary against a real droverd (started per
// test on a kernel-picked port with its own state folder), and a scripted agent that speaks
// droverd's agent protocol by hand where a job has to run. Tests: cli_e2e_test.cc (jobs) and
// cli_admin_e2e_test.cc (nodes, targets, datastores, help, reaching the server).
#ifndef DROVER_TESTS_CLI_CLI_E2E_FIXTURE_H_
#define DROVER_TESTS_CLI_CLI_E2E_FIXTURE_H_
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <grpcpp/grpcpp.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/archive/snapshot.h"
#include "drover/v1/agent_service.grpc.pb.h"
#include "drover/v1/blob.grpc.pb.h"
#include "drover/v1/job.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/cluster.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/test_tls.h"

namespace drover::cli {

using ::drover::testing::CommandResult;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::MatchesRegex;
using ::testing::Not;
using ::testing::StartsWith;

inline v1::Job ParseJob(const std::string& json) {
  v1::Job job;
  auto status = google::protobuf::util::JsonStringToMessage(json, &job);
  EXPECT_TRUE(status.ok()) << status.ToString() << "\n" << json;
  return job;
}

inline std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// A scripted node agent: one AgentService stream, driven step by step by the test.
class ScriptedAgent {
 public:
  ScriptedAgent(const std::string& address, const std::string& name)
      : stub_(v1::AgentService::NewStub(testing::TestNodeChannel(address, name))) {
    stream_ = stub_->Connect(&context_);
    v1::AgentMessage hello;
    v1::NodeInfo* node = hello.mutable_hello()->mutable_node();
    node->set_name(name);
    node->add_addresses("10.77.0.11");
    node->mutable_capacity()->set_cpus(4);
    node->mutable_capacity()->set_memory_mib(8192);
    (*node->mutable_labels())["pool"] = "cpu";
    node->set_agent_version("scripted");
    stream_->Write(hello);
  }
  ~ScriptedAgent() {
    context_.TryCancel();
    v1::SchedulerMessage ignored;
    while (stream_->Read(&ignored)) {
    }
    stream_->Finish();
  }

  // The next message of this kind; others are skipped.
  v1::SchedulerMessage Next(v1::SchedulerMessage::KindCase kind) {
    v1::SchedulerMessage message;
    while (stream_->Read(&message)) {
      if (message.kind_case() == kind) return message;
    }
    ADD_FAILURE() << "agent stream ended while waiting for message kind " << kind;
    return message;
  }

  void Report(const std::string& job, v1::AttemptReport::Phase phase,
              std::vector<std::pair<int, int>> exits = {}, const std::string& outputs_digest = "",
              int64_t outputs_size = 0) {
    v1::AgentMessage message;
    v1::AttemptReport* report = message.mutable_report();
    report->mutable_attempt()->set_job_id(job);
    report->mutable_attempt()->set_epoch(1);
    report->set_phase(phase);
    for (auto [rank, code] : exits) {
      v1::RankExit* exit = report->add_exits();
      exit->set_rank(rank);
      exit->set_exit_code(code);
    }
    report->set_outputs_digest(outputs_digest);
    report->set_outputs_size(outputs_size);
    stream_->Write(message);
  }

  // Sends a log chunk and waits until droverd stored it.
  void Log(const std::string& job, int32_t rank, v1::LogStream stream, int64_t offset,
           const std::string& data) {
    v1::AgentMessage message;
    v1::LogChunk* chunk = message.mutable_log();
    chunk->mutable_attempt()->set_job_id(job);
    chunk->mutable_attempt()->set_epoch(1);
    chunk->set_rank(rank);
    chunk->set_stream(stream);
    chunk->set_offset(offset);
    chunk->set_data(data);
    stream_->Write(message);
    EXPECT_EQ(Next(v1::SchedulerMessage::kLogAck).log_ack().offset(),
              offset + static_cast<int64_t>(data.size()));
  }

  // Takes the job droverd assigns and starts it: PREPARING -> READY -> RUNNING.
  void Run(const std::string& job) {
    v1::AssignAttempt assign = Next(v1::SchedulerMessage::kAssign).assign();
    EXPECT_EQ(assign.attempt().job_id(), job);
    EXPECT_TRUE(assign.start_when_ready());  // one node: no START to wait for
    Report(job, v1::AttemptReport::READY);
    Report(job, v1::AttemptReport::RUNNING);
  }

 private:
  std::unique_ptr<v1::AgentService::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::AgentMessage, v1::SchedulerMessage>> stream_;
};

class CliE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<testing::DroverdProcess>> droverd =
        testing::DroverdProcess::Start(dir_.path() + "/state", {"--datastore-root", "/data"});
    ASSERT_TRUE(droverd.ok()) << droverd.status();
    droverd_ = *std::move(droverd);
  }

  // Runs `drover --server ADDRESS ARGS...` with DROVER_SERVER unset unless `env` sets it,
  // `input` on stdin.
  CommandResult Drover(std::vector<std::string> args, std::vector<std::string> env = {},
                       bool with_server = true, const std::string& input = "") {
    std::vector<std::string> argv = {testing::ProgramPath("DROVER_CLI", DROVER_CLI_PATH)};
    if (with_server) {
      argv.push_back("--server");
      argv.push_back(droverd_->address());
    }
    argv.insert(argv.end(), args.begin(), args.end());
    env.insert(env.begin(), {"DROVER_SERVER=", "DROVER_CA=" + droverd_->ca_file()});
    absl::StatusOr<CommandResult> result = testing::RunCommand(argv, env, input);
    EXPECT_TRUE(result.ok()) << result.status();
    if (!result.ok()) return CommandResult{};
    return *std::move(result);
  }

  // Submits `args` and returns the printed job id.
  std::string Submit(std::vector<std::string> args) {
    args.insert(args.begin(), "submit");
    CommandResult r = Drover(args);
    EXPECT_EQ(r.exit_code, 0) << r.err << "\ndroverd log:\n" << droverd_->ReadLog();
    EXPECT_THAT(r.out, MatchesRegex("j-[0-9]+\n"));
    return std::string(absl::StripTrailingAsciiWhitespace(r.out));
  }

  std::string WriteFile(absl::string_view name, absl::string_view contents) {
    std::string path = absl::StrCat(dir_.path(), "/", name);
    std::ofstream(path) << contents;
    return path;
  }

  // Polls `drover show JOB -o json` until the job is in `state`.
  v1::Job WaitFor(const std::string& id, v1::JobStatus::State state) {
    absl::Time deadline = absl::Now() + absl::Seconds(20);
    v1::Job job;
    while (absl::Now() < deadline) {
      CommandResult r = Drover({"show", id, "-o", "json"});
      job = ParseJob(r.out);
      if (job.status().state() == state) return job;
      absl::SleepFor(absl::Milliseconds(20));
    }
    ADD_FAILURE() << id << " never reached " << v1::JobStatus::State_Name(state);
    return job;
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::DroverdProcess> droverd_;
};

}  // namespace drover::cli

#endif  // DROVER_TESTS_CLI_CLI_E2E_FIXTURE_H_
