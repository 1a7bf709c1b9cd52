// The log-ingest benchmark: how fast droverd takes job output from agents, durably. It acts
// as an agent on the AgentService stream the way drover-agent does since nodes have
// identities (issue 15): it makes a one-time join token for its node with the caller's
// admin token ($DROVER_TOKEN), joins with a key and CSR of its own, and connects with that
// node certificate. droverd stores log chunks only of an attempt that runs on the node that
// sends them, so the benchmark makes a compute target of its node alone (node label
// `drover-bench-node`), submits a job there with one process per stream, answers the
// assignment READY and RUNNING as an agent whose node prepares at once, and ships LogChunks
// for that attempt, one stream per rank. It counts bytes that droverd acknowledged (a LogAck
// comes only after the chunk was fsynced, see storage/log_store.h), then reports the
// attempt ENDED (the job completes), reads the logs back with StreamLogs and fails the run
// unless droverd stores exactly what it acknowledged. Like drover-agent's LogShipper it
// keeps at most `window_kib` unacknowledged per stream.
//
// Caps (droverd's --max-log-bytes, 256 MiB per rank stream by default, and
// --max-metric-records, 1,000,000 records): the benchmark does not raise them; a stream past
// its cap is acknowledged without being stored, so a capped acknowledgement fails the run.
// Ship at most a cap per stream, or start droverd with the cap raised.
//
// The baseline, measured in the same run on the disk of droverd's state folder, is the raw
// rate of `chunk_kib` writes each followed by fdatasync, and of the same writes with one
// fdatasync at the end (the disk's streaming rate).
//
// The fake node's capacity (1 cpu, 1 GiB) is taken whole by the benchmark job, so nothing
// else is placed on it while it runs; it shows as DOWN after the run. The job and its logs
// stay in droverd; the compute target is deleted. RunLogIngestBench blocks the calling
// thread.
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
  // droverd's CA certificate (PEM); empty: $DROVER_CA. The node certificate is checked
  // against it, so one of the two is required.
  std::string ca_file;
  // Total log data to ship, in MiB, spread evenly over the streams.
  int64_t megabytes = 256;
  // Bytes per LogChunk (the agent's default is 256 KiB).
  int64_t chunk_kib = 256;
  // Streams (ranks of the attempt, 1-256) shipped at once on the one agent stream.
  int64_t streams = 1;
  // Unacknowledged bytes allowed per stream (the agent's default is 4 MiB).
  int64_t window_kib = 4096;
  // The fake agent's node name ([a-z0-9-], as a join token's).
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
  // The benchmark job whose attempt carried the logs.
  std::string job_id;
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

// INVALID_ARGUMENT for bad options or an unreadable CA file; droverd's error when it refuses
// the join token, the join, the compute target or the job (PERMISSION_DENIED without an
// admin's token); UNAVAILABLE when droverd cannot be reached, refuses the hello, does not
// place the job on the fake node, ends the stream, caps or refuses a chunk, does not
// acknowledge everything within `timeout`, or stores less than it acknowledged; the
// baseline's disk errors as from RunFsyncBench.
absl::StatusOr<LogIngestResult> RunLogIngestBench(const LogIngestOptions& options);

std::string LogIngestResultText(const LogIngestResult& result, const std::string& server);
std::string LogIngestResultJson(const LogIngestResult& result, const std::string& server);

}  // namespace drover::bench

#endif  // DROVER_BENCH_LOG_INGEST_BENCH_H_
