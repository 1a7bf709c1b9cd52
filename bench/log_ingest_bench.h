// The log-ingest benchmark: how fast droverd takes job output from agents, durably. It acts
// as an agent on the AgentService stream (hello for a node of its own, then LogChunks for a
// made-up attempt "j-bench-<random>" epoch 1, one stream per rank) and counts bytes that
// droverd acknowledged (a LogAck comes only after the chunk was fsynced, see
// storage/log_store.h). Like drover-agent's LogShipper it keeps at most `window_kib`
// unacknowledged per stream. The baseline, measured in the same run on the disk of
// droverd's state folder, is the raw rate of `chunk_kib` writes each followed by fdatasync,
// and of the same writes with one fdatasync at the end (the disk's streaming rate).
//
// The fake node registers with a capacity too small for any job (0.001 cpu, 1 MiB), so
// droverd never places work on it; it shows as DOWN after the run. The ingested logs stay in
// droverd's state folder. RunLogIngestBench blocks the calling thread.
#ifndef DROVER_BENCH_LOG_INGEST_BENCH_H_
#define DROVER_BENCH_LOG_INGEST_BENCH_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bench/latency.h"

namespace drover::bench {

struct LogIngestOptions {
  // droverd's address, HOST:PORT.
  std::string server;
  // droverd's CA certificate (PEM); empty: $DROVER_CA.
  std::string ca_file;
  // Total log data to ship, in MiB, spread evenly over the streams.
  int64_t megabytes = 256;
  // Bytes per LogChunk (the agent's default is 256 KiB).
  int64_t chunk_kib = 256;
  // Streams (ranks of the attempt) shipped at once on the one agent stream.
  int64_t streams = 1;
  // Unacknowledged bytes allowed per stream (the agent's default is 4 MiB).
  int64_t window_kib = 4096;
  // The fake agent's node name.
  std::string node_name = "bench-ingest";
  // A folder on the disk of droverd's state folder for the baseline; empty: no baseline.
  std::string baseline_dir;
  // Ship metric records (METRICS streams of JSON lines, as the `drover` Python module writes
  // them, each chunk ending at a line end) instead of opaque output bytes.
  bool metrics = false;
  // MiB written by each baseline (0: as much as the ingest, at most 256).
  int64_t baseline_megabytes = 0;
  absl::Duration connect_timeout = absl::Seconds(10);
  // How long the whole ingest may take.
  absl::Duration timeout = absl::Minutes(10);
};

struct LogIngestResult {
  int64_t bytes = 0;    // acknowledged
  int64_t chunks = 0;   // acknowledged
  int64_t streams = 0;
  int64_t chunk_bytes = 0;
  int64_t window_bytes = 0;
  // With `metrics`: the records acknowledged (0 otherwise).
  int64_t records = 0;
  double records_per_second = 0;
  // First chunk sent -> last acknowledgement.
  absl::Duration elapsed;
  double mib_per_second = 0;
  // Chunk sent -> its acknowledgement.
  LatencySummary ack_latency;
  // Acknowledgements that did not move a stream to the end of its chunk (a gap refused, a
  // write error): should be none.
  int64_t short_acks = 0;

  // Baselines on the state folder's disk (0 when not measured).
  double baseline_synced_mib_per_second = 0;    // write + fdatasync per chunk
  LatencySummary baseline_synced_latency;       // of one write + fdatasync
  double baseline_streaming_mib_per_second = 0; // all writes, one fdatasync
  int64_t baseline_bytes = 0;
  std::string load_before;
  std::string load_after;
};

// INVALID_ARGUMENT for bad options; UNAVAILABLE when droverd cannot be reached, refuses the
// hello, ends the stream, or does not acknowledge everything within `timeout`; the
// baseline's disk errors as from RunFsyncBench.
absl::StatusOr<LogIngestResult> RunLogIngestBench(const LogIngestOptions& options);

std::string LogIngestResultText(const LogIngestResult& result, const std::string& server);
std::string LogIngestResultJson(const LogIngestResult& result, const std::string& server);

}  // namespace drover::bench

#endif  // DROVER_BENCH_LOG_INGEST_BENCH_H_
