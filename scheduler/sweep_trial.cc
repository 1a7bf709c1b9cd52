// How a sweep trial's job is made from the template: its parameters as `--NAME VALUE`
// arguments (FormatParameterValue, TrialArguments) and the smaller of the two time limits
// (MakeTrialSpec). Declared in sweep_spec.h; the checks of a sweep are sweep_spec.cc's.
#include <charconv>
#include <cmath>
#include <cstdint>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "scheduler/sweep_spec.h"

namespace drover::scheduler {

using google::protobuf::Duration;
using v1::ParameterValue;
using v1::SweepSpec;

std::string FormatParameterValue(const ParameterValue& value) {
  if (value.kind_case() != ParameterValue::kNumber) return value.text();
  const double d = value.number();
  // Integers as integers, whatever their size form would be ("1000000000000000", not
  // "1e+15"), so that argparse's type=int reads them.
  constexpr double kExactIntegers = 9007199254740992.0;  // 2^53
  if (std::isfinite(d) && std::trunc(d) == d && std::abs(d) <= kExactIntegers &&
      !(d == 0 && std::signbit(d))) {
    return absl::StrCat(static_cast<int64_t>(d));
  }
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), d);
  if (ec != std::errc()) return "nan";  // cannot happen: 64 bytes hold any double
  return std::string(buf, end);
}

std::vector<std::string> TrialArguments(const ParameterAssignment& parameters) {
  std::vector<std::string> args;
  args.reserve(parameters.size() * 2);
  for (const auto& [name, value] : parameters) {
    args.push_back(absl::StrCat("--", name));
    args.push_back(FormatParameterValue(value));
  }
  return args;
}

v1::JobSpec MakeTrialSpec(const SweepSpec& spec, const ParameterAssignment& parameters) {
  v1::JobSpec trial = spec.trial_template();
  for (std::string& arg : TrialArguments(parameters)) {
    trial.add_arguments()->set_value(std::move(arg));
  }
  const Duration& limit = spec.max_trial_duration();
  if (limit.seconds() > 0 || limit.nanos() > 0) {
    const Duration& own = trial.max_run_duration();
    const bool own_limited = own.seconds() > 0 || own.nanos() > 0;
    if (!own_limited || std::make_pair(limit.seconds(), limit.nanos()) <
                            std::make_pair(own.seconds(), own.nanos())) {
      *trial.mutable_max_run_duration() = limit;
    }
  }
  return trial;
}

}  // namespace drover::scheduler
