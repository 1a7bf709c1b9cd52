#include "agent/attempt_record.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/job_id.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace drover::agent {
namespace {

namespace fs = std::filesystem;

constexpr char kAssignmentFile[] = "assignment.pb";
constexpr char kReportFile[] = "report.pb";
constexpr char kStartIntentFile[] = "start-intended";

// Writes `bytes` to `path` through a temporary file, fsynced and renamed over it.
absl::Status WriteAtomically(const std::string& path, const std::string& bytes) {
  std::string temporary = path + ".new";
  int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat("cannot write ", temporary, ": ", strerror(errno)));
  }
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  bool ok = done == bytes.size() && ::fsync(fd) == 0;
  int error = errno;
  ::close(fd);
  if (!ok || ::rename(temporary.c_str(), path.c_str()) != 0) {
    if (ok) error = errno;
    ::unlink(temporary.c_str());
    return absl::UnavailableError(absl::StrCat("cannot write ", path, ": ", strerror(error)));
  }
  return absl::OkStatus();
}

bool ReadMessage(const std::string& path, google::protobuf::Message* message) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::stringstream buffer;
  buffer << in.rdbuf();
  return message->ParseFromString(buffer.str());
}

}  // namespace

absl::Status CheckAttemptRef(const v1::AttemptRef& attempt) {
  const std::string& id = attempt.job_id();
  absl::StatusOr<int64_t> sequence = ParseJobId(id);
  if (!sequence.ok() || FormatJobId(*sequence) != id) {
    return absl::InvalidArgumentError(absl::StrCat(
        "job id '", absl::CHexEscape(id),
        "' is not of droverd's form j-<number>; it is not used as a folder or container name"));
  }
  if (attempt.epoch() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("job ", id, ": epoch ", attempt.epoch(), " is negative"));
  }
  return absl::OkStatus();
}

std::string AttemptRecordDir(const std::string& work_dir, const v1::AttemptRef& attempt) {
  return absl::StrCat(work_dir, "/records/", attempt.job_id(), "-", attempt.epoch());
}

absl::Status SaveAssignment(const std::string& work_dir, const v1::AssignAttempt& assignment) {
  DROVER_RETURN_IF_ERROR(CheckAttemptRef(assignment.attempt()));
  std::string dir = AttemptRecordDir(work_dir, assignment.attempt());
  std::error_code error;
  fs::create_directories(dir, error);
  if (error) {
    return absl::UnavailableError(absl::StrCat("cannot create ", dir, ": ", error.message()));
  }
  fs::permissions(work_dir + "/records", fs::perms::owner_all, error);
  fs::permissions(dir, fs::perms::owner_all, error);
  return WriteAtomically(absl::StrCat(dir, "/", kAssignmentFile), assignment.SerializeAsString());
}

absl::Status SaveReport(const std::string& work_dir, const v1::AttemptReport& report) {
  std::string dir = AttemptRecordDir(work_dir, report.attempt());
  std::error_code error;
  if (!fs::is_directory(dir, error)) {
    return absl::NotFoundError(absl::StrCat("no record of the attempt in ", dir));
  }
  return WriteAtomically(absl::StrCat(dir, "/", kReportFile), report.SerializeAsString());
}

absl::Status SaveStartIntent(const std::string& work_dir, const v1::AttemptRef& attempt) {
  std::string dir = AttemptRecordDir(work_dir, attempt);
  std::error_code error;
  if (!fs::is_directory(dir, error)) {
    return absl::NotFoundError(absl::StrCat("no record of the attempt in ", dir));
  }
  // The rename is made durable too: the file must be there after a power cut if the
  // processes may have started.
  DROVER_RETURN_IF_ERROR(WriteAtomically(absl::StrCat(dir, "/", kStartIntentFile), "1\n"));
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) {
    int saved = errno;
    if (fd >= 0) ::close(fd);
    return absl::UnavailableError(absl::StrCat("cannot sync ", dir, ": ", strerror(saved)));
  }
  ::close(fd);
  return absl::OkStatus();
}

void RemoveAttemptRecord(const std::string& work_dir, const v1::AttemptRef& attempt) {
  std::error_code error;
  fs::remove_all(AttemptRecordDir(work_dir, attempt), error);
}

std::vector<AttemptRecord> LoadAttemptRecords(const std::string& work_dir) {
  std::vector<AttemptRecord> records;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(work_dir + "/records", error)) {
    const std::string dir = entry.path().string();
    AttemptRecord record;
    if (!ReadMessage(absl::StrCat(dir, "/", kAssignmentFile), &record.assignment) ||
        !CheckAttemptRef(record.assignment.attempt()).ok()) {
      Log(LogLevel::kWarning, "attempt_record_unreadable", {{"dir", dir}});
      std::error_code ignored;
      fs::remove_all(dir, ignored);
      continue;
    }
    if (!ReadMessage(absl::StrCat(dir, "/", kReportFile), &record.report) ||
        record.report.attempt().job_id() != record.assignment.attempt().job_id() ||
        record.report.attempt().epoch() != record.assignment.attempt().epoch()) {
      record.report.Clear();
      *record.report.mutable_attempt() = record.assignment.attempt();
      record.report.set_phase(v1::AttemptReport::PREPARING);
    }
    record.start_intended = fs::exists(absl::StrCat(dir, "/", kStartIntentFile), error);
    records.push_back(std::move(record));
  }
  return records;
}

}  // namespace drover::agent
