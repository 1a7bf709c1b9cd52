// ScriptedAgent: a node agent written by hand for tests of droverd's side of the agent
// protocol. One AgentService stream to an in-process droverd; the test reads what droverd
// sends (assignments, starts, stops, acks) and writes the agent's reports, log chunks and
// heartbeats step by step. Used from one test thread.
#ifndef DROVER_TESTS_TESTING_SCRIPTED_AGENT_H_
#define DROVER_TESTS_TESTING_SCRIPTED_AGENT_H_

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "drover/v1/agent_service.grpc.pb.h"

namespace drover::testing {

class ScriptedAgent {
 public:
  // Connects and says hello as node `name` with `cpus` cores, 8 GiB, the label pool=cpu,
  // an address, `held` as the attempts it still runs (an agent that reconnects) and `gpus`
  // (their number as its GPU capacity).
  ScriptedAgent(const std::shared_ptr<grpc::Channel>& channel, const std::string& name,
                double cpus = 4, std::vector<v1::AttemptReport> held = {},
                std::vector<v1::Gpu> gpus = {});
  // Cancels the stream and drains it.
  ~ScriptedAgent();

  // The next message of the wanted kind; others (acks of earlier chunks, welcomes) are
  // skipped. A test failure when the stream ends first.
  v1::SchedulerMessage Next(v1::SchedulerMessage::KindCase kind);

  // Reports `phase` of attempt (`job`, `epoch`), with the ranks' exits when it ENDED.
  void Report(const std::string& job, int64_t epoch, v1::AttemptReport::Phase phase,
              std::vector<v1::RankExit> exits = {});
  // Any report, as written.
  void Send(const v1::AttemptReport& report);
  // A PREPARING report naming the step the node is at ("FETCHING_SNAPSHOT").
  void ReportPreparing(const std::string& job, int64_t epoch, const std::string& reason);
  // One log chunk of `rank` (for PREPARE the node rank) at `offset`.
  void Log(const std::string& job, int64_t epoch, int32_t rank, int64_t offset,
           const std::string& data, v1::LogStream stream = v1::STDOUT);
  void Heartbeat();
  // Reads (skipping what comes) until droverd ends the stream; its status.
  grpc::Status WaitForEnd();

 private:
  std::unique_ptr<v1::AgentService::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::AgentMessage, v1::SchedulerMessage>> stream_;
  bool finished_ = false;  // Finish() was called
};

}  // namespace drover::testing

#endif  // DROVER_TESTS_TESTING_SCRIPTED_AGENT_H_
