// Where the time of a chart's metric read goes (issue 20): writes `points` metric records per
// rank into a LogStore of its own (the store droverd keeps them in, written directly: no
// droverd, no agent) as the `drover` Python module writes them, then times, on the calling
// thread, each piece of a GetMetrics answer apart: reading the stored bytes; parsing the
// lines with the general JSON reader and with the fast path droverd uses; the old shape of
// the HTTP answer (every point collected into 16 MiB GetMetrics pages, each page serialized
// and parsed again as the gateway's in-process channel does); the thinned read GetMetrics
// does with `max_points` (every point read and thinned, O(max_points) kept); and the JSON of
// the thinned answer. Each step is run `repeats` times; the median is reported.
#ifndef DROVER_BENCH_METRICS_READ_BENCH_H_
#define DROVER_BENCH_METRICS_READ_BENCH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace drover::bench {

struct MetricsReadOptions {
  // Scratch folder (created, and emptied of what the run wrote afterwards).
  std::string dir;
  // Points per rank (one series `loss` each).
  int64_t points = 1'000'000;
  int64_t ranks = 1;
  // GetMetrics' max_points for the thinned read (the web app asks two per pixel column).
  int64_t max_points = 2800;
  int64_t repeats = 3;
};

struct MetricsReadResult {
  int64_t stored_bytes = 0;
  int64_t points = 0;        // in all ranks
  int64_t thinned_points = 0;  // in the thinned answer, all series
  int64_t old_answer_pages = 0;
  int64_t thinned_json_bytes = 0;
  absl::Duration read;             // the stored bytes, 1 MiB at a time
  absl::Duration parse_json_reader;  // every line through the general JSON reader
  absl::Duration parse_fast;       // every line through ParseMetricRecord
  absl::Duration old_collect;      // ReadMetrics into 16 MiB pages of every point
  absl::Duration old_wire;         // those pages serialized and parsed back
  absl::Duration thinned_read;     // ReadMetrics with max_points, Finish
  absl::Duration thinned_json;     // the thinned answer as JSON
};

// INVALID_ARGUMENT for bad options; the store's error when it cannot write or read.
absl::StatusOr<MetricsReadResult> RunMetricsReadBench(const MetricsReadOptions& options);

std::string MetricsReadResultText(const MetricsReadOptions& options, const MetricsReadResult& r);
std::string MetricsReadResultJson(const MetricsReadOptions& options, const MetricsReadResult& r);

}  // namespace drover::bench

#endif  // DROVER_BENCH_METRICS_READ_BENCH_H_
