#include "common/job_id.h"

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace drover {

std::string FormatJobId(int64_t sequence) { return absl::StrCat("j-", sequence); }

absl::StatusOr<int64_t> ParseJobId(absl::string_view id, absl::string_view field) {
  absl::string_view digits = id;
  if (absl::StartsWith(digits, "j-")) digits.remove_prefix(2);
  int64_t sequence = 0;
  if (digits.empty() || digits.size() > 18 || digits.front() == '+' || digits.front() == '-' ||
      !absl::SimpleAtoi(digits, &sequence) || sequence <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": '", id, "' is not a job id; job ids look like 'j-42'"));
  }
  return sequence;
}

}  // namespace drover
