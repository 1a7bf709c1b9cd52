// Reading drover-init's status files: see init_files_read.h.
#include "agent/launcher/init_files_read.h"

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/safe_open.h"

namespace drover::agent {
namespace {

// The file's text, or "" when it is missing or not a regular file below `folder`.
std::string ReadBeneath(const std::string& folder, const std::string& name) {
  FileKind kind = FileKind::kMissing;
  absl::StatusOr<std::string> text = ReadSmallFileBeneath(folder, name, kMaxInitFileBytes, &kind);
  if (text.ok()) return *std::move(text);
  if (kind != FileKind::kMissing) LogUnsafeFile(absl::StrCat(folder, "/", name), kind);
  return "";
}

}  // namespace

std::optional<ExitRecord> ReadExitRecord(const std::string& folder, const std::string& name) {
  return ParseExitRecord(ReadBeneath(folder, name));
}

std::optional<InitResult> ReadInitResult(const std::string& folder, const std::string& name) {
  return ParseInitResult(ReadBeneath(folder, name));
}

}  // namespace drover::agent
