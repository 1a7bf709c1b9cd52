#include "tests/testing/scripted_agent.h"

#include <utility>

#include "gtest/gtest.h"

namespace drover::testing {

ScriptedAgent::ScriptedAgent(const std::shared_ptr<grpc::Channel>& channel,
                             const std::string& name, double cpus,
                             std::vector<v1::AttemptReport> held, std::vector<v1::Gpu> gpus)
    : stub_(v1::AgentService::NewStub(channel)) {
  stream_ = stub_->Connect(&context_);
  v1::AgentMessage hello;
  v1::NodeInfo* node = hello.mutable_hello()->mutable_node();
  node->set_name(name);
  node->add_addresses("10.77.0.11");
  node->mutable_capacity()->set_cpus(cpus);
  node->mutable_capacity()->set_memory_mib(8192);
  (*node->mutable_labels())["pool"] = "cpu";
  node->set_agent_version("test");
  node->mutable_capacity()->set_gpus(static_cast<int32_t>(gpus.size()));
  for (auto& gpu : gpus) *node->add_gpus() = gpu;
  for (auto& report : held) *hello.mutable_hello()->add_attempts() = report;
  stream_->Write(hello);
}

ScriptedAgent::~ScriptedAgent() {
  if (finished_) return;
  context_.TryCancel();
  v1::SchedulerMessage ignored;
  while (stream_->Read(&ignored)) {
  }
  stream_->Finish();
}

v1::SchedulerMessage ScriptedAgent::Next(v1::SchedulerMessage::KindCase kind) {
  v1::SchedulerMessage message;
  while (stream_->Read(&message)) {
    if (message.kind_case() == kind) return message;
  }
  ADD_FAILURE() << "stream ended while waiting for message kind " << kind;
  return message;
}

grpc::Status ScriptedAgent::WaitForEnd() {
  v1::SchedulerMessage ignored;
  while (stream_->Read(&ignored)) {
  }
  finished_ = true;
  return stream_->Finish();
}

void ScriptedAgent::Report(const std::string& job, int64_t epoch,
                           v1::AttemptReport::Phase phase, std::vector<v1::RankExit> exits) {
  v1::AgentMessage message;
  v1::AttemptReport* report = message.mutable_report();
  report->mutable_attempt()->set_job_id(job);
  report->mutable_attempt()->set_epoch(epoch);
  report->set_phase(phase);
  for (auto& e : exits) *report->add_exits() = e;
  stream_->Write(message);
}

void ScriptedAgent::Send(const v1::AttemptReport& report) {
  v1::AgentMessage message;
  *message.mutable_report() = report;
  stream_->Write(message);
}

void ScriptedAgent::ReportPreparing(const std::string& job, int64_t epoch,
                                    const std::string& reason) {
  v1::AgentMessage message;
  v1::AttemptReport* report = message.mutable_report();
  report->mutable_attempt()->set_job_id(job);
  report->mutable_attempt()->set_epoch(epoch);
  report->set_phase(v1::AttemptReport::PREPARING);
  report->set_reason(reason);
  stream_->Write(message);
}

void ScriptedAgent::Log(const std::string& job, int64_t epoch, int32_t rank, int64_t offset,
                        const std::string& data, v1::LogStream stream) {
  v1::AgentMessage message;
  v1::LogChunk* chunk = message.mutable_log();
  chunk->mutable_attempt()->set_job_id(job);
  chunk->mutable_attempt()->set_epoch(epoch);
  chunk->set_rank(rank);
  chunk->set_stream(stream);
  chunk->set_offset(offset);
  chunk->set_data(data);
  stream_->Write(message);
}

void ScriptedAgent::Heartbeat() {
  v1::AgentMessage message;
  message.mutable_heartbeat();
  stream_->Write(message);
}

}  // namespace drover::testing
