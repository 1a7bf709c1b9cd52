#include "bench/latency.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace drover::bench {
namespace {

// Nearest rank: the smallest sample with at least `fraction` of the samples at or below it.
absl::Duration Percentile(const std::vector<absl::Duration>& sorted, double fraction) {
  size_t rank = static_cast<size_t>(std::ceil(fraction * static_cast<double>(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

}  // namespace

LatencySummary Summarize(std::vector<absl::Duration> samples) {
  LatencySummary s;
  if (samples.empty()) return s;
  std::sort(samples.begin(), samples.end());
  absl::Duration total;
  for (absl::Duration d : samples) total += d;
  s.count = static_cast<int64_t>(samples.size());
  s.mean = total / s.count;
  s.p50 = Percentile(samples, 0.50);
  s.p90 = Percentile(samples, 0.90);
  s.p99 = Percentile(samples, 0.99);
  s.max = samples.back();
  return s;
}

std::string Millis(absl::Duration d) {
  return absl::StrFormat("%.3f", absl::ToDoubleMilliseconds(d));
}

std::string LatencyJson(const LatencySummary& s) {
  return absl::StrCat("{\"count\":", s.count, ",\"mean_ms\":", Millis(s.mean),
                      ",\"p50_ms\":", Millis(s.p50), ",\"p90_ms\":", Millis(s.p90),
                      ",\"p99_ms\":", Millis(s.p99), ",\"max_ms\":", Millis(s.max), "}");
}

std::string LatencyText(const LatencySummary& s) {
  return absl::StrCat("p50 ", Millis(s.p50), "  p90 ", Millis(s.p90), "  p99 ", Millis(s.p99),
                      "  max ", Millis(s.max), "  mean ", Millis(s.mean), " (ms)");
}

std::string JsonString(absl::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppendFormat(&out, "\\u%04x", c);
        } else {
          out += c;
        }
    }
  }
  out += "\"";
  return out;
}

}  // namespace drover::bench
