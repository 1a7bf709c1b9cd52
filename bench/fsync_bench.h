// The cost of one durable write on a disk: the baseline that droverd's submit latency and
// throughput are compared with. SQLite in WAL mode with synchronous=FULL appends the
// transaction's pages to the WAL and syncs it once per commit; this times the same shape of
// work (a small write followed by a sync) without SQLite, in a scratch file under a folder
// on the disk in question. Runs on the calling thread.
#ifndef DROVER_BENCH_FSYNC_BENCH_H_
#define DROVER_BENCH_FSYNC_BENCH_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "bench/latency.h"

namespace drover::bench {

struct FsyncBenchOptions {
  // Folder on the disk to measure; a scratch file is created there and removed afterwards.
  std::string dir;
  // Writes timed per mode.
  int64_t count = 200;
  // Bytes per write.
  int64_t size = 4096;
  // fdatasync(2) (what SQLite uses on Linux) or fsync(2).
  bool use_fsync = false;
};

struct FsyncBenchResult {
  // Each write extends the file, so the sync also commits the new size (the WAL while it
  // grows).
  LatencySummary append;
  // Each write lands inside the already synced file (a WAL reused after a checkpoint).
  LatencySummary overwrite;
};

// INVALID_ARGUMENT for bad options; UNAVAILABLE when the scratch file cannot be created,
// written or synced (the message names the file and the error).
absl::StatusOr<FsyncBenchResult> RunFsyncBench(const FsyncBenchOptions& options);

}  // namespace drover::bench

#endif  // DROVER_BENCH_FSYNC_BENCH_H_
