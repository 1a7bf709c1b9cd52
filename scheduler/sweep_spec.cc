// ApplySweepSpecDefaults and ValidateSweepSpec (the search space's checks are
// sweep_space_rules.cc's, the trial's job made from the template is sweep_trial.cc's).
// The wording of messages is job_spec_rules.h's, so a sweep's refusals read like a job's.
#include "scheduler/sweep_spec.h"

#include <algorithm>
#include <map>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "common/utf8.h"
#include "scheduler/job_spec.h"
#include "scheduler/job_spec_rules.h"
#include "scheduler/sweep_space_rules.h"

namespace drover::scheduler {
namespace {

using google::protobuf::Duration;
using job_spec_internal::CheckJobName;
using job_spec_internal::Invalid;
using job_spec_internal::kMaxRunSeconds;
using job_spec_internal::kMaxSpecBytes;
using job_spec_internal::MapField;
using job_spec_internal::OutOfRange;
using job_spec_internal::Quote;
using job_spec_internal::TooLong;
using sweep_spec_internal::CheckFinite;
using sweep_spec_internal::CheckSearchSpace;
using sweep_spec_internal::Num;
using v1::BanditPolicy;
using v1::EarlyTermination;
using v1::ParameterDistribution;
using v1::ParameterValue;
using v1::Sampling;
using v1::SweepSpec;

constexpr size_t kMaxMetricNameBytes = 256;
constexpr double kMaxSlackFactor = 1000;
constexpr double kMaxSlackAmount = 1e300;
// The longest number FormatParameterValue writes: "-2.2250738585072014e-308".
constexpr size_t kMaxNumberChars = 24;

absl::Status CheckSampling(const SweepSpec& spec) {
  const Sampling& sampling = spec.sampling();
  if (!Sampling::Method_IsValid(sampling.method())) {
    return Invalid("sweep.sampling.method",
                   absl::StrCat(static_cast<int>(sampling.method()),
                                " is not a sampling method; use GRID, RANDOM or TPE"));
  }
  if (sampling.method() == Sampling::GRID) {
    const std::map<std::string, ParameterDistribution> space(spec.search_space().begin(),
                                                             spec.search_space().end());
    for (const auto& [name, dist] : space) {
      if (!dist.has_choice()) {
        return Invalid(MapField("sweep.search_space", name),
                       "GRID sampling needs every parameter to be a choice, and this one is "
                       "continuous or random; list its values as a choice, or use RANDOM or "
                       "TPE sampling");
      }
    }
    if (int64_t size = GridSize(spec); size > kMaxGridPoints) {
      return Invalid("sweep.search_space",
                     absl::StrCat("the grid has more than ", kMaxGridPoints,
                                  " combinations; list fewer values, or use RANDOM sampling"));
    }
  }
  if (sampling.method() == Sampling::TPE) {
    const v1::TpeOptions& tpe = sampling.tpe();
    if (tpe.n_startup_trials() < 2 || tpe.n_startup_trials() > kMaxSweepTrials) {
      return Invalid("sweep.sampling.tpe.n_startup_trials",
                     absl::StrCat(OutOfRange(tpe.n_startup_trials(), 2, kMaxSweepTrials),
                                  " (TPE needs results of at least 2 trials)"));
    }
    if (!(tpe.gamma() > 0 && tpe.gamma() < 1)) {
      return Invalid("sweep.sampling.tpe.gamma",
                     absl::StrCat(Num(tpe.gamma()),
                                  " is out of range; use a share above 0 and below 1, such as "
                                  "0.25"));
    }
    if (tpe.n_ei_candidates() < 1 || tpe.n_ei_candidates() > kMaxTpeCandidates) {
      return Invalid("sweep.sampling.tpe.n_ei_candidates",
                     OutOfRange(tpe.n_ei_candidates(), 1, kMaxTpeCandidates));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckPrimaryMetric(const SweepSpec& spec) {
  constexpr absl::string_view kName = "sweep.primary_metric_name";
  const std::string& name = spec.primary_metric_name();
  if (name.empty()) {
    return Invalid(kName, "is empty; name the metric the script logs with run.log(), such as "
                          "'accuracy'");
  }
  if (name.size() > kMaxMetricNameBytes) {
    return Invalid(kName, TooLong(name.size(), kMaxMetricNameBytes, "bytes"));
  }
  if (!IsValidUtf8(name)) {
    return Invalid(kName, absl::StrCat(Quote(name), " is not valid UTF-8; fix the encoding"));
  }
  for (char c : name) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
      return Invalid(kName, absl::StrCat(Quote(name),
                                         " has a control character, which run.log() refuses; "
                                         "remove it"));
    }
  }
  constexpr absl::string_view kGoal = "sweep.primary_metric_goal";
  if (spec.primary_metric_goal() == v1::METRIC_GOAL_UNSPECIFIED) {
    return Invalid(kGoal, "is unset; use MAXIMIZE (accuracy) or MINIMIZE (loss)");
  }
  if (!v1::MetricGoal_IsValid(spec.primary_metric_goal())) {
    return Invalid(kGoal, absl::StrCat(static_cast<int>(spec.primary_metric_goal()),
                                       " is not a goal; use MAXIMIZE or MINIMIZE"));
  }
  return absl::OkStatus();
}

absl::Status CheckDuration(absl::string_view field, const Duration& d) {
  const int64_t seconds = d.seconds();
  const int32_t nanos = d.nanos();
  if (nanos < -999'999'999 || nanos > 999'999'999 || (seconds > 0 && nanos < 0) ||
      (seconds < 0 && nanos > 0)) {
    return Invalid(field, absl::StrCat("nanos ", nanos,
                                       " is malformed; use 0 to 999999999 with the sign of "
                                       "seconds"));
  }
  const std::string shown =
      absl::FormatDuration(absl::Seconds(seconds) + absl::Nanoseconds(nanos));
  if (seconds < 0 || nanos < 0) {
    return Invalid(field, absl::StrCat(shown, " is negative; use 0 (no limit) up to ",
                                       kMaxRunSeconds, "s (365 days)"));
  }
  if (seconds > kMaxRunSeconds || (seconds == kMaxRunSeconds && nanos > 0)) {
    return Invalid(field, absl::StrCat(shown, " is over the limit; use at most ", kMaxRunSeconds,
                                       "s (365 days), or 0 for no limit"));
  }
  return absl::OkStatus();
}

absl::Status CheckTrialCounts(const SweepSpec& spec) {
  constexpr absl::string_view kTotal = "sweep.max_total_trials";
  if (spec.max_total_trials() == 0) {
    return Invalid(kTotal, absl::StrCat("is 0; set how many trials the sweep runs, 1 to ",
                                        kMaxSweepTrials));
  }
  if (spec.max_total_trials() < 1 || spec.max_total_trials() > kMaxSweepTrials) {
    return Invalid(kTotal, OutOfRange(spec.max_total_trials(), 1, kMaxSweepTrials));
  }
  if (spec.max_concurrent_trials() < 1 || spec.max_concurrent_trials() > kMaxSweepTrials) {
    return Invalid("sweep.max_concurrent_trials",
                   OutOfRange(spec.max_concurrent_trials(), 1, kMaxSweepTrials));
  }
  return absl::OkStatus();
}

absl::Status CheckIntervals(const std::string& field, int32_t interval, int32_t delay) {
  if (interval < 1 || interval > kMaxEvaluationInterval) {
    return Invalid(absl::StrCat(field, ".evaluation_interval"),
                   absl::StrCat(OutOfRange(interval, 1, kMaxEvaluationInterval),
                                " (1: at every logged value)"));
  }
  if (delay < 0 || delay > kMaxEvaluationInterval) {
    return Invalid(absl::StrCat(field, ".delay_evaluation"),
                   absl::StrCat(OutOfRange(delay, 0, kMaxEvaluationInterval),
                                " (the number of logged values before the first evaluation)"));
  }
  return absl::OkStatus();
}

absl::Status CheckEarlyTermination(const EarlyTermination& et) {
  switch (et.policy_case()) {
    case EarlyTermination::kBandit: {
      const std::string f = "sweep.early_termination.bandit";
      const BanditPolicy& b = et.bandit();
      switch (b.slack_case()) {
        case BanditPolicy::kSlackFactor: {
          const std::string sf = absl::StrCat(f, ".slack_factor");
          if (absl::Status s = CheckFinite(sf, b.slack_factor(), "use a ratio such as 0.1");
              !s.ok()) {
            return s;
          }
          if (!(b.slack_factor() > 0) || b.slack_factor() > kMaxSlackFactor) {
            return Invalid(sf, absl::StrCat(Num(b.slack_factor()),
                                            " is out of range; use a ratio above 0 and at most ",
                                            Num(kMaxSlackFactor), ", such as 0.1"));
          }
          break;
        }
        case BanditPolicy::kSlackAmount: {
          const std::string sa = absl::StrCat(f, ".slack_amount");
          if (absl::Status s =
                  CheckFinite(sa, b.slack_amount(), "use a difference in the metric's units");
              !s.ok()) {
            return s;
          }
          if (!(b.slack_amount() > 0) || b.slack_amount() > kMaxSlackAmount) {
            return Invalid(sa, absl::StrCat(Num(b.slack_amount()),
                                            " is out of range; use a difference above 0 in the "
                                            "metric's units, such as 0.05"));
          }
          break;
        }
        case BanditPolicy::SLACK_NOT_SET:
          return Invalid(f, "sets neither slack_factor nor slack_amount; set one (slack_factor "
                            "0.1 stops trials about 10% worse than the best)");
      }
      return CheckIntervals(f, b.evaluation_interval(), b.delay_evaluation());
    }
    case EarlyTermination::kMedianStopping:
      return CheckIntervals("sweep.early_termination.median_stopping",
                            et.median_stopping().evaluation_interval(),
                            et.median_stopping().delay_evaluation());
    case EarlyTermination::kTruncationSelection: {
      const std::string f = "sweep.early_termination.truncation_selection";
      const v1::TruncationSelectionPolicy& t = et.truncation_selection();
      if (t.truncation_percentage() < 1 || t.truncation_percentage() > 99) {
        return Invalid(absl::StrCat(f, ".truncation_percentage"),
                       absl::StrCat(OutOfRange(t.truncation_percentage(), 1, 99),
                                    " (the percentage of trials stopped at each evaluation)"));
      }
      return CheckIntervals(f, t.evaluation_interval(), t.delay_evaluation());
    }
    case EarlyTermination::POLICY_NOT_SET:
      break;
  }
  return absl::OkStatus();
}

// The template's problems as the sweep's: "spec.x: ..." becomes
// "sweep.trial_template.x: ...".
absl::Status AsTemplateError(const absl::Status& s) {
  absl::string_view message = s.message();
  if (absl::ConsumePrefix(&message, "spec")) {
    return absl::Status(s.code(), absl::StrCat("sweep.trial_template", message));
  }
  return absl::Status(s.code(), absl::StrCat("sweep.trial_template: ", message));
}

// The longest value a parameter can give the script, for the template's argument limits.
std::string LongestValue(const ParameterDistribution& d) {
  if (!d.has_choice()) return std::string(kMaxNumberChars, '9');
  std::string longest;
  for (const ParameterValue& v : d.choice().values()) {
    std::string s = FormatParameterValue(v);
    if (s.size() > longest.size()) longest = std::move(s);
  }
  return longest;
}

}  // namespace

void ApplySweepSpecDefaults(SweepSpec* spec) {
  ApplyJobSpecDefaults(spec->mutable_trial_template());
  Sampling* sampling = spec->mutable_sampling();
  if (sampling->method() == Sampling::METHOD_UNSPECIFIED) sampling->set_method(Sampling::RANDOM);
  if (sampling->method() == Sampling::TPE) {
    v1::TpeOptions* tpe = sampling->mutable_tpe();
    if (tpe->n_startup_trials() == 0) tpe->set_n_startup_trials(kDefaultTpeStartupTrials);
    if (tpe->gamma() == 0) tpe->set_gamma(kDefaultTpeGamma);
    if (tpe->n_ei_candidates() == 0) tpe->set_n_ei_candidates(kDefaultTpeCandidates);
  }
  if (sampling->method() == Sampling::GRID) {
    const int64_t size = GridSize(*spec);
    if (size > 0 && (spec->max_total_trials() == 0 || spec->max_total_trials() > size)) {
      spec->set_max_total_trials(static_cast<int32_t>(std::min<int64_t>(size, kMaxGridPoints + 1)));
    }
  }
  if (spec->max_concurrent_trials() == 0) {
    spec->set_max_concurrent_trials(spec->max_total_trials());
  }
  EarlyTermination* et = spec->mutable_early_termination();
  switch (et->policy_case()) {
    case EarlyTermination::kBandit:
      if (et->bandit().evaluation_interval() == 0) et->mutable_bandit()->set_evaluation_interval(1);
      break;
    case EarlyTermination::kMedianStopping:
      if (et->median_stopping().evaluation_interval() == 0) {
        et->mutable_median_stopping()->set_evaluation_interval(1);
      }
      break;
    case EarlyTermination::kTruncationSelection:
      if (et->truncation_selection().evaluation_interval() == 0) {
        et->mutable_truncation_selection()->set_evaluation_interval(1);
      }
      break;
    case EarlyTermination::POLICY_NOT_SET:
      spec->clear_early_termination();
      break;
  }
}

namespace {

// As a job's (spec.idempotency_key): at most 128 printable ASCII characters.
absl::Status CheckSweepIdempotencyKey(absl::string_view key) {
  constexpr absl::string_view kField = "sweep.idempotency_key";
  constexpr size_t kMaxChars = 128;
  if (key.size() > kMaxChars) return Invalid(kField, TooLong(key.size(), kMaxChars, "characters"));
  for (char c : key) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7F) {
      return Invalid(kField, absl::StrCat(Quote(key),
                                          " has a character that is not printable ASCII; use "
                                          "printable ASCII only"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateSweepSpec(const SweepSpec& spec) {
  if (size_t size = spec.ByteSizeLong(); size > kMaxSpecBytes) {
    return Invalid("sweep", absl::StrCat(size, " bytes serialized is over the limit; use at most ",
                                         kMaxSpecBytes, " bytes (1 MiB)"));
  }
  if (!spec.name().empty()) {
    if (absl::Status s = CheckJobName("sweep.name", spec.name()); !s.ok()) return s;
  }
  if (!spec.has_trial_template()) {
    return Invalid("sweep.trial_template",
                   "is missing; give the job spec every trial runs (its entry_script at least)");
  }
  if (!spec.trial_template().idempotency_key().empty()) {
    return Invalid("sweep.trial_template.idempotency_key",
                   "is set, but every trial is its own job; remove it from the template");
  }
  if (spec.trial_template().has_array() || spec.trial_template().has_array_task()) {
    return Invalid(spec.trial_template().has_array() ? "sweep.trial_template.array"
                                                     : "sweep.trial_template.array_task",
                   "is set, but every trial is one job; remove it from the template (the "
                   "sweep's max_concurrent_trials bounds how many run at once)");
  }
  if (absl::Status s = ValidateJobSpec(spec.trial_template()); !s.ok()) {
    return AsTemplateError(s);
  }
  if (absl::Status s = CheckSearchSpace(spec); !s.ok()) return s;
  if (absl::Status s = CheckSampling(spec); !s.ok()) return s;
  if (absl::Status s = CheckPrimaryMetric(spec); !s.ok()) return s;
  if (absl::Status s = CheckTrialCounts(spec); !s.ok()) return s;
  if (absl::Status s = CheckDuration("sweep.max_duration", spec.max_duration()); !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckDuration("sweep.max_trial_duration", spec.max_trial_duration());
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckEarlyTermination(spec.early_termination()); !s.ok()) return s;
  if (absl::Status s = CheckSweepIdempotencyKey(spec.idempotency_key()); !s.ok()) return s;

  // Last: the trial with the longest values must still be a valid job (the arguments' count
  // and size limits).
  ParameterAssignment longest;
  for (const auto& [name, dist] : spec.search_space()) {
    longest[name].set_text(LongestValue(dist));
  }
  if (absl::Status s = ValidateJobSpec(MakeTrialSpec(spec, longest)); !s.ok()) {
    return Invalid("sweep.search_space",
                   absl::StrCat("with the parameters appended, a trial's job would be refused (",
                                s.message(),
                                "); use fewer or shorter parameters, or fewer template "
                                "arguments"));
  }
  return absl::OkStatus();
}

int64_t GridSize(const SweepSpec& spec) {
  int64_t size = 1;
  for (const auto& [name, dist] : spec.search_space()) {
    if (!dist.has_choice()) return 0;
    size *= dist.choice().values_size();
    if (size == 0) return 0;
    size = std::min(size, kMaxGridPoints + 1);
  }
  return spec.search_space().empty() ? 0 : size;
}

}  // namespace drover::scheduler
