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
#include "common/safe_open.h"
#include "common/status_macros.h"

namespace drover::agent {
namespace {

namespace fs = std::filesystem;

constexpr char kAssignmentFile[] = "assignment.pb";
constexpr char kReportFile[] = "report.pb";
constexpr char kStartIntentFile[] = "start-intended";

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
  return ReplaceFile(absl::StrCat(dir, "/", kAssignmentFile), assignment.SerializeAsString(),
                     0600);
}

absl::Status SaveReport(const std::string& work_dir, const v1::AttemptReport& report) {
  std::string dir = AttemptRecordDir(work_dir, report.attempt());
  std::error_code error;
  if (!fs::is_directory(dir, error)) {
    return absl::NotFoundError(absl::StrCat("no record of the attempt in ", dir));
  }
  // RUNNING and ENDED are flushed to the disk, the other phases not (attempt_record.h,
  // "Durability").
  return ReplaceFile(absl::StrCat(dir, "/", kReportFile), report.SerializeAsString(), 0600,
                     report.phase() == v1::AttemptReport::RUNNING ||
                             report.phase() == v1::AttemptReport::ENDED
                         ? FileSync::kSynced
                         : FileSync::kUnsynced);
}

absl::Status SaveStartIntent(const std::string& work_dir, const v1::AttemptRef& attempt) {
  std::string dir = AttemptRecordDir(work_dir, attempt);
  std::error_code error;
  if (!fs::is_directory(dir, error)) {
    return absl::NotFoundError(absl::StrCat("no record of the attempt in ", dir));
  }
  // The rename is made durable too: the file must be there after a power cut if the
  // processes may have started.
  DROVER_RETURN_IF_ERROR(ReplaceFile(absl::StrCat(dir, "/", kStartIntentFile), "1\n", 0600));
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
