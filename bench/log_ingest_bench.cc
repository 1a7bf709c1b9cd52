#include "bench/log_ingest_bench.h"

#include <fcntl.h>
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <fstream>
#include <random>
#include <thread>
#include <vector>

#include "bench/channel.h"
#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "bench/fsync_bench.h"
#include "drover/v1/agent_service.grpc.pb.h"

namespace drover::bench {
namespace {

using SteadyClock = std::chrono::steady_clock;
constexpr int64_t kMiB = 1 << 20;
// droverd takes messages up to 4 MiB (server/droverd.cc); leave room for the envelope.
constexpr int64_t kMaxChunkKib = 3 * 1024;
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

// Shared between the writer (the calling thread) and the reader of acknowledgements.
struct Shared {
  absl::Mutex mu;
  absl::CondVar changed;
  std::vector<StreamState> streams ABSL_GUARDED_BY(mu);
  int64_t acked_bytes ABSL_GUARDED_BY(mu) = 0;
  int64_t acked_chunks ABSL_GUARDED_BY(mu) = 0;
  int64_t short_acks ABSL_GUARDED_BY(mu) = 0;
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
  if (o.streams < 1 || o.streams > 4096) {
    return absl::InvalidArgumentError(
        absl::StrCat("--streams: ", o.streams, " is out of range; use 1 to 4096"));
  }
  if (o.window_kib < o.chunk_kib) {
    return absl::InvalidArgumentError(absl::StrCat("--window-kib: ", o.window_kib,
                                                   " must be at least --chunk-kib (",
                                                   o.chunk_kib, ")"));
  }
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

  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(o.server, DroverdCredentials(o.server, o.ca_file));
  if (!channel->WaitForConnected(std::chrono::system_clock::now() +
                                 absl::ToChronoMilliseconds(o.connect_timeout))) {
    return absl::UnavailableError(absl::StrCat(
        "cannot reach droverd at '", o.server, "' within ",
        absl::FormatDuration(o.connect_timeout),
        "; is it running, and is --server its --listen address?"));
  }
  std::unique_ptr<v1::AgentService::Stub> stub = v1::AgentService::NewStub(channel);
  grpc::ClientContext context;
  auto stream = stub->Connect(&context);

  v1::AgentMessage hello;
  v1::NodeInfo* node = hello.mutable_hello()->mutable_node();
  node->set_name(o.node_name);
  node->add_addresses("127.0.0.1");
  // Too small for any job: droverd must not place work on a node that runs nothing.
  node->mutable_capacity()->set_cpus(0.001);
  node->mutable_capacity()->set_memory_mib(1);
  node->set_agent_version("drover-bench");
  v1::SchedulerMessage welcome;
  if (!stream->Write(hello) || !stream->Read(&welcome) || !welcome.has_welcome()) {
    context.TryCancel();
    grpc::Status status = stream->Finish();
    return absl::UnavailableError(absl::StrCat(
        "droverd at '", o.server, "' did not welcome the fake agent '", o.node_name,
        "': ", status.ok() ? "no welcome" : status.error_message()));
  }

  std::random_device random;
  const std::string job_id = absl::StrFormat("j-bench-%08x%08x", random(), random());
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

  Shared shared;
  const int64_t total = o.megabytes * kMiB;
  {
    absl::MutexLock lock(&shared.mu);
    shared.streams.resize(static_cast<size_t>(o.streams));
    for (int64_t i = 0; i < o.streams; ++i) {
      int64_t& target = shared.streams[i].target;
      target = total / o.streams + (i == o.streams - 1 ? total % o.streams : 0);
      // Whole chunks of whole records.
      if (o.metrics) target = std::max<int64_t>(1, target / result.chunk_bytes) * result.chunk_bytes;
    }
  }

  std::thread reader([&] {
    v1::SchedulerMessage message;
    while (stream->Read(&message)) {
      if (!message.has_log_ack() || message.log_ack().attempt().job_id() != job_id) continue;
      const v1::LogAck& ack = message.log_ack();
      SteadyClock::time_point now = SteadyClock::now();
      absl::MutexLock lock(&shared.mu);
      if (ack.rank() < 0 || ack.rank() >= static_cast<int32_t>(shared.streams.size())) continue;
      StreamState& s = shared.streams[ack.rank()];
      if (s.in_flight.empty()) continue;
      auto [end, sent_at] = s.in_flight.front();
      s.in_flight.pop_front();
      shared.latencies.push_back(absl::FromChrono(now - sent_at));
      if (ack.offset() < end) {
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

  const SteadyClock::time_point start = SteadyClock::now();
  const absl::Time deadline = absl::Now() + o.timeout;
  absl::Time next_heartbeat = absl::Now() + kHeartbeat;
  std::string failure;
  while (true) {
    std::vector<v1::AgentMessage> out;
    {
      absl::MutexLock lock(&shared.mu);
      while (true) {
        if (shared.acked_bytes >= total || shared.reader_done || shared.short_acks > 0) break;
        bool room = false;
        for (const StreamState& s : shared.streams) {
          room = room || (s.sent < s.target && s.sent - s.acked < result.window_bytes);
        }
        if (room || absl::Now() >= deadline || absl::Now() >= next_heartbeat) break;
        shared.changed.WaitWithDeadline(&shared.mu, std::min(deadline, next_heartbeat));
      }
      if (shared.acked_bytes >= total) break;
      if (shared.short_acks > 0) {
        failure = "droverd refused a chunk (acknowledged less than was sent)";
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
          chunk->mutable_attempt()->set_job_id(job_id);
          chunk->mutable_attempt()->set_epoch(1);
          chunk->set_rank(static_cast<int32_t>(rank));
          chunk->set_stream(o.metrics ? v1::METRICS : v1::STDOUT);
          chunk->set_offset(s.sent);
          chunk->set_data(payload.data(), static_cast<size_t>(n));
          s.sent += n;
          s.in_flight.emplace_back(s.sent, now);
          out.push_back(std::move(message));
        }
      }
    }
    if (absl::Now() >= next_heartbeat) {
      v1::AgentMessage heartbeat;
      heartbeat.mutable_heartbeat();
      out.push_back(std::move(heartbeat));
      next_heartbeat = absl::Now() + kHeartbeat;
    }
    bool written = true;
    for (const v1::AgentMessage& message : out) {
      if (!(written = stream->Write(message))) break;
    }
    if (!written) {
      failure = "the stream to droverd broke while writing";
      break;
    }
  }

  stream->WritesDone();
  context.TryCancel();
  reader.join();
  grpc::Status finished = stream->Finish();
  result.load_after = LoadAverage();

  absl::MutexLock lock(&shared.mu);
  if (!failure.empty()) {
    return absl::UnavailableError(absl::StrCat(
        "log ingest into droverd at '", o.server, "': ", failure, " after ",
        shared.acked_bytes, " of ", total, " bytes",
        finished.ok() ? "" : absl::StrCat(" (", finished.error_message(), ")")));
  }
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
      "into droverd %s\n",
      r.bytes / kMiB, r.chunk_bytes / 1024, r.streams, r.window_bytes / 1024, server);
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
      "{\"benchmark\":\"log-ingest\",\"server\":", JsonString(server), ",\"bytes\":", r.bytes,
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
