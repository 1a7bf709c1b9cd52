#include "common/flags.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace drover {

FlagSet::FlagSet(std::string usage, std::string summary)
    : usage_(std::move(usage)), summary_(std::move(summary)) {}

void FlagSet::Add(absl::string_view names, Flag flag) {
  std::vector<std::string> parts = absl::StrSplit(names, ',');
  flag.name = parts[0];
  if (parts.size() > 1 && parts[1].size() == 1) flag.alias = parts[1][0];
  flags_.push_back(std::move(flag));
}

void FlagSet::String(absl::string_view names, std::string* target, std::string help,
                     std::string value_name) {
  Flag flag{.help = std::move(help), .value_name = std::move(value_name),
            .default_text = *target};
  flag.apply = [target](absl::string_view v) {
    *target = std::string(v);
    return absl::OkStatus();
  };
  Add(names, std::move(flag));
}

void FlagSet::Int(absl::string_view names, int64_t* target, std::string help,
                  std::string value_name) {
  std::string name(names.substr(0, names.find(',')));
  Flag flag{.help = std::move(help), .value_name = std::move(value_name),
            .default_text = absl::StrCat(*target)};
  flag.apply = [target, name](absl::string_view v) {
    if (!absl::SimpleAtoi(v, target)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, ": '", v, "' is not a whole number"));
    }
    return absl::OkStatus();
  };
  Add(names, std::move(flag));
}

void FlagSet::Double(absl::string_view names, double* target, std::string help,
                     std::string value_name) {
  std::string name(names.substr(0, names.find(',')));
  Flag flag{.help = std::move(help), .value_name = std::move(value_name),
            .default_text = absl::StrCat(*target)};
  flag.apply = [target, name](absl::string_view v) {
    if (!absl::SimpleAtod(v, target) || !std::isfinite(*target)) {
      return absl::InvalidArgumentError(absl::StrCat("--", name, ": '", v, "' is not a number"));
    }
    return absl::OkStatus();
  };
  Add(names, std::move(flag));
}

void FlagSet::Bool(absl::string_view names, bool* target, std::string help) {
  std::string name(names.substr(0, names.find(',')));
  Flag flag{.help = std::move(help), .is_bool = true};
  flag.apply = [target, name](absl::string_view v) {
    std::string lower = absl::AsciiStrToLower(v);
    if (lower.empty() || lower == "true" || lower == "1" || lower == "yes") {
      *target = true;
    } else if (lower == "false" || lower == "0" || lower == "no") {
      *target = false;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, ": '", v, "' is not a boolean; use true or false"));
    }
    return absl::OkStatus();
  };
  Add(names, std::move(flag));
}

void FlagSet::Repeated(absl::string_view names, std::vector<std::string>* target,
                       std::string help, std::string value_name) {
  Flag flag{.help = std::move(help) + " (repeatable)", .value_name = std::move(value_name)};
  flag.apply = [target](absl::string_view v) {
    target->emplace_back(v);
    return absl::OkStatus();
  };
  Add(names, std::move(flag));
}

void FlagSet::Custom(absl::string_view names, std::function<absl::Status(absl::string_view)> set,
                     std::string help, std::string value_name, std::string default_text) {
  Flag flag{.help = std::move(help), .value_name = std::move(value_name),
            .default_text = std::move(default_text)};
  flag.apply = std::move(set);
  Add(names, std::move(flag));
}

FlagSet::Flag* FlagSet::Find(absl::string_view name) {
  for (Flag& f : flags_) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

const FlagSet::Flag* FlagSet::Find(absl::string_view name) const {
  for (const Flag& f : flags_) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

FlagSet::Flag* FlagSet::FindAlias(char alias) {
  for (Flag& f : flags_) {
    if (f.alias == alias) return &f;
  }
  return nullptr;
}

bool FlagSet::Has(absl::string_view name) const { return Find(name) != nullptr; }

bool FlagSet::WasSet(absl::string_view name) const {
  const Flag* f = Find(name);
  return f != nullptr && f->set;
}

absl::Status FlagSet::Set(absl::string_view name, absl::string_view value) {
  Flag* flag = Find(name);
  if (flag == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("'", name, "' is not a known setting"));
  }
  absl::Status status = flag->apply(value);
  if (status.ok()) flag->set = true;
  return status;
}

absl::Status FlagSet::Parse(const std::vector<std::string>& args,
                            std::vector<std::string>* positional, bool interspersed) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") {
      positional->insert(positional->end(), args.begin() + i + 1, args.end());
      return absl::OkStatus();
    }
    if (arg == "--help" || arg == "-h") {
      help_requested_ = true;
      return absl::OkStatus();
    }
    Flag* flag = nullptr;
    std::string shown;
    std::optional<std::string> inline_value;
    if (absl::StartsWith(arg, "--") && arg.size() > 2) {
      absl::string_view body = absl::string_view(arg).substr(2);
      size_t eq = body.find('=');
      absl::string_view name = body.substr(0, eq);
      if (eq != absl::string_view::npos) inline_value = std::string(body.substr(eq + 1));
      flag = Find(name);
      shown = absl::StrCat("--", name);
      if (flag == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat("unknown flag ", shown, "; see --help for the flags this command takes"));
      }
    } else if (arg.size() == 2 && arg[0] == '-' && arg[1] != '-' &&
               !absl::ascii_isdigit(static_cast<unsigned char>(arg[1]))) {
      flag = FindAlias(arg[1]);
      shown = arg;
      if (flag == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat("unknown flag ", shown, "; see --help for the flags this command takes"));
      }
    } else {
      positional->push_back(arg);
      if (!interspersed) {
        positional->insert(positional->end(), args.begin() + i + 1, args.end());
        return absl::OkStatus();
      }
      continue;
    }
    std::string value;
    if (inline_value.has_value()) {
      value = *inline_value;
    } else if (flag->is_bool) {
      value = "true";
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(shown, " needs a value (", flag->value_name, ")"));
    }
    absl::Status status = flag->apply(value);
    if (!status.ok()) {
      // Custom setters report without the flag name; name it for them.
      if (!absl::StartsWith(status.message(), "--")) {
        return absl::InvalidArgumentError(absl::StrCat("--", flag->name, ": ", status.message()));
      }
      return status;
    }
    flag->set = true;
  }
  return absl::OkStatus();
}

std::string FlagSet::Help() const {
  std::string out = absl::StrCat("Usage: ", usage_, "\n");
  if (!summary_.empty()) absl::StrAppend(&out, "\n", summary_, "\n");
  if (flags_.empty()) return out;
  std::vector<std::string> lefts;
  size_t width = 0;
  for (const Flag& f : flags_) {
    std::string left = f.alias ? absl::StrCat("  -", std::string(1, f.alias), ", --", f.name)
                               : absl::StrCat("      --", f.name);
    if (!f.is_bool) absl::StrAppend(&left, " ", f.value_name);
    width = std::max(width, left.size());
    lefts.push_back(std::move(left));
  }
  absl::StrAppend(&out, "\nFlags:\n");
  for (size_t i = 0; i < flags_.size(); ++i) {
    const Flag& f = flags_[i];
    absl::StrAppend(&out, lefts[i], std::string(width - lefts[i].size() + 2, ' '), f.help);
    if (!f.default_text.empty() && f.default_text != "0") {
      absl::StrAppend(&out, " (default ", f.default_text, ")");
    }
    out.push_back('\n');
  }
  constexpr absl::string_view kHelpLeft = "  -h, --help";
  absl::StrAppend(&out, kHelpLeft,
                  std::string(width > kHelpLeft.size() ? width - kHelpLeft.size() + 2 : 2, ' '),
                  "Show this help\n");
  return out;
}

absl::Status ParseMib(absl::string_view text, int64_t* mib) {
  absl::string_view digits = text;
  int64_t multiplier = 1;
  auto strip = [&](absl::string_view suffix, int64_t mult) {
    if (absl::EndsWithIgnoreCase(digits, suffix)) {
      digits.remove_suffix(suffix.size());
      multiplier = mult;
      return true;
    }
    return false;
  };
  strip("Ti", 1024 * 1024) || strip("T", 1024 * 1024) || strip("Gi", 1024) || strip("G", 1024) ||
      strip("Mi", 1) || strip("M", 1);
  int64_t value = 0;
  if (!absl::SimpleAtoi(digits, &value) || value < 0 || value > (int64_t{1} << 40) / multiplier) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", text, "' is not a size; write a number of MiB or use a suffix: 512Mi, 16Gi, 1Ti"));
  }
  *mib = value * multiplier;
  return absl::OkStatus();
}

}  // namespace drover
