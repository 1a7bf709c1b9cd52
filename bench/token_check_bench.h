// The cost of droverd's token check on every call, measured without gRPC: what
// Authenticator::Identify does for a caller with a bearer token (SHA-256 of the token, then
// one read of the users table through the store's reader connections), against a real
// SqliteStore in a scratch folder holding `users` users. Runs `threads` threads at once, as
// gRPC's handler threads would. Blocks the calling thread for the run.
#ifndef DROVER_BENCH_TOKEN_CHECK_BENCH_H_
#define DROVER_BENCH_TOKEN_CHECK_BENCH_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "bench/latency.h"

namespace drover::bench {

struct TokenCheckOptions {
  // Folder for the scratch database (created and removed inside it).
  std::string dir;
  int64_t users = 1000;
  // Checks per thread.
  int64_t count = 20000;
  int64_t threads = 2;
};

struct TokenCheckResult {
  LatencySummary hash;   // SHA-256 of the token alone
  LatencySummary check;  // hash + store lookup: one call's token check
  double checks_per_second = 0;  // all threads together
};

// INVALID_ARGUMENT for bad options; UNAVAILABLE when the scratch store cannot be made;
// INTERNAL when a lookup does not find the user it should.
absl::StatusOr<TokenCheckResult> RunTokenCheckBench(const TokenCheckOptions& options);

}  // namespace drover::bench

#endif  // DROVER_BENCH_TOKEN_CHECK_BENCH_H_
