// The early-termination rules (sweep_policy.h). Each trial's finite values are read once
// into prefix bests and running averages; then each evaluation interval n compares the
// trials that reached n.
#include "scheduler/sweep_policy.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "scheduler/sweep_spec.h"

namespace drover::scheduler {
namespace {

using v1::EarlyTermination;

// A trial's finite values in step order, with what the rules read at each interval.
struct Prefixes {
  std::vector<int64_t> steps;
  std::vector<double> best;     // best[n-1]: the best of the first n values
  std::vector<double> average;  // average[n-1]: the mean of the first n values
};

Prefixes PrefixesOf(const MetricSeries& series, bool maximize) {
  Prefixes p;
  double sum = 0;
  double low = 0, high = 0;
  for (const auto& [step, value] : series) {
    if (!std::isfinite(value)) continue;
    sum += value;
    low = p.best.empty() ? value : std::min(low, value);
    high = p.best.empty() ? value : std::max(high, value);
    const double best = maximize ? high : low;
    p.steps.push_back(step);
    p.best.push_back(best);
    // A mean lies between the least and the greatest value; the rounding of the sum may put
    // it just outside (ten times -0.01 average to -0.009999999999999998), where a trial's
    // own best would be "worse" than its own running average.
    p.average.push_back(std::clamp(sum / static_cast<double>(p.best.size()), low, high));
  }
  return p;
}

std::string Num(double d) {
  v1::ParameterValue v;
  v.set_number(d);
  return FormatParameterValue(v);
}

// `a` is strictly worse than `b`.
bool Worse(double a, double b, bool maximize) { return maximize ? a < b : a > b; }

double Median(std::vector<double> xs) {
  std::sort(xs.begin(), xs.end());
  const size_t n = xs.size();
  return n % 2 == 1 ? xs[n / 2] : 0.5 * (xs[n / 2 - 1] + xs[n / 2]);
}

struct Schedule {
  int64_t interval = 1;
  int64_t delay = 0;
};

Schedule ScheduleOf(const EarlyTermination& et) {
  switch (et.policy_case()) {
    case EarlyTermination::kBandit:
      return {et.bandit().evaluation_interval(), et.bandit().delay_evaluation()};
    case EarlyTermination::kMedianStopping:
      return {et.median_stopping().evaluation_interval(), et.median_stopping().delay_evaluation()};
    case EarlyTermination::kTruncationSelection:
      return {et.truncation_selection().evaluation_interval(),
              et.truncation_selection().delay_evaluation()};
    case EarlyTermination::POLICY_NOT_SET:
      break;
  }
  return {};
}

}  // namespace

std::optional<double> BestValue(const MetricSeries& series, v1::MetricGoal goal) {
  std::optional<double> best;
  for (const auto& [step, value] : series) {
    if (!std::isfinite(value)) continue;
    if (!best || Worse(*best, value, goal == v1::MAXIMIZE)) best = value;
  }
  return best;
}

std::vector<EarlyStop> EvaluateEarlyTermination(const v1::SweepSpec& spec,
                                                const std::vector<TrialMetrics>& trials) {
  const EarlyTermination& et = spec.early_termination();
  std::vector<EarlyStop> stops;
  if (et.policy_case() == EarlyTermination::POLICY_NOT_SET || trials.empty()) return stops;
  const bool maximize = spec.primary_metric_goal() == v1::MAXIMIZE;
  const std::string& metric = spec.primary_metric_name();
  const Schedule schedule = ScheduleOf(et);
  if (schedule.interval < 1) return stops;  // not a valid spec

  std::vector<Prefixes> prefixes;
  prefixes.reserve(trials.size());
  // Intervals past the longest running trial's can stop nobody.
  size_t longest = 0;
  size_t running = 0;
  for (const TrialMetrics& t : trials) {
    prefixes.push_back(PrefixesOf(t.series, maximize));
    if (t.running) {
      longest = std::max(longest, prefixes.back().best.size());
      ++running;
    }
  }
  std::vector<bool> stopped(trials.size(), false);
  std::vector<std::optional<EarlyStop>> found(trials.size());

  // The first evaluation interval: the first multiple of the interval at least the delay.
  const int64_t first =
      std::max<int64_t>(schedule.interval,
                        (schedule.delay + schedule.interval - 1) / schedule.interval *
                            schedule.interval);
  size_t stopped_count = 0;
  for (int64_t n = first; n <= static_cast<int64_t>(longest) && stopped_count < running;
       n += schedule.interval) {
    const size_t at = static_cast<size_t>(n - 1);
    std::vector<size_t> reached;  // indexes of the trials compared at n
    for (size_t i = 0; i < trials.size(); ++i) {
      if (prefixes[i].best.size() > at) reached.push_back(i);
    }
    auto stop = [&](size_t i, const char* rule) -> EarlyStop& {
      stopped[i] = true;
      ++stopped_count;
      EarlyStop& s = found[i].emplace();
      s.trial_id = trials[i].trial_id;
      s.rule = rule;
      s.interval = n;
      s.step = prefixes[i].steps[at];
      s.value = prefixes[i].best[at];
      s.compared = static_cast<int64_t>(reached.size());
      return s;
    };
    const std::string where = absl::StrCat(" at interval ", n, " (step ");

    switch (et.policy_case()) {
      case EarlyTermination::kBandit: {
        size_t best = reached.front();
        for (size_t i : reached) {
          if (Worse(prefixes[best].best[at], prefixes[i].best[at], maximize)) best = i;
        }
        const double b = prefixes[best].best[at];
        const v1::BanditPolicy& bandit = et.bandit();
        double threshold;
        std::string slack;
        if (bandit.has_slack_factor()) {
          const double f = bandit.slack_factor();
          // HyperDrive's b / (1 + f) and b * (1 + f) for a positive best; the same distance
          // from the best for a negative one.
          if (maximize) {
            threshold = b > 0 ? b / (1 + f) : b - std::abs(b) * f / (1 + f);
          } else {
            threshold = b > 0 ? b * (1 + f) : b + std::abs(b) * f;
          }
          slack = absl::StrCat("slack_factor ", Num(f));
        } else {
          const double a = bandit.slack_amount();
          threshold = maximize ? b - a : b + a;
          slack = absl::StrCat("slack_amount ", Num(a));
        }
        for (size_t i : reached) {
          if (stopped[i] || !trials[i].running) continue;
          if (!Worse(prefixes[i].best[at], threshold, maximize)) continue;
          EarlyStop& s = stop(i, "bandit");
          s.reference = b;
          s.threshold = threshold;
          s.best_trial = trials[best].trial_id;
          s.message = absl::StrCat("bandit policy", where, s.step, "): best ", metric, " ",
                                   Num(s.value), " is worse than ", Num(threshold),
                                   ", the best trial '", s.best_trial, "' at ", Num(b), " ",
                                   maximize ? "less" : "plus", " ", slack);
        }
        break;
      }
      case EarlyTermination::kMedianStopping: {
        std::vector<double> averages;
        for (size_t i : reached) averages.push_back(prefixes[i].average[at]);
        const double median = Median(std::move(averages));
        for (size_t i : reached) {
          if (stopped[i] || !trials[i].running) continue;
          if (!Worse(prefixes[i].best[at], median, maximize)) continue;
          EarlyStop& s = stop(i, "median_stopping");
          s.reference = median;
          s.threshold = median;
          s.message = absl::StrCat("median stopping policy", where, s.step, "): best ", metric,
                                   " ", Num(s.value), " is worse than ", Num(median),
                                   ", the median of the running averages of ", reached.size(),
                                   " trials");
        }
        break;
      }
      case EarlyTermination::kTruncationSelection: {
        const int64_t pct = et.truncation_selection().truncation_percentage();
        const size_t cut = reached.size() * static_cast<size_t>(pct) / 100;
        if (cut == 0) break;
        // Worst first.
        std::vector<double> values;
        for (size_t i : reached) values.push_back(prefixes[i].best[at]);
        auto worse = [maximize](double a, double b) { return Worse(a, b, maximize); };
        std::sort(values.begin(), values.end(), worse);
        // A trial is cut when it and the trials no better than it are at most `cut`: the
        // first `cutting` values, where ties at the boundary are all kept.
        size_t cutting = 0;
        while (cutting < values.size() &&
               static_cast<size_t>(std::upper_bound(values.begin(), values.end(),
                                                    values[cutting], worse) -
                                   values.begin()) <= cut) {
          ++cutting;
        }
        if (cutting == 0) break;
        for (size_t i : reached) {
          if (stopped[i] || !trials[i].running) continue;
          if (Worse(values[cutting - 1], prefixes[i].best[at], maximize)) continue;
          EarlyStop& s = stop(i, "truncation_selection");
          s.reference = values[cutting - 1];
          s.threshold = values[cutting];
          s.message = absl::StrCat("truncation selection policy", where, s.step, "): best ",
                                   metric, " ", Num(s.value), " is among the lowest ", pct,
                                   "% of ", reached.size(), " trials (", cutting,
                                   " cut; the lowest kept is ", Num(s.threshold), ")");
        }
        break;
      }
      case EarlyTermination::POLICY_NOT_SET:
        break;
    }
  }
  for (std::optional<EarlyStop>& s : found) {
    if (s) stops.push_back(std::move(*s));
  }
  return stops;
}

}  // namespace drover::scheduler
