#include "scheduler/job_array.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "scheduler/job_spec_rules.h"
#include "scheduler/job_state.h"

namespace drover::scheduler {
namespace {

using job_spec_internal::Invalid;

constexpr char kIndicesHelp[] =
    "write indices as N, A-B or A-B:STEP separated by commas, such as '0-999', '1,3,7-9' or "
    "'0-99:5'";

// A number of `item`'s part `part`: decimal digits only, at most kMaxArrayIndex. Checked
// digit by digit, so that no input overflows.
absl::StatusOr<int64_t> ParseNumber(absl::string_view field, absl::string_view item,
                                    absl::string_view part, absl::string_view what) {
  if (part.empty()) {
    return Invalid(field, absl::StrCat("item '", item, "' has no ", what, "; ", kIndicesHelp));
  }
  int64_t value = 0;
  for (char c : part) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) {
      return Invalid(field, absl::StrCat("item '", absl::CHexEscape(item), "': '",
                                         absl::CHexEscape(part), "' is not a number; ",
                                         kIndicesHelp));
    }
    value = value * 10 + (c - '0');
    if (value > kMaxArrayIndex) {
      return Invalid(field, absl::StrCat("item '", item, "': ", what, " ", part,
                                         " is too large; indices are 0 to ", kMaxArrayIndex));
    }
  }
  return value;
}

struct Range {
  int64_t first, last, step;
};

}  // namespace

absl::StatusOr<std::vector<int64_t>> ParseArrayIndices(absl::string_view field,
                                                       absl::string_view text) {
  if (text.empty()) {
    return Invalid(field, absl::StrCat("is empty; ", kIndicesHelp));
  }
  if (text.size() > kMaxArrayIndicesBytes) {
    return Invalid(field, absl::StrCat(text.size(), " bytes is too long; use at most ",
                                       kMaxArrayIndicesBytes,
                                       " bytes (ranges such as 'A-B' name many indices at once)"));
  }
  if (text.find('%') != absl::string_view::npos) {
    return Invalid(field, absl::StrCat(job_spec_internal::Quote(text),
                                       " holds '%'; give the limit of running tasks in "
                                       "spec.array.max_running (drover submit --array "
                                       "splits 'A-B%N' for you)"));
  }
  std::vector<Range> ranges;
  int64_t total = 0;
  for (absl::string_view item : absl::StrSplit(text, ',')) {
    if (item.empty()) {
      return Invalid(field, absl::StrCat(job_spec_internal::Quote(text), " has an empty item; ",
                                         kIndicesHelp));
    }
    Range range{0, 0, 1};
    absl::string_view bounds = item;
    if (size_t colon = item.find(':'); colon != absl::string_view::npos) {
      bounds = item.substr(0, colon);
      if (bounds.find('-') == absl::string_view::npos) {
        return Invalid(field, absl::StrCat("item '", absl::CHexEscape(item),
                                           "': a step needs a range; write A-B:STEP"));
      }
      absl::StatusOr<int64_t> step = ParseNumber(field, item, item.substr(colon + 1), "step");
      if (!step.ok()) return step.status();
      if (*step < 1) {
        return Invalid(field, absl::StrCat("item '", item, "': step 0 is out of range; use 1 or more"));
      }
      range.step = *step;
    }
    if (size_t dash = bounds.find('-'); dash != absl::string_view::npos) {
      absl::StatusOr<int64_t> first = ParseNumber(field, item, bounds.substr(0, dash), "first index");
      if (!first.ok()) return first.status();
      absl::StatusOr<int64_t> last = ParseNumber(field, item, bounds.substr(dash + 1), "last index");
      if (!last.ok()) return last.status();
      if (*last < *first) {
        return Invalid(field, absl::StrCat("item '", item, "': the range is inverted (", *first,
                                           " > ", *last, "); write the smaller index first"));
      }
      range.first = *first;
      range.last = *last;
    } else {
      absl::StatusOr<int64_t> index = ParseNumber(field, item, bounds, "index");
      if (!index.ok()) return index.status();
      range.first = range.last = *index;
    }
    // Counted before any index is listed, so that a huge range costs nothing.
    total += (range.last - range.first) / range.step + 1;
    if (total > kMaxArrayTasks) {
      return Invalid(field, absl::StrCat(job_spec_internal::Quote(text), " names more than ", kMaxArrayTasks,
                                         " tasks; split the work into arrays of at most ",
                                         kMaxArrayTasks, " tasks"));
    }
    ranges.push_back(range);
  }
  std::vector<int64_t> indices;
  indices.reserve(static_cast<size_t>(total));
  for (const Range& r : ranges) {
    for (int64_t i = r.first; i <= r.last; i += r.step) indices.push_back(i);
  }
  std::sort(indices.begin(), indices.end());
  indices.erase(std::unique(indices.begin(), indices.end()), indices.end());
  return indices;
}

absl::Status CheckJobArray(const v1::JobSpec& spec) {
  if (spec.has_array_task()) {
    return Invalid("spec.array_task",
                   "is set by droverd on the tasks of an array; leave it empty and give "
                   "spec.array instead");
  }
  if (spec.tags().contains(kArrayTag)) {
    return Invalid(absl::StrCat("spec.tags['", kArrayTag, "']"),
                   "is set by droverd on the tasks of an array; use another key");
  }
  if (!spec.has_array()) return absl::OkStatus();
  absl::StatusOr<std::vector<int64_t>> indices =
      ParseArrayIndices("spec.array.indices", spec.array().indices());
  if (!indices.ok()) return indices.status();
  const int32_t max_running = spec.array().max_running();
  if (max_running < 0 || max_running > kMaxArrayTasks) {
    return Invalid("spec.array.max_running",
                   absl::StrCat(max_running, " is out of range; use 1 to ", kMaxArrayTasks,
                                ", or 0 (unset) for no limit"));
  }
  return absl::OkStatus();
}

std::string FormatArrayId(uint64_t seed) { return absl::StrFormat("a-%016x", seed); }

bool IsArrayId(absl::string_view id) {
  if (id.size() != 18 || !absl::StartsWith(id, "a-")) return false;
  for (char c : id.substr(2)) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c)) && !(c >= 'a' && c <= 'f')) {
      return false;
    }
  }
  return true;
}

std::vector<v1::Job> MakeArrayTasks(const v1::Job& array, const std::string& array_id,
                                    const std::vector<int64_t>& indices) {
  v1::Job base = array;
  const int32_t max_running = base.spec().array().max_running();
  base.mutable_spec()->clear_array();
  v1::ArrayTask* task = base.mutable_spec()->mutable_array_task();
  task->set_array_id(array_id);
  task->set_size(static_cast<int64_t>(indices.size()));
  task->set_max_running(max_running);
  (*base.mutable_spec()->mutable_tags())[kArrayTag] = array_id;
  const std::string key = base.spec().idempotency_key();
  std::vector<v1::Job> tasks;
  tasks.reserve(indices.size());
  for (size_t k = 0; k < indices.size(); ++k) {
    v1::Job& job = tasks.emplace_back(base);
    job.mutable_spec()->mutable_array_task()->set_index(indices[k]);
    if (!key.empty()) job.mutable_spec()->set_idempotency_key(absl::StrCat(key, "/", indices[k]));
    if (max_running > 0 && k >= static_cast<size_t>(max_running)) {
      job.mutable_status()->set_reason(ArrayLimitReason(job.spec().array_task()));
    }
  }
  return tasks;
}

std::string ArrayLimitReason(const v1::ArrayTask& task) {
  return ArrayLimitReason(task.array_id(), task.max_running());
}

std::string ArrayLimitReason(absl::string_view array_id, int32_t max_running) {
  return absl::StrCat("ARRAY_LIMIT array=", array_id, " max_running=", max_running);
}

bool CountsAgainstArrayLimit(v1::JobStatus::State state) {
  return state != v1::JobStatus::QUEUED && state != v1::JobStatus::STATE_UNSPECIFIED &&
         !IsTerminal(state);
}

}  // namespace drover::scheduler
