// Latency samples reduced to the figures a benchmark reports (percentiles, mean, maximum),
// and the small formatting helpers shared by the subcommands' text and JSON reports.
// Pure functions, any thread.
#ifndef DROVER_BENCH_LATENCY_H_
#define DROVER_BENCH_LATENCY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace drover::bench {

struct LatencySummary {
  int64_t count = 0;
  absl::Duration mean;
  absl::Duration p50;
  absl::Duration p90;
  absl::Duration p99;
  absl::Duration max;
};

// Nearest-rank percentiles of `samples` (which it sorts). All zero for no samples.
LatencySummary Summarize(std::vector<absl::Duration> samples);

// Milliseconds with three decimals ("4.125"), for reports.
std::string Millis(absl::Duration d);

// `{"count":N,"mean_ms":...,"p50_ms":...,...}`.
std::string LatencyJson(const LatencySummary& s);

// "p50 4.125  p90 6.000  p99 9.870  max 12.001 (ms)".
std::string LatencyText(const LatencySummary& s);

// `text` as a JSON string literal, quotes included.
std::string JsonString(absl::string_view text);

}  // namespace drover::bench

#endif  // DROVER_BENCH_LATENCY_H_
