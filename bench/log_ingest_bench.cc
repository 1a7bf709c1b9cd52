#include "bench/log_ingest_bench.h"

#include <fcntl.h>
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "bench/bench_node.h"
#include "bench/channel.h"
#include "bench/fsync_bench.h"
#include "common/grpc_status.h"
#include "drover/v1/admin_service.grpc.pb.h"
#include "drover/v1/agent_service.grpc.pb.h"
#include "drover/v1/job_service.grpc.pb.h"
#include "drover/v1/node_identity.grpc.pb.h"

namespace drover::bench {
namespace {

using SteadyClock = std::chrono::steady_clock;
constexpr int64_t kMiB = 1 << 20;
// droverd takes messages up to 4 MiB (server/droverd.cc); leave room for the envelope.
constexpr int64_t kMaxChunkKib = 3 * 1024;
// A job has at most 256 processes per node (JobSpec.process_count_per_node), one stream each.
constexpr int64_t kMaxStreams = 256;
constexpr absl::Duration kHeartbeat = absl::Seconds(2);
// Size of one metric record line with --metrics, about what `run.log("loss", x)` writes.
constexpr int64_t kRecordBytes = 64;

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  in >> one >> five >> fifteen;
  return absl::StrCat(one, " ", five, " ", fifteen);
}

double MibPerSecond(int64_t bytes, absl::Duration d) {
  double seconds = absl::ToDoubleSeconds(d);
  return seconds > 0 ? static_cast<double>(bytes) / kMiB / seconds : 0;
}

// `count` writes of `size` bytes appended to a scratch file under `dir`, then one
// fdatasync: what the disk streams when syncs are rare. Returns the time taken.
absl::StatusOr<absl::Duration> TimeStreamingWrites(const std::string& dir, int64_t size,
                                                   int64_t count) {
  std::string path = absl::StrCat(dir, "/drover-bench-stream-XXXXXX");
  int fd = mkostemp(path.data(), O_CLOEXEC);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot create a scratch file in '", dir, "': ", strerror(errno)));
  }
  std::string block(static_cast<size_t>(size), 'w');
  SteadyClock::time_point start = SteadyClock::now();
  bool ok = true;
  for (int64_t i = 0; i < count && ok; ++i) {
    ok = pwrite(fd, block.data(), block.size(), i * size) == static_cast<ssize_t>(size);
  }
  ok = ok && fdatasync(fd) == 0;
  absl::Duration took = absl::FromChrono(SteadyClock::now() - start);
  std::string error = strerror(errno);
  close(fd);
  unlink(path.c_str());
  if (!ok) {
    return absl::UnavailableError(absl::StrCat("cannot write ", path, ": ", error));
  }
  return took;
}

// What the fake agent knows of one log stream (one rank's stdout).
struct StreamState {
  int64_t target = 0;  // bytes to ship
  int64_t sent = 0;
  int64_t acked = 0;
  // End offset and send time of each chunk in flight, in order: droverd acknowledges a
  // stream's chunks in the order they were sent.
  std::deque<std::pair<int64_t, SteadyClock::time_point>> in_flight;
};

// Shared between the writer (the calling thread) and the reader of droverd's messages.
struct Shared {
  absl::Mutex mu;
  absl::CondVar changed;
  // The assignment of the benchmark job's attempt, once droverd sent it.
  std::optional<v1::AssignAttempt> assigned ABSL_GUARDED_BY(mu);
  // droverd's StopAttempt of it, if any (the run then fails).
  std::string stopped ABSL_GUARDED_BY(mu);
  std::vector<StreamState> streams ABSL_GUARDED_BY(mu);
  int64_t acked_bytes ABSL_GUARDED_BY(mu) = 0;
  int64_t acked_chunks ABSL_GUARDED_BY(mu) = 0;
  int64_t short_acks ABSL_GUARDED_BY(mu) = 0;
  // Acknowledgements that said the stream reached droverd's cap (nothing more is stored).
  int64_t capped_acks ABSL_GUARDED_BY(mu) = 0;
  int32_t capped_rank ABSL_GUARDED_BY(mu) = -1;
  bool reader_done ABSL_GUARDED_BY(mu) = false;
  SteadyClock::time_point last_ack ABSL_GUARDED_BY(mu);
  std::vector<absl::Duration> latencies ABSL_GUARDED_BY(mu);
};

}  // namespace

absl::StatusOr<LogIngestResult> RunLogIngestBench(const LogIngestOptions& o) {
  if (o.server.empty()) {
    return absl::InvalidArgumentError("--server: required; pass droverd's HOST:PORT");
  }
  if (o.megabytes < 1 || o.megabytes > (1 << 20)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--megabytes: ", o.megabytes, " is out of range; use 1 to 1048576"));
  }
  if (o.chunk_kib < 1 || o.chunk_kib > kMaxChunkKib) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--chunk-kib: ", o.chunk_kib, " is out of range; use 1 to ", kMaxChunkKib,
        " (droverd takes messages up to 4 MiB)"));
  }
  if (o.streams < 1 || o.streams > kMaxStreams) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--streams: ", o.streams, " is out of range; use 1 to ", kMaxStreams,
        " (one process of the job per stream)"));
  }
  if (o.window_kib < o.chunk_kib) {
    return absl::InvalidArgumentError(absl::StrCat("--window-kib: ", o.window_kib,
                                                   " must be at least --chunk-kib (",
                                                   o.chunk_kib, ")"));
  }
  if (o.server.rfind("unix:", 0) == 0) {
    return absl::InvalidArgumentError(
        "--server: agents connect over TLS with a node certificate; pass droverd's "
        "--listen HOST:PORT, not its admin socket");
  }
  absl::StatusOr<std::string> ca_pem = ReadCa(o.ca_file);
  if (!ca_pem.ok()) return ca_pem.status();
  LogIngestResult result;
  result.streams = o.streams;
  result.chunk_bytes = o.chunk_kib * 1024;
  result.window_bytes = o.window_kib * 1024;
  result.load_before = LoadAverage();

  // The baseline first: the ingest leaves the disk busy writing back for a while.
  if (!o.baseline_dir.empty()) {
    int64_t mib = o.baseline_megabytes > 0 ? o.baseline_megabytes
                                           : std::min<int64_t>(o.megabytes, 256);
    int64_t count = std::max<int64_t>(1, mib * kMiB / result.chunk_bytes);
    absl::StatusOr<FsyncBenchResult> synced = RunFsyncBench(
        {.dir = o.baseline_dir, .count = count, .size = result.chunk_bytes});
    if (!synced.ok()) return synced.status();
    result.baseline_synced_latency = synced->append;
    result.baseline_synced_mib_per_second =
        MibPerSecond(result.chunk_bytes, synced->append.mean);
    absl::StatusOr<absl::Duration> streaming =
        TimeStreamingWrites(o.baseline_dir, result.chunk_bytes, count);
    if (!streaming.ok()) return streaming.status();
    result.baseline_bytes = count * result.chunk_bytes;
    result.baseline_streaming_mib_per_second = MibPerSecond(result.baseline_bytes, *streaming);
  }

  // The user's channel (an admin's token): join token, compute target, submit, read back.
  std::shared_ptr<grpc::Channel> user_channel =
      grpc::CreateChannel(o.server, DroverdCredentials(o.server, o.ca_file));
  if (!user_channel->WaitForConnected(std::chrono::system_clock::now() +
                                      absl::ToChronoMilliseconds(o.connect_timeout))) {
    return absl::UnavailableError(absl::StrCat(
        "cannot reach droverd at '", o.server, "' within ",
        absl::FormatDuration(o.connect_timeout),
        "; is it running, and is --server its --listen address?"));
  }
  absl::StatusOr<NodeIdentity> identity = JoinAsNode(user_channel, o.server, *ca_pem, o.node_name);
  if (!identity.ok()) return identity.status();

  std::random_device random;
  const std::string run_id = absl::StrFormat("%08x", random());
  // A compute target of the fake node alone, so that droverd places the job there and
  // nowhere else (a real agent may be connected too).
  const std::string target = absl::StrCat("bench-ingest-", run_id);
  auto admin = v1::AdminService::NewStub(user_channel);
  {
    v1::PutComputeTargetRequest request;
    request.mutable_target()->set_name(target);
    (*request.mutable_target()->mutable_selector())[kNodeLabel] = o.node_name;
    v1::ComputeTarget put;
    grpc::ClientContext context;
    SetDeadline(context);
    if (grpc::Status s = admin->PutComputeTarget(&context, request, &put); !s.ok()) {
      return FromGrpcStatus(s, absl::StrCat("creating compute target '", target, "'"));
    }
  }
  auto delete_target = [&] {
    v1::DeleteComputeTargetRequest request;
    request.set_name(target);
    v1::DeleteComputeTargetResponse deleted;
    grpc::ClientContext context;
    SetDeadline(context);
    (void)admin->DeleteComputeTarget(&context, request, &deleted);  // best effort
  };

  grpc::SslCredentialsOptions node_tls;
  node_tls.pem_root_certs = *ca_pem;
  node_tls.pem_private_key = identity->key_pem;
  node_tls.pem_cert_chain = identity->certificate_pem;
  std::shared_ptr<grpc::Channel> node_channel =
      grpc::CreateChannel(o.server, grpc::SslCredentials(node_tls));
  std::unique_ptr<v1::AgentService::Stub> stub = v1::AgentService::NewStub(node_channel);
  grpc::ClientContext context;
  auto stream = stub->Connect(&context);

  v1::AgentMessage hello;
  v1::NodeInfo* node = hello.mutable_hello()->mutable_node();
  node->set_name(o.node_name);
  node->add_addresses("127.0.0.1");
  node->mutable_capacity()->set_cpus(kNodeCpus);
  node->mutable_capacity()->set_memory_mib(kNodeMemoryMib);
  (*node->mutable_labels())[kNodeLabel] = o.node_name;
  node->set_agent_version("drover-bench");
  v1::SchedulerMessage welcome;
  if (!stream->Write(hello) || !stream->Read(&welcome) || !welcome.has_welcome()) {
    context.TryCancel();
    grpc::Status status = stream->Finish();
    delete_target();
    return absl::UnavailableError(absl::StrCat(
        "droverd at '", o.server, "' did not welcome the fake agent '", o.node_name,
        "': ", status.ok() ? "no welcome" : status.error_message()));
  }

  // Incompressible bytes, though gRPC does not compress by default; or whole metric
  // records of kRecordBytes each, as many as fit a chunk (streams then hold whole chunks).
  std::string payload(static_cast<size_t>(result.chunk_bytes), '\0');
  std::mt19937_64 bits(random());
  if (o.metrics) {
    payload.clear();
    for (int64_t step = 0; static_cast<int64_t>(payload.size()) + kRecordBytes <= result.chunk_bytes;
         ++step) {
      std::string line = absl::StrFormat("{\"n\":\"loss\",\"s\":%d,\"t\":1764170000.123456,\"v\":%.9f",
                                         step, static_cast<double>(bits() % 1000000) / 1e6);
      line.resize(kRecordBytes - 2, ' ');  // JSON allows the padding before the brace
      payload += line + "}\n";
    }
    result.chunk_bytes = static_cast<int64_t>(payload.size());
  } else {
    for (size_t i = 0; i + 8 <= payload.size(); i += 8) {
      uint64_t word = bits();
      std::memcpy(&payload[i], &word, 8);
    }
  }
  const v1::LogStream log_stream = o.metrics ? v1::METRICS : v1::STDOUT;

  Shared shared;
  int64_t total = 0;
  {
    absl::MutexLock lock(&shared.mu);
    shared.streams.resize(static_cast<size_t>(o.streams));
    const int64_t megabytes = o.megabytes * kMiB;
    for (int64_t i = 0; i < o.streams; ++i) {
      int64_t& target_bytes = shared.streams[i].target;
      target_bytes = megabytes / o.streams + (i == o.streams - 1 ? megabytes % o.streams : 0);
      // Whole chunks of whole records.
      if (o.metrics) {
        target_bytes = std::max<int64_t>(1, target_bytes / result.chunk_bytes) * result.chunk_bytes;
      }
      total += target_bytes;
    }
  }

  // The attempt's id, known once droverd assigned it; the reader drops acknowledgements of
  // anything else.
  v1::AttemptRef attempt;
  std::thread reader([&] {
    v1::SchedulerMessage message;
    while (stream->Read(&message)) {
      SteadyClock::time_point now = SteadyClock::now();
      absl::MutexLock lock(&shared.mu);
      if (message.has_assign() && !shared.assigned.has_value()) {
        shared.assigned = message.assign();
        shared.changed.SignalAll();
        continue;
      }
      if (message.has_stop() && shared.assigned.has_value() &&
          message.stop().attempt().job_id() == shared.assigned->attempt().job_id()) {
        shared.stopped = message.stop().message().empty() ? "no reason given"
                                                          : message.stop().message();
        shared.changed.SignalAll();
        continue;
      }
      if (!message.has_log_ack() || !shared.assigned.has_value() ||
          message.log_ack().attempt().job_id() != shared.assigned->attempt().job_id()) {
        continue;
      }
      const v1::LogAck& ack = message.log_ack();
      if (ack.rank() < 0 || ack.rank() >= static_cast<int32_t>(shared.streams.size())) continue;
      StreamState& s = shared.streams[ack.rank()];
      if (s.in_flight.empty()) continue;
      auto [end, sent_at] = s.in_flight.front();
      s.in_flight.pop_front();
      shared.latencies.push_back(absl::FromChrono(now - sent_at));
      if (ack.capped()) {
        // Acknowledged, but dropped past droverd's cap: not durable data.
        ++shared.capped_acks;
        if (shared.capped_rank < 0) shared.capped_rank = ack.rank();
      } else if (ack.offset() < end) {
        ++shared.short_acks;  // refused or not stored: the run cannot count it
      } else {
        shared.acked_bytes += ack.offset() - s.acked;
        s.acked = ack.offset();
        ++shared.acked_chunks;
        shared.last_ack = now;
      }
      shared.changed.SignalAll();
    }
    absl::MutexLock lock(&shared.mu);
    shared.reader_done = true;
    shared.changed.SignalAll();
  });

  std::string failure;
  absl::Time next_heartbeat = absl::Now() + kHeartbeat;
  // Ends the agent stream and the reader; the failure of the run if `failure` is set.
  auto hang_up = [&]() -> absl::Status {
    stream->WritesDone();
    context.TryCancel();
    reader.join();
    grpc::Status finished = stream->Finish();
    delete_target();
    if (failure.empty()) return absl::OkStatus();
    absl::MutexLock lock(&shared.mu);
    return absl::UnavailableError(absl::StrCat(
        "log ingest into droverd at '", o.server, "' stopped after ", shared.acked_bytes, " of ",
        total, " bytes were acknowledged: ", failure,
        finished.ok() || finished.error_code() == grpc::StatusCode::CANCELLED
            ? ""
            : absl::StrCat(" (", finished.error_message(), ")")));
  };
  auto heartbeat_if_due = [&]() -> bool {
    if (absl::Now() < next_heartbeat) return true;
    v1::AgentMessage heartbeat;
    heartbeat.mutable_heartbeat();
    next_heartbeat = absl::Now() + kHeartbeat;
    return stream->Write(heartbeat);
  };

  // The job, placed on the fake node; the bench answers its assignment as drover-agent
  // does for a node that prepares at once: READY, then (one node: it starts when ready)
  // RUNNING.
  auto jobs = v1::JobService::NewStub(user_channel);
  {
    v1::SubmitJobRequest request;
    *request.mutable_spec() =
        BenchJobSpec(target, o.streams, absl::StrCat("drover-bench-log-ingest-", run_id));
    v1::SubmitJobResponse submitted;
    grpc::ClientContext submit_context;
    SetDeadline(submit_context);
    if (grpc::Status s = jobs->SubmitJob(&submit_context, request, &submitted); !s.ok()) {
      failure = FromGrpcStatus(s, "submitting the benchmark job").ToString();
      return hang_up();
    }
    const absl::Time deadline = absl::Now() + kCallTimeout;
    absl::MutexLock lock(&shared.mu);
    while (!shared.assigned.has_value() && !shared.reader_done && absl::Now() < deadline) {
      shared.changed.WaitWithDeadline(&shared.mu, deadline);
    }
    if (!shared.assigned.has_value()) {
      failure = absl::StrCat("droverd did not place job ", submitted.job().id(), " on node '",
                             o.node_name, "' within ", absl::FormatDuration(kCallTimeout));
    } else if (shared.assigned->attempt().job_id() != submitted.job().id()) {
      failure = absl::StrCat("droverd placed job ", shared.assigned->attempt().job_id(),
                             ", not the benchmark's job ", submitted.job().id(), ", on node '",
                             o.node_name, "'");
    } else {
      attempt = shared.assigned->attempt();
    }
  }
  if (!failure.empty()) return hang_up();
  for (v1::AttemptReport::Phase phase : {v1::AttemptReport::READY, v1::AttemptReport::RUNNING}) {
    v1::AgentMessage report;
    *report.mutable_report()->mutable_attempt() = attempt;
    report.mutable_report()->set_phase(phase);
    if (!stream->Write(report)) {
      failure = "the stream to droverd broke while reporting the attempt";
      return hang_up();
    }
  }
  if (absl::Status s = AwaitJobState(*jobs, attempt.job_id(), v1::JobStatus::RUNNING,
                                     absl::Now() + kCallTimeout);
      !s.ok()) {
    failure = std::string(s.message());
    return hang_up();
  }

  const SteadyClock::time_point start = SteadyClock::now();
  const absl::Time deadline = absl::Now() + o.timeout;
  while (true) {
    std::vector<v1::AgentMessage> out;
    {
      absl::MutexLock lock(&shared.mu);
      auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(shared.mu) {
        return shared.acked_bytes >= total || shared.reader_done || shared.short_acks > 0 ||
               shared.capped_acks > 0 || !shared.stopped.empty();
      };
      while (true) {
        if (done()) break;
        bool room = false;
        for (const StreamState& s : shared.streams) {
          room = room || (s.sent < s.target && s.sent - s.acked < result.window_bytes);
        }
        if (room || absl::Now() >= deadline || absl::Now() >= next_heartbeat) break;
        shared.changed.WaitWithDeadline(&shared.mu, std::min(deadline, next_heartbeat));
      }
      if (shared.capped_acks > 0) {
        failure = absl::StrCat(
            "droverd capped rank ", shared.capped_rank,
            "'s stream (acknowledged without storing): ship at most its cap per stream "
            "(droverd's --max-log-bytes, --max-metric-records; fewer --megabytes or more "
            "--streams), or start droverd with the cap raised");
        break;
      }
      if (shared.acked_bytes >= total) break;
      if (shared.short_acks > 0) {
        failure = "droverd refused a chunk (acknowledged less than was sent)";
        break;
      }
      if (!shared.stopped.empty()) {
        failure = absl::StrCat("droverd stopped the attempt: ", shared.stopped);
        break;
      }
      if (shared.reader_done) {
        failure = "droverd ended the stream";
        break;
      }
      if (absl::Now() >= deadline) {
        failure = absl::StrCat("not everything was acknowledged within ",
                               absl::FormatDuration(o.timeout));
        break;
      }
      SteadyClock::time_point now = SteadyClock::now();
      for (size_t rank = 0; rank < shared.streams.size(); ++rank) {
        StreamState& s = shared.streams[rank];
        while (s.sent < s.target && s.sent - s.acked < result.window_bytes) {
          int64_t n = std::min(result.chunk_bytes, s.target - s.sent);
          v1::AgentMessage message;
          v1::LogChunk* chunk = message.mutable_log();
          *chunk->mutable_attempt() = attempt;
          chunk->set_rank(static_cast<int32_t>(rank));
          chunk->set_stream(log_stream);
          chunk->set_offset(s.sent);
          chunk->set_data(payload.data(), static_cast<size_t>(n));
          s.sent += n;
          s.in_flight.emplace_back(s.sent, now);
          out.push_back(std::move(message));
        }
      }
    }
    bool written = heartbeat_if_due();
    for (const v1::AgentMessage& message : out) {
      if (!written) break;
      written = stream->Write(message);
    }
    if (!written) {
      failure = "the stream to droverd broke while writing";
      break;
    }
  }
  if (!failure.empty()) return hang_up();

  // The attempt ends as a job's does whose every process exited 0; the job completes.
  {
    v1::AgentMessage ended;
    v1::AttemptReport* report = ended.mutable_report();
    *report->mutable_attempt() = attempt;
    report->set_phase(v1::AttemptReport::ENDED);
    for (int32_t rank = 0; rank < o.streams; ++rank) report->add_exits()->set_rank(rank);
    if (!stream->Write(ended)) {
      failure = "the stream to droverd broke while reporting the attempt's end";
      return hang_up();
    }
  }
  if (absl::Status s = AwaitJobState(*jobs, attempt.job_id(), v1::JobStatus::COMPLETED,
                                     absl::Now() + kCallTimeout);
      !s.ok()) {
    failure = std::string(s.message());
    return hang_up();
  }
  // What droverd acknowledged must be what it stores: an acknowledgement also answers a
  // chunk it refused (not the node's attempt), which would make the rate a rate of nothing.
  absl::StatusOr<std::vector<int64_t>> stored = StoredBytes(*jobs, attempt, log_stream, o.streams);
  if (!stored.ok()) {
    failure = std::string(stored.status().message());
    return hang_up();
  }
  {
    absl::MutexLock lock(&shared.mu);
    for (int64_t rank = 0; rank < o.streams; ++rank) {
      if ((*stored)[rank] != shared.streams[rank].target) {
        failure = absl::StrCat("droverd stores ", (*stored)[rank], " bytes of rank ", rank,
                               "'s stream of job ", attempt.job_id(), ", not the ",
                               shared.streams[rank].target, " it acknowledged");
        break;
      }
    }
  }
  if (absl::Status s = hang_up(); !s.ok()) return s;
  result.load_after = LoadAverage();

  absl::MutexLock lock(&shared.mu);
  result.job_id = attempt.job_id();
  result.bytes = shared.acked_bytes;
  result.chunks = shared.acked_chunks;
  result.short_acks = shared.short_acks;
  result.elapsed = absl::FromChrono(shared.last_ack - start);
  result.mib_per_second = MibPerSecond(result.bytes, result.elapsed);
  if (o.metrics) {
    result.records = result.bytes / kRecordBytes;
    double seconds = absl::ToDoubleSeconds(result.elapsed);
    result.records_per_second = seconds > 0 ? static_cast<double>(result.records) / seconds : 0;
  }
  result.ack_latency = Summarize(std::move(shared.latencies));
  return result;
}

std::string LogIngestResultText(const LogIngestResult& r, const std::string& server) {
  std::string out = absl::StrFormat(
      "log-ingest: %d MiB in %d KiB chunks over %d stream(s), window %d KiB per stream, "
      "into droverd %s for job %s\n",
      r.bytes / kMiB, r.chunk_bytes / 1024, r.streams, r.window_bytes / 1024, server, r.job_id);
  absl::StrAppend(&out, "  load average      before ", r.load_before, ", after ", r.load_after,
                  "\n");
  absl::StrAppendFormat(&out, "  acknowledged      %d chunks in %.3f s: %.1f MiB/s\n", r.chunks,
                        absl::ToDoubleSeconds(r.elapsed), r.mib_per_second);
  absl::StrAppend(&out, "  chunk ack latency ", LatencyText(r.ack_latency), "\n");
  if (r.records > 0) {
    absl::StrAppendFormat(&out, "  metric records    %d of %d bytes: %.0f records/s\n", r.records,
                          kRecordBytes, r.records_per_second);
  }
  if (r.baseline_bytes > 0) {
    absl::StrAppendFormat(
        &out, "  baseline (same disk, %d MiB of %d KiB writes):\n", r.baseline_bytes / kMiB,
        r.chunk_bytes / 1024);
    absl::StrAppendFormat(&out,
                          "    write + fdatasync per chunk   %.1f MiB/s (one: %s)\n",
                          r.baseline_synced_mib_per_second,
                          LatencyText(r.baseline_synced_latency));
    absl::StrAppendFormat(&out, "    writes, one fdatasync         %.1f MiB/s\n",
                          r.baseline_streaming_mib_per_second);
    if (r.baseline_synced_mib_per_second > 0) {
      absl::StrAppendFormat(&out,
                            "  ratio             %.2f x write+fdatasync per chunk, %.2f x "
                            "streaming\n",
                            r.mib_per_second / r.baseline_synced_mib_per_second,
                            r.mib_per_second / r.baseline_streaming_mib_per_second);
    }
  }
  absl::StrAppendFormat(&out, "  goal (issue 3)    >= 50 MB/s (47.7 MiB/s): %s\n",
                        r.mib_per_second * kMiB / 1e6 >= 50 ? "met" : "NOT met");
  return out;
}

std::string LogIngestResultJson(const LogIngestResult& r, const std::string& server) {
  return absl::StrCat(
      "{\"benchmark\":\"log-ingest\",\"server\":", JsonString(server),
      ",\"job_id\":", JsonString(r.job_id), ",\"bytes\":", r.bytes,
      ",\"chunks\":", r.chunks, ",\"streams\":", r.streams, ",\"chunk_bytes\":", r.chunk_bytes,
      ",\"window_bytes\":", r.window_bytes,
      ",\"elapsed_s\":", absl::StrFormat("%.3f", absl::ToDoubleSeconds(r.elapsed)),
      ",\"mib_per_s\":", absl::StrFormat("%.1f", r.mib_per_second),
      ",\"records\":", r.records,
      ",\"records_per_s\":", absl::StrFormat("%.0f", r.records_per_second),
      ",\"ack_latency\":", LatencyJson(r.ack_latency), ",\"short_acks\":", r.short_acks,
      ",\"baseline\":{\"bytes\":", r.baseline_bytes,
      ",\"synced_mib_per_s\":", absl::StrFormat("%.1f", r.baseline_synced_mib_per_second),
      ",\"synced_latency\":", LatencyJson(r.baseline_synced_latency),
      ",\"streaming_mib_per_s\":", absl::StrFormat("%.1f", r.baseline_streaming_mib_per_second),
      "}", ",\"load_before\":", JsonString(r.load_before),
      ",\"load_after\":", JsonString(r.load_after), "}");
}

}  // namespace drover::bench
