// The checks of a sweep's search space (sweep_space_rules.h); the rest of ValidateSweepSpec
// is sweep_spec.cc's.
#include "scheduler/sweep_space_rules.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "common/utf8.h"
#include "scheduler/job_spec_rules.h"
#include "scheduler/sweep_spec.h"

namespace drover::scheduler::sweep_spec_internal {

using job_spec_internal::FindDisallowed;
using job_spec_internal::Invalid;
using job_spec_internal::ListField;
using job_spec_internal::MapField;
using job_spec_internal::OutOfRange;
using job_spec_internal::Quote;
using job_spec_internal::TooLong;
using v1::ParameterDistribution;
using v1::ParameterValue;
using v1::SweepSpec;

// A double as messages show it (the form the script would get).
std::string Num(double d) {
  ParameterValue v;
  v.set_number(d);
  return FormatParameterValue(v);
}

absl::Status CheckFinite(const std::string& field, double value, absl::string_view fix) {
  if (std::isnan(value)) return Invalid(field, absl::StrCat("nan is not a number; ", fix));
  if (std::isinf(value)) return Invalid(field, absl::StrCat(Num(value), " is infinite; ", fix));
  return absl::OkStatus();
}

namespace {

// Natural logarithms whose exp() stays a normal, finite double.
constexpr double kMaxLogBound = 700;
constexpr double kMaxNormalMagnitude = 1e300;
constexpr double kMaxQuantumSteps = 1e15;
constexpr int64_t kMaxRandIntUpper = int64_t{1} << 53;

// min < max, both finite (checked first), named `kind.min` / `kind.max`.
absl::Status CheckBounds(const std::string& field, double min, double max,
                         absl::string_view what) {
  const std::string fix = absl::StrCat("use a finite ", what);
  if (absl::Status s = CheckFinite(absl::StrCat(field, ".min"), min, fix); !s.ok()) return s;
  if (absl::Status s = CheckFinite(absl::StrCat(field, ".max"), max, fix); !s.ok()) return s;
  if (!(min < max)) {
    return Invalid(absl::StrCat(field, ".max"),
                   absl::StrCat(Num(max), " is not above min ", Num(min),
                                "; use min < max (for a single value use a choice)"));
  }
  return absl::OkStatus();
}

absl::Status CheckText(const std::string& field, const std::string& text) {
  if (text.size() > kMaxParameterTextBytes) {
    return Invalid(field, TooLong(text.size(), kMaxParameterTextBytes, "bytes"));
  }
  if (absl::StrContains(text, absl::string_view("\0", 1))) {
    return Invalid(field, absl::StrCat(Quote(text), " contains a NUL byte; remove it"));
  }
  if (!IsValidUtf8(text)) {
    return Invalid(field, absl::StrCat(Quote(text), " is not valid UTF-8; fix the encoding"));
  }
  if (absl::StartsWith(text, "-")) {
    return Invalid(field, absl::StrCat(Quote(text),
                                       " starts with '-', which the script's argparse would "
                                       "read as an option; use a value without the leading "
                                       "'-', or a number"));
  }
  return absl::OkStatus();
}

absl::Status CheckChoice(const std::string& field, const v1::Choice& choice) {
  const std::string values = absl::StrCat(field, ".values");
  if (choice.values().empty()) {
    return Invalid(values, "is empty; list at least one value");
  }
  if (static_cast<size_t>(choice.values_size()) > kMaxChoiceValues) {
    return Invalid(values, absl::StrCat(choice.values_size(), " values are too many; use at most ",
                                        kMaxChoiceValues));
  }
  std::set<std::string> seen;
  for (int i = 0; i < choice.values_size(); ++i) {
    const ParameterValue& v = choice.values(i);
    const std::string f = ListField(values, i);
    switch (v.kind_case()) {
      case ParameterValue::kNumber:
        if (absl::Status s =
                CheckFinite(absl::StrCat(f, ".number"), v.number(), "use a finite number");
            !s.ok()) {
          return s;
        }
        break;
      case ParameterValue::kText:
        if (absl::Status s = CheckText(absl::StrCat(f, ".text"), v.text()); !s.ok()) return s;
        break;
      case ParameterValue::KIND_NOT_SET:
        return Invalid(f, "has neither a number nor a text; set one");
    }
    // The script sees text, so 64, 64.0 and "64" are one value.
    if (!seen.insert(FormatParameterValue(v)).second) {
      return Invalid(f, absl::StrCat(Quote(FormatParameterValue(v)),
                                     " is listed twice; list each value once"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckDistribution(const std::string& field, const ParameterDistribution& d) {
  switch (d.kind_case()) {
    case ParameterDistribution::kChoice:
      return CheckChoice(absl::StrCat(field, ".choice"), d.choice());
    case ParameterDistribution::kUniform:
      if (absl::Status s = CheckBounds(absl::StrCat(field, ".uniform"), d.uniform().min(),
                                       d.uniform().max(), "number");
          !s.ok()) {
        return s;
      }
      if (std::isinf(d.uniform().max() - d.uniform().min())) {
        return Invalid(absl::StrCat(field, ".uniform"),
                       "max - min overflows a double; use a narrower range");
      }
      return absl::OkStatus();
    case ParameterDistribution::kLoguniform: {
      const std::string f = absl::StrCat(field, ".loguniform");
      if (absl::Status s = CheckBounds(f, d.loguniform().min(), d.loguniform().max(),
                                       "natural logarithm");
          !s.ok()) {
        return s;
      }
      for (auto [name, bound] : {std::pair<const char*, double>{"min", d.loguniform().min()},
                                 {"max", d.loguniform().max()}}) {
        if (std::abs(bound) > kMaxLogBound) {
          return Invalid(absl::StrCat(f, ".", name),
                         absl::StrCat(Num(bound), " is out of range; the bounds are natural "
                                                  "logarithms (ln(1e-5) = -11.51): use -",
                                      kMaxLogBound, " to ", kMaxLogBound));
        }
      }
      return absl::OkStatus();
    }
    case ParameterDistribution::kNormal: {
      const std::string f = absl::StrCat(field, ".normal");
      if (absl::Status s =
              CheckFinite(absl::StrCat(f, ".mu"), d.normal().mu(), "use a finite mean");
          !s.ok()) {
        return s;
      }
      if (absl::Status s =
              CheckFinite(absl::StrCat(f, ".sigma"), d.normal().sigma(),
                          "use a finite positive standard deviation");
          !s.ok()) {
        return s;
      }
      if (!(d.normal().sigma() > 0)) {
        return Invalid(absl::StrCat(f, ".sigma"),
                       absl::StrCat(Num(d.normal().sigma()),
                                    " is not positive; use a standard deviation above 0 (for a "
                                    "single value use a choice)"));
      }
      if (std::abs(d.normal().mu()) > kMaxNormalMagnitude ||
          d.normal().sigma() > kMaxNormalMagnitude) {
        return Invalid(f, absl::StrCat("mu and sigma must be at most ", Num(kMaxNormalMagnitude),
                                       " in magnitude; scale the parameter"));
      }
      return absl::OkStatus();
    }
    case ParameterDistribution::kQuniform: {
      const std::string f = absl::StrCat(field, ".quniform");
      const v1::QUniform& q = d.quniform();
      if (absl::Status s = CheckBounds(f, q.min(), q.max(), "number"); !s.ok()) return s;
      if (absl::Status s = CheckFinite(absl::StrCat(f, ".q"), q.q(), "use a finite step above 0");
          !s.ok()) {
        return s;
      }
      if (!(q.q() > 0)) {
        return Invalid(absl::StrCat(f, ".q"),
                       absl::StrCat(Num(q.q()), " is not positive; use a step above 0, such as 1 "
                                                "for integers"));
      }
      if (std::max(std::abs(q.min()), std::abs(q.max())) / q.q() > kMaxQuantumSteps) {
        return Invalid(absl::StrCat(f, ".q"),
                       absl::StrCat(Num(q.q()), " is too small for the bounds; use a q no less "
                                                "than the largest bound / ",
                                    Num(kMaxQuantumSteps), ", or uniform"));
      }
      return absl::OkStatus();
    }
    case ParameterDistribution::kRandint:
      if (d.randint().upper() < 1 || d.randint().upper() > kMaxRandIntUpper) {
        return Invalid(absl::StrCat(field, ".randint.upper"),
                       absl::StrCat(OutOfRange(d.randint().upper(), 1, kMaxRandIntUpper),
                                    " (values are 0 to upper - 1)"));
      }
      return absl::OkStatus();
    case ParameterDistribution::KIND_NOT_SET:
      break;
  }
  return Invalid(field,
                 "has no distribution; set one of choice, uniform, loguniform, normal, "
                 "quniform or randint");
}

bool IsFlagChar(char c) { return absl::ascii_isalnum(c) || c == '_' || c == '-'; }

absl::Status CheckParameterName(const std::string& field, const std::string& name) {
  const std::string fix = absl::StrCat("use 1-", kMaxParameterNameChars,
                                       " characters of [A-Za-z0-9_-] starting with a letter; "
                                       "the script gets it as --NAME");
  if (name.empty()) return Invalid(field, absl::StrCat("the name is empty; ", fix));
  if (absl::StartsWith(name, "-")) {
    absl::string_view bare = name;
    while (absl::ConsumePrefix(&bare, "-")) {
    }
    return Invalid(field, absl::StrCat("the name starts with '-'; write it without its dashes (",
                                       Quote(bare), "), Drover adds '--'"));
  }
  if (name.size() > kMaxParameterNameChars) {
    return Invalid(field, TooLong(name.size(), kMaxParameterNameChars, "characters"));
  }
  if (size_t bad = FindDisallowed(name, IsFlagChar); bad != absl::string_view::npos) {
    return Invalid(field, absl::StrCat("the name has the character ",
                                       Quote(absl::string_view(name).substr(bad, 1)),
                                       " outside [A-Za-z0-9_-]; ", fix));
  }
  if (!absl::ascii_isalpha(name[0])) {
    return Invalid(field, absl::StrCat("the name does not start with a letter; ", fix));
  }
  return absl::OkStatus();
}

// The template's argument that is already parameter `name`'s flag, or -1.
int FindFlagInTemplate(const v1::JobSpec& tmpl, const std::string& name) {
  const std::string flag = absl::StrCat("--", name);
  for (int i = 0; i < tmpl.arguments_size(); ++i) {
    if (!tmpl.arguments(i).has_value()) continue;
    const std::string& v = tmpl.arguments(i).value();
    if (v == flag || absl::StartsWith(v, absl::StrCat(flag, "="))) return i;
  }
  return -1;
}

}  // namespace

absl::Status CheckSearchSpace(const SweepSpec& spec) {
  constexpr absl::string_view kField = "sweep.search_space";
  if (spec.search_space().empty()) {
    return Invalid(kField, "is empty; add at least one parameter, such as "
                           "'lr': {\"loguniform\": {\"min\": -11.5, \"max\": -2.3}}");
  }
  if (static_cast<size_t>(spec.search_space().size()) > kMaxSweepParameters) {
    return Invalid(kField, absl::StrCat(spec.search_space().size(),
                                        " parameters are too many; use at most ",
                                        kMaxSweepParameters));
  }
  const std::map<std::string, ParameterDistribution> space(spec.search_space().begin(),
                                                           spec.search_space().end());
  for (const auto& [name, dist] : space) {
    const std::string field = MapField(kField, name);
    if (absl::Status s = CheckParameterName(field, name); !s.ok()) return s;
    if (absl::Status s = CheckDistribution(field, dist); !s.ok()) return s;
    if (int i = FindFlagInTemplate(spec.trial_template(), name); i >= 0) {
      return Invalid(field, absl::StrCat("the trial template already passes ",
                                         Quote(spec.trial_template().arguments(i).value()),
                                         " (sweep.trial_template.arguments[", i,
                                         "]); remove it there, or rename the parameter"));
    }
  }
  return absl::OkStatus();
}

}  // namespace drover::scheduler::sweep_spec_internal
