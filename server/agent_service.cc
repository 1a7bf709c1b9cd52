#include "server/agent_service.h"

#include <deque>
#include <memory>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "absl/strings/escaping.h"
#include "server/node_identity_service.h"
#include "server/server_metrics.h"

namespace drover::server {
namespace {

// What the core holds of an agent stream: a queue of outgoing messages with one write in
// flight. It outlives the stream (the core and pending log acknowledgements may still hold
// it); once the stream is done, sends are dropped.
class Outbox final : public AgentLink {
 public:
  using Writer = grpc::ServerBidiReactor<v1::AgentMessage, v1::SchedulerMessage>;
  explicit Outbox(Writer* writer) : writer_(writer) {}

  void Send(v1::SchedulerMessage message) override {
    absl::MutexLock lock(&mu_);
    if (writer_ == nullptr || finished_) return;
    queue_.push_back(std::move(message));
    if (!writing_) WriteFrontLocked();
  }

  // The write in flight completed.
  void WriteDone(bool ok) {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {
      queue_.clear();
      return;
    }
    queue_.pop_front();
    if (!queue_.empty() && writer_ != nullptr && !finished_) WriteFrontLocked();
  }

  void Close(const absl::Status& status) override { Finish(ToGrpcStatus(status)); }

  // Ends the stream with `status` (once).
  void Finish(const grpc::Status& status) {
    absl::MutexLock lock(&mu_);
    if (writer_ == nullptr || finished_) return;
    finished_ = true;
    writer_->Finish(status);
  }

  // The stream is done: nothing may touch the reactor any more.
  void Detach() {
    absl::MutexLock lock(&mu_);
    writer_ = nullptr;
  }

 private:
  void WriteFrontLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    writing_ = true;
    writer_->StartWrite(&queue_.front());
  }

  absl::Mutex mu_;
  Writer* writer_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<v1::SchedulerMessage> queue_ ABSL_GUARDED_BY(mu_);  // front is being written
};

}  // namespace

class AgentStream final
    : public grpc::ServerBidiReactor<v1::AgentMessage, v1::SchedulerMessage> {
 public:
  // `node`: the stream's node, from its certificate; empty when it has none (the stream
  // is closed at once).
  AgentStream(AgentServiceImpl& service, std::string peer, std::string node)
      : service_(service),
        peer_(std::move(peer)),
        node_(std::move(node)),
        outbox_(std::make_shared<Outbox>(this)) {
    StartRead(&in_);
  }

  const std::string& node() const { return node_; }

  void Close(const grpc::Status& status) { outbox_->Finish(status); }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the agent closed its side, or the connection broke
      outbox_->Finish(grpc::Status::OK);
      return;
    }
    if (node_.empty()) return;  // refused in Connect (no node certificate): nothing is read
    if (!said_hello_ && !in_.has_hello()) {
      outbox_->Finish(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                   "the first message on an agent stream must be hello"));
      return;
    }
    if (in_.has_hello()) {
      // The node is its certificate's; a hello may only repeat that name.
      if (in_.hello().node().name() != node_) {
        Log(LogLevel::kWarning, "agent_hello_refused",
            {{"peer", peer_}, {"certificate_node", node_},
             {"hello_node", absl::CHexEscape(in_.hello().node().name().substr(0, 80))}});
        outbox_->Finish(grpc::Status(
            grpc::StatusCode::PERMISSION_DENIED,
            absl::StrCat("this connection's node certificate is node '", node_,
                         "'; it cannot say hello as another node")));
        return;
      }
      said_hello_ = true;
      service_.loop_.Post([core = &service_.core_, outbox = outbox_, hello = in_.hello(),
                           peer = peer_]() {
        absl::StatusOr<std::string> name = core->AgentHello(outbox, hello);
        if (!name.ok()) {
          Log(LogLevel::kWarning, "agent_refused", {{"peer", peer}, {"error", name.status().message()}});
          outbox->Finish(ToGrpcStatus(name.status()));
        }
      });
    } else if (in_.has_log() &&
               (!v1::LogStream_IsValid(in_.log().stream()) ||
                in_.log().stream() == v1::LOG_STREAM_UNSPECIFIED || in_.log().rank() < 0)) {
      // A stream this droverd does not know (a newer agent's) or a malformed chunk: not
      // stored, never acknowledged.
      Log(LogLevel::kWarning, "log_chunk_dropped",
          {{"node", node_}, {"rank", in_.log().rank()},
           {"stream", static_cast<int>(in_.log().stream())}});
    } else if (in_.has_log() && !service_.core_.AcceptsLogs(node_, in_.log().attempt())) {
      // Not the job's current attempt on this node (an old epoch, a lost node that came
      // back, a finished job): never stored, so nothing it sends mixes with the current
      // attempt's or changes a finished one's. Acknowledged all the same, so that the
      // agent ends it at once instead of waiting for droverd to take its logs.
      const v1::LogChunk& chunk = in_.log();
      // A chunk for an attempt this node was never part of is an attack or a bug: logged
      // (once per job and stream); a stale one is routine.
      const bool foreign = service_.core_.IsForeignAttempt(node_, chunk.attempt());
      if (!foreign || warned_jobs_.insert(chunk.attempt().job_id()).second) {
        Log(foreign ? LogLevel::kWarning : LogLevel::kDebug, "log_chunk_refused",
            {{"node", node_}, {"job", chunk.attempt().job_id()},
             {"epoch", chunk.attempt().epoch()},
             {"reason", foreign ? "attempt_not_on_this_node" : "not_current"}});
      }
      v1::SchedulerMessage ack;
      v1::LogAck* a = ack.mutable_log_ack();
      *a->mutable_attempt() = chunk.attempt();
      a->set_rank(chunk.rank());
      a->set_stream(chunk.stream());
      a->set_offset(chunk.offset() + static_cast<int64_t>(chunk.data().size()));
      outbox_->Send(std::move(ack));
    } else if (in_.has_log() && !service_.core_.HasStream(node_, in_.log().attempt(),
                                                          in_.log().rank(), in_.log().stream())) {
      // A rank the node does not run (a hostile or broken agent): each would be a file of
      // its own. Never stored; acknowledged so that nothing waits on it; logged once per job.
      const v1::LogChunk& chunk = in_.log();
      if (warned_jobs_.insert(chunk.attempt().job_id()).second) {
        Log(LogLevel::kWarning, "log_chunk_refused",
            {{"node", node_}, {"job", chunk.attempt().job_id()},
             {"epoch", chunk.attempt().epoch()}, {"rank", chunk.rank()},
             {"reason", "rank_not_on_this_node"}});
      }
      v1::SchedulerMessage ack;
      v1::LogAck* a = ack.mutable_log_ack();
      *a->mutable_attempt() = chunk.attempt();
      a->set_rank(chunk.rank());
      a->set_stream(chunk.stream());
      a->set_offset(chunk.offset() + static_cast<int64_t>(chunk.data().size()));
      outbox_->Send(std::move(ack));
    } else if (in_.has_log()) {
      const v1::LogChunk& chunk = in_.log();
      storage::LogStreamKey key{chunk.attempt().job_id(), chunk.attempt().epoch(), chunk.rank(),
                                chunk.stream()};
      if (ServerMetrics* metrics = service_.core_.metrics(); metrics != nullptr) {
        metrics->ingested_bytes
            .With({absl::AsciiStrToLower(v1::LogStream_Name(chunk.stream()))})
            .Increment(static_cast<double>(chunk.data().size()));
      }
      storage::LogStore* logs = &service_.logs_;
      logs->Append(key, chunk.offset(), chunk.data(),
                   [outbox = outbox_, logs, key, attempt = chunk.attempt()](
                       absl::StatusOr<int64_t> stored) {
                     v1::SchedulerMessage ack;
                     v1::LogAck* a = ack.mutable_log_ack();
                     *a->mutable_attempt() = attempt;
                     a->set_rank(key.rank);
                     a->set_stream(key.stream);
                     // After a gap the agent resends from what is stored; after a write error
                     // (-1) it retries later.
                     if (stored.ok()) {
                       a->set_offset(*stored);
                       a->set_capped(logs->Capped(key));
                     } else if (absl::IsFailedPrecondition(stored.status())) {
                       a->set_offset(logs->Received(key));
                     } else {
                       a->set_offset(-1);
                     }
                     outbox->Send(std::move(ack));
                   });
    } else {
      service_.loop_.Post([core = &service_.core_, node = node_, message = in_]() {
        core->AgentMessage(node, message);
      });
    }
    StartRead(&in_);
  }

  void OnWriteDone(bool ok) override { outbox_->WriteDone(ok); }

  void OnDone() override {
    outbox_->Detach();
    if (said_hello_) {
      service_.loop_.Post([core = &service_.core_, node = node_, outbox = outbox_]() {
        core->AgentGone(node, outbox.get());
      });
    }
    service_.Forget(this);
    delete this;
  }

 private:
  AgentServiceImpl& service_;
  const std::string peer_;
  const std::string node_;  // from the certificate
  std::shared_ptr<Outbox> outbox_;
  bool said_hello_ = false;  // read and written only by OnReadDone (and OnDone after it)
  std::set<std::string> warned_jobs_;  // OnReadDone only
  v1::AgentMessage in_;
};

grpc::ServerBidiReactor<v1::AgentMessage, v1::SchedulerMessage>* AgentServiceImpl::Connect(
    grpc::CallbackServerContext* context) {
  absl::StatusOr<std::string> node = identity_.Authenticate(PeerCertificate(*context));
  auto* stream = new AgentStream(*this, context->peer(), node.ok() ? *node : "");
  if (!node.ok()) {
    Log(LogLevel::kWarning, "agent_refused",
        {{"peer", context->peer()}, {"error", node.status().message()}});
    stream->Close(ToGrpcStatus(node.status()));
    return stream;
  }
  absl::MutexLock lock(&mu_);
  if (closed_) {
    stream->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                               "droverd is shutting down; reconnect in a moment"));
  } else {
    streams_.insert(stream);
  }
  return stream;
}

void AgentServiceImpl::Forget(AgentStream* stream) {
  absl::MutexLock lock(&mu_);
  streams_.erase(stream);
}

void AgentServiceImpl::CloseNode(const std::string& node, const absl::Status& status) {
  absl::MutexLock lock(&mu_);
  for (AgentStream* stream : streams_) {
    if (stream->node() == node) {
      Log(LogLevel::kWarning, "agent_stream_closed", {{"node", node}, {"reason", status.message()}});
      stream->Close(ToGrpcStatus(status));
    }
  }
}

void AgentServiceImpl::CloseAll() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
  for (AgentStream* stream : streams_) {
    stream->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                               "droverd is shutting down; reconnect in a moment"));
  }
}

}  // namespace drover::server
