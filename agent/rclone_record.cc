// The record of a mount's rclone process (rclone.h): its one-line text, read back only from
// a private file of the agent's, and the start time that tells a reused pid apart.
#include "agent/rclone.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/rclone_internal.h"

namespace drover::agent {
namespace {

constexpr std::pair<RcloneProcessRecord::State, absl::string_view> kStateNames[] = {
    {RcloneProcessRecord::State::kMounted, "mounted"},
    {RcloneProcessRecord::State::kReleasing, "releasing"},
    {RcloneProcessRecord::State::kReleased, "released"}};

}  // namespace

absl::StatusOr<RcloneProcessRecord> ReadRcloneRecord(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    int error = errno;
    if (error == ENOENT) return absl::NotFoundError(absl::StrCat("no record ", path));
    return absl::FailedPreconditionError(
        absl::StrCat("its record ", path, " cannot be read: ", strerror(error)));
  }
  struct stat st {};
  std::string text;
  bool trusted = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
                 (st.st_mode & 022) == 0 && st.st_size < 4096;
  if (trusted) {
    char buffer[4096];
    ssize_t n;
    while ((n = read(fd, buffer, sizeof buffer)) > 0) text.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  if (!trusted) {
    return absl::FailedPreconditionError(
        absl::StrCat("its record ", path, " is not a private file of drover-agent's"));
  }
  absl::StatusOr<RcloneProcessRecord> record = ParseRcloneRecord(text);
  if (!record.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("its record ", path, " is damaged: ", record.status().message()));
  }
  return record;
}

std::string RcloneRecordText(const RcloneProcessRecord& record) {
  absl::string_view state;
  for (const auto& [value, name] : kStateNames) {
    if (value == record.state) state = name;
  }
  return absl::StrCat("pid=", record.pid, " start=", record.start_time, " state=", state, "\n");
}

absl::StatusOr<RcloneProcessRecord> ParseRcloneRecord(absl::string_view text) {
  RcloneProcessRecord record;
  bool pid = false, start = false, state = false;
  for (absl::string_view field :
       absl::StrSplit(absl::StripAsciiWhitespace(text), ' ', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(field, absl::MaxSplits('=', 1));
    if (kv.first == "pid") {
      pid = absl::SimpleAtoi(kv.second, &record.pid) && record.pid > 0;
    } else if (kv.first == "start") {
      start = absl::SimpleAtoi(kv.second, &record.start_time);
    } else if (kv.first == "state") {
      for (const auto& [value, name] : kStateNames) {
        if (name == kv.second) {
          record.state = value;
          state = true;
        }
      }
    }
  }
  if (!pid || !start || !state) {
    return absl::InvalidArgumentError("expected \"pid=N start=N state=mounted|releasing|released\"");
  }
  return record;
}

std::optional<uint64_t> StartTimeFromStat(absl::string_view stat) {
  // "PID (NAME) STATE PPID ...": NAME may hold anything, the last ')' ends it; the start
  // time is the 22nd field, the 20th after the name.
  size_t paren = stat.rfind(')');
  if (paren == absl::string_view::npos) return std::nullopt;
  std::vector<absl::string_view> fields =
      absl::StrSplit(stat.substr(paren + 1), ' ', absl::SkipEmpty());
  uint64_t start = 0;
  if (fields.size() < 20 || !absl::SimpleAtoi(fields[19], &start)) return std::nullopt;
  return start;
}

}  // namespace drover::agent
