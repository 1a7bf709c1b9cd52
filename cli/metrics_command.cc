// `drover metrics`: what a job's scripts logged with `run.log` and what its containers used,
// as a summary table with sparklines, or whole series as JSON or CSV; -f follows the job.
#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/types/span.h"
#include "cli/format.h"
#include "cli/invocation.h"

namespace drover::cli {
namespace {

using SeriesKey = std::tuple<int, int32_t, std::string>;  // source, rank, name

struct Points {
  std::vector<int64_t> steps;
  std::vector<double> times;
  std::vector<double> values;
};

std::string FormatValue(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return absl::StrFormat("%.6g", v);
}

std::string RankLabel(int source, int32_t rank) {
  return absl::StrCat(source == v1::MetricSeries::SYSTEM ? "node " : "rank ", rank);
}

// `width` characters from ▁ to █ for the series (averaged into `width` buckets), scaled
// between its smallest and largest finite value; NaN and infinities as spaces.
std::string Sparkline(const std::vector<double>& values, size_t width = 24) {
  static const char* const kBars[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
  if (values.empty()) return "";
  size_t n = std::min(width, values.size());
  std::vector<double> buckets(n, 0);
  std::vector<int> counts(n, 0);
  for (size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) continue;
    size_t b = i * n / values.size();
    buckets[b] += values[i];
    ++counts[b];
  }
  double lo = INFINITY, hi = -INFINITY;
  for (size_t b = 0; b < n; ++b) {
    if (counts[b] == 0) continue;
    buckets[b] /= counts[b];
    lo = std::min(lo, buckets[b]);
    hi = std::max(hi, buckets[b]);
  }
  std::string out;
  for (size_t b = 0; b < n; ++b) {
    if (counts[b] == 0) {
      out += " ";
      continue;
    }
    int level = hi > lo ? static_cast<int>(std::lround((buckets[b] - lo) / (hi - lo) * 7)) : 3;
    out += kBars[std::clamp(level, 0, 7)];
  }
  return out;
}

class Collected {
 public:
  // Adds a message's points; with `skip` (after a reconnect, when the stream starts over)
  // the points already held are not added again.
  void Add(const v1::GetMetricsResponse& message, std::map<SeriesKey, size_t>* seen,
           const std::function<void(const SeriesKey&, int64_t, double, double)>& on_point) {
    if (message.attempt() > 0) attempt_ = message.attempt();
    for (const auto& [k, v] : message.tags()) tags_[k] = v;
    skipped_ += message.skipped_lines();
    capped_ += message.capped_streams();
    dropped_ += message.dropped_records();
    for (const v1::MetricSeries& s : message.series()) {
      SeriesKey key{s.source(), s.rank(), s.name()};
      Points& p = series_[key];
      size_t& already = (*seen)[key];
      for (int i = 0; i < s.values_size(); ++i) {
        if (already > 0) {
          --already;
          continue;
        }
        p.steps.push_back(s.steps(i));
        p.times.push_back(s.times(i));
        p.values.push_back(s.values(i));
        if (on_point) on_point(key, s.steps(i), s.times(i), s.values(i));
      }
    }
  }

  // How many points each series holds, to skip them when the stream starts over.
  std::map<SeriesKey, size_t> Counts() const {
    std::map<SeriesKey, size_t> out;
    for (const auto& [key, p] : series_) out[key] = p.values.size();
    return out;
  }

  std::string Table(const std::string& job_id) const {
    std::ostringstream out;
    out << job_id << " attempt " << attempt_;
    if (!tags_.empty()) {
      std::vector<std::string> tags;
      for (const auto& [k, v] : tags_) tags.push_back(absl::StrCat(k, "=", v));
      out << "  tags: " << absl::StrJoin(tags, " ");
    }
    out << "\n";
    if (series_.empty()) {
      out << "no metrics yet (scripts log them with drover.Run.get_context().log(name, value))\n";
      return out.str();
    }
    std::vector<std::vector<std::string>> rows = {
        {"NAME", "RANK", "LAST", "MIN", "MAX", "POINTS", "TREND"}};
    for (const auto& [key, p] : series_) {
      const auto& [source, rank, name] = key;
      double lo = INFINITY, hi = -INFINITY;
      for (double v : p.values) {
        if (std::isnan(v)) continue;
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
      rows.push_back({source == v1::MetricSeries::SYSTEM ? absl::StrCat("system/", name) : name,
                RankLabel(source, rank), FormatValue(p.values.back()),
                lo <= hi ? FormatValue(lo) : "nan", lo <= hi ? FormatValue(hi) : "nan",
                absl::StrCat(p.values.size()), Sparkline(p.values)});
    }
    out << FormatTable(rows);
    if (skipped_ > 0) out << skipped_ << " malformed metric lines skipped\n";
    if (capped_ > 0) {
      out << capped_ << " metric stream" << (capped_ == 1 ? "" : "s")
          << " reached droverd's cap (--max-metric-records): later records were not stored";
      if (dropped_ > 0) out << " (at least " << dropped_ << " dropped)";
      out << "\n";
    }
    return out.str();
  }

  std::string Json(const std::string& job_id) const {
    std::string out = absl::StrCat("{\"job_id\":\"", job_id, "\",\"attempt\":", attempt_,
                                   ",\"tags\":{");
    bool first = true;
    for (const auto& [k, v] : tags_) {
      absl::StrAppend(&out, first ? "" : ",", JsonString(k), ":", JsonString(v));
      first = false;
    }
    absl::StrAppend(&out, "},\"series\":[");
    first = true;
    for (const auto& [key, p] : series_) {
      const auto& [source, rank, name] = key;
      absl::StrAppend(&out, first ? "" : ",", "{\"name\":", JsonString(name), ",\"source\":\"",
                      source == v1::MetricSeries::SYSTEM ? "system" : "user",
                      "\",\"rank\":", rank, ",\"points\":[");
      for (size_t i = 0; i < p.values.size(); ++i) {
        absl::StrAppend(&out, i == 0 ? "" : ",", PointJson(p.steps[i], p.times[i], p.values[i]));
      }
      absl::StrAppend(&out, "]}");
      first = false;
    }
    absl::StrAppend(&out, "],\"skipped_lines\":", skipped_, ",\"capped_streams\":", capped_,
                    ",\"dropped_records\":", dropped_, "}");
    return out;
  }

  std::string Csv() const {
    std::string out = "name,source,rank,step,time,value\n";
    for (const auto& [key, p] : series_) {
      for (size_t i = 0; i < p.values.size(); ++i) out += CsvRow(key, p.steps[i], p.times[i], p.values[i]);
    }
    return out;
  }

  static std::string JsonString(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
      if (c == '"' || c == '\\') {
        out += '\\';
        out += c;
      } else if (static_cast<unsigned char>(c) < 0x20) {
        out += absl::StrFormat("\\u%04x", c);
      } else {
        out += c;
      }
    }
    return out + "\"";
  }
  static std::string PointJson(int64_t step, double time, double value) {
    // JSON has no NaN or infinities: they are written as strings, as the module does.
    std::string v = std::isfinite(value) ? absl::StrFormat("%.17g", value)
                                         : absl::StrCat("\"", std::isnan(value) ? "NaN"
                                                              : value > 0       ? "Infinity"
                                                                                : "-Infinity",
                                                        "\"");
    return absl::StrCat("{\"step\":", step, ",\"time\":", absl::StrFormat("%.6f", time),
                        ",\"value\":", v, "}");
  }
  static std::string CsvRow(const SeriesKey& key, int64_t step, double time, double value) {
    const auto& [source, rank, name] = key;
    std::string quoted = name;
    if (name.find_first_of(",\"\n") != std::string::npos) {
      quoted = "\"";
      for (char c : name) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
      quoted += "\"";
    }
    return absl::StrCat(quoted, ",", source == v1::MetricSeries::SYSTEM ? "system" : "user", ",",
                        rank, ",", step, ",", absl::StrFormat("%.6f", time), ",",
                        absl::StrFormat("%.17g", value), "\n");
  }

 private:
  int64_t attempt_ = 0;
  std::map<std::string, std::string> tags_;
  int64_t skipped_ = 0;
  int64_t capped_ = 0;   // streams that reached droverd's cap
  int64_t dropped_ = 0;  // records dropped past it
  std::map<SeriesKey, Points> series_;
};

}  // namespace

int MetricsCommand(Invocation& inv, const std::vector<std::string>& args) {
  bool follow = false;
  std::vector<std::string> names;
  std::vector<std::string> rank_values;
  std::string source = "all";
  int64_t attempt = 0;
  FlagSet flags(
      "drover metrics [flags] JOB",
      "Prints a job's metrics: what its scripts logged with the drover Python module\n"
      "(run = drover.Run.get_context(); run.log('loss', 0.25)) per rank, and what its\n"
      "containers used per node (system/cpu_cores, system/memory_bytes,\n"
      "system/memory_peak_bytes). The table shows each series' last value, minimum,\n"
      "maximum, number of points and a sparkline; --output json or csv print every point.\n"
      "With -f, prints each new point as it arrives until the job ends (as JSON lines or\n"
      "CSV rows with --output json|csv), then the table, and exits like 'drover watch'.");
  flags.Bool("follow,f", &follow, "Keep printing new points until the job ends");
  flags.Repeated("name", &names, "Only this metric (repeatable)", "NAME");
  flags.Repeated("rank", &rank_values, "Only this rank, or node for system metrics (a,b for several)", "N");
  flags.String("source", &source, "user (the scripts'), system (the containers') or all", "SOURCE");
  flags.Int("attempt", &attempt, "Attempt to show (1, 2, ...); default: the current one");
  AddGlobalFlags(&flags, &inv.global());
  inv.AllowCsv();
  std::vector<std::string> positional;
  if (auto done = inv.Parse(flags, args, &positional, /*interspersed=*/true,
                            "  drover metrics j-42\n"
                            "  drover metrics -f j-42\n"
                            "  drover metrics j-42 --name loss --output csv > loss.csv\n"
                            "  drover metrics j-42 --source system --output json\n")) {
    return *done;
  }
  v1::GetMetricsRequest request;
  if (auto done = TakeJobId(inv, "metrics", positional, request.mutable_job_id())) return *done;
  if (source == "user") {
    request.add_sources(v1::MetricSeries::USER);
  } else if (source == "system") {
    request.add_sources(v1::MetricSeries::SYSTEM);
  } else if (source != "all") {
    return inv.Fail(kExitUsage, absl::StrCat("--source: '", source, "' is not user, system or all"));
  }
  if (flags.WasSet("attempt") && attempt < 1) {
    return inv.Fail(kExitUsage, absl::StrCat("--attempt: ", attempt,
                                             " is not an attempt; attempts are numbered from 1"));
  }
  for (const std::string& value : rank_values) {
    for (absl::string_view part : absl::StrSplit(value, ',', absl::SkipWhitespace())) {
      int32_t rank = 0;
      if (!absl::SimpleAtoi(part, &rank) || rank < 0) {
        return inv.Fail(kExitUsage, absl::StrCat("--rank: '", part,
                                                 "' is not a rank; ranks are numbers from 0"));
      }
      request.add_ranks(rank);
    }
  }
  for (const std::string& name : names) request.add_names(name);
  request.set_attempt(attempt);
  request.set_follow(follow);

  inv.WillStream();
  int exit_code = kExitOk;
  std::unique_ptr<DroverClient> client = inv.Connect(&exit_code);
  if (client == nullptr) return exit_code;

  Collected collected;
  std::optional<v1::Job> ended;
  std::map<SeriesKey, size_t> seen;  // points to skip per series when the stream starts over
  std::function<void(const SeriesKey&, int64_t, double, double)> on_point;
  if (follow) {
    on_point = [&inv](const SeriesKey& key, int64_t step, double time, double value) {
      const auto& [src, rank, name] = key;
      if (inv.global().csv) {
        inv.out() << Collected::CsvRow(key, step, time, value);
      } else if (inv.global().json) {
        inv.out() << "{\"name\":" << Collected::JsonString(name) << ",\"source\":\""
                  << (src == v1::MetricSeries::SYSTEM ? "system" : "user")
                  << "\",\"rank\":" << rank << ","
                  << Collected::PointJson(step, time, value).substr(1) << "\n";
      } else {
        inv.out() << "[" << RankLabel(src, rank) << "] "
                  << (src == v1::MetricSeries::SYSTEM ? "system/" : "") << name
                  << " step=" << step << " value=" << FormatValue(value) << "\n";
      }
      inv.out().flush();
    };
    if (inv.global().csv) inv.out() << "name,source,rank,step,time,value\n";
  }
  bool received = false;
  size_t retries = 0;
  while (true) {
    absl::Status status = client->WatchMetrics(request, [&](const v1::GetMetricsResponse& m) {
      received = true;
      retries = 0;
      if (m.has_job()) {
        ended = m.job();
        return;
      }
      collected.Add(m, &seen, on_point);
    });
    if (ended.has_value() || (!follow && status.ok())) break;
    bool retryable = status.ok() || status.code() == absl::StatusCode::kUnavailable;
    absl::Span<const absl::Duration> delays =
        received ? absl::MakeConstSpan(kReconnectDelays) : absl::MakeConstSpan(kRetryDelays);
    if (!retryable || retries >= delays.size()) {
      if (status.ok()) {
        status = absl::UnavailableError(absl::StrCat(
            "droverd ended the metrics stream of ", request.job_id(),
            " before the job finished; run 'drover metrics -f ", request.job_id(), "' again"));
      }
      return inv.ServerError(status);
    }
    // The stream starts over: skip what was already received.
    seen = collected.Counts();
    inv.Pause(delays[retries++]);
  }
  if (!follow || (!inv.global().json && !inv.global().csv)) {
    if (inv.global().csv) {
      inv.out() << collected.Csv();
    } else if (inv.global().json) {
      inv.out() << collected.Json(request.job_id()) << "\n";
    } else {
      inv.out() << collected.Table(request.job_id());
    }
  }
  inv.out().flush();
  if (!follow) return kExitOk;
  inv.err() << FormatJobEnd(*ended);
  inv.err().flush();
  return ExitCodeForEnd(ended->status().state());
}

}  // namespace drover::cli
