// Fuzz target: server/metric_records.h, the JSON lines a job writes with `run.log` (and the
// agents' samplers), read by droverd for GetMetrics. Invariants: the fast path reads each
// line exactly as the general JSON reader does; the collector uses whole
// lines only (everything once the stream is final), however the bytes are split; and the
// answer it builds can be sent: it serializes and parses back (a proto3 string field with
// invalid UTF-8 would fail every client that reads the answer).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>

#include "drover/v1/job_service.pb.h"
#include "server/metric_records.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace drover;
  absl::string_view text = fuzz::AsText(data, size);

  // Every line alone.
  for (absl::string_view rest = text; !rest.empty();) {
    size_t end = rest.find('\n');
    absl::string_view line = rest.substr(0, end);
    std::optional<server::MetricRecord> record = server::ParseMetricRecord(line);
    if (record.has_value()) {
      FUZZ_CHECK(!record->name.empty() || !record->tags.empty(), std::string(line));
      FUZZ_CHECK(record->step >= 0, std::string(line));
    }
    // The fast path reads every line as the JSON reader does, to the bit.
    std::optional<server::MetricRecord> reference =
        server::ParseMetricRecordWithJsonReader(line);
    FUZZ_CHECK(record.has_value() == reference.has_value(), std::string(line));
    if (record.has_value()) {
      FUZZ_CHECK(record->name == reference->name && record->step == reference->step &&
                     record->tags == reference->tags &&
                     std::memcmp(&record->time, &reference->time, sizeof(double)) == 0 &&
                     std::memcmp(&record->value, &reference->value, sizeof(double)) == 0,
                 std::string(line));
    }
    rest = end == absl::string_view::npos ? absl::string_view() : rest.substr(end + 1);
  }

  // The whole text as one stream, delivered in two pieces split at a point the input picks.
  v1::GetMetricsRequest request;
  v1::GetMetricsResponse response;
  server::MetricsCollector collector(request, &response);
  size_t split = size == 0 ? 0 : data[0] % (size + 1);
  size_t used = collector.Add(v1::MetricSeries::USER, 0, text.substr(0, split), false);
  FUZZ_CHECK(used <= split, "used more than it was given");
  FUZZ_CHECK(used == 0 || text[used - 1] == '\n', "used a partial line");
  size_t rest = collector.Add(v1::MetricSeries::USER, 0, text.substr(used), true);
  FUZZ_CHECK(used + rest == size, "a final stream was not used whole");

  std::string wire;
  FUZZ_CHECK(response.SerializeToString(&wire), "GetMetricsResponse does not serialize");
  v1::GetMetricsResponse received;
  FUZZ_CHECK(received.ParseFromString(wire), "GetMetricsResponse does not parse back");
  return 0;
}
