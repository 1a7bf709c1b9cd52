// The helpers the files of EnvironmentCache share (environment_internal.h).
#include "agent/environments/environment_internal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "agent/runtime/mountinfo.h"
#include "common/safe_open.h"

namespace drover::agent {

std::vector<std::string> SortedUnique(const std::vector<std::string>& items) {
  std::vector<std::string> out = items;
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::string ReadContainerFile(const std::string& dir, absl::string_view name, int64_t from,
                              size_t max_bytes) {
  FileKind kind = FileKind::kMissing;
  absl::StatusOr<UniqueFd> fd = OpenBeneath(dir, name, O_RDONLY | O_NONBLOCK, 0, &kind);
  if (!fd.ok()) {
    if (kind != FileKind::kMissing && kind != FileKind::kRegular) {
      LogUnsafeFile(absl::StrCat(dir, "/", name), kind);
    }
    return "";
  }
  struct stat st {};
  if (fstat(fd->get(), &st) != 0 || st.st_size <= from) return "";
  const int64_t start = std::max<int64_t>(from, st.st_size - static_cast<int64_t>(max_bytes));
  std::string text(static_cast<size_t>(st.st_size - start), '\0');
  ssize_t n = pread(fd->get(), text.data(), text.size(), start);
  text.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return text;
}

void AppendLog(const std::string& dir, absl::string_view name, absl::string_view text) {
  FileKind kind = FileKind::kMissing;
  absl::StatusOr<UniqueFd> fd =
      OpenBeneath(dir, name, O_WRONLY | O_CREAT | O_APPEND | O_NONBLOCK, 0644, &kind);
  if (!fd.ok()) {
    if (kind != FileKind::kMissing && kind != FileKind::kRegular) {
      LogUnsafeFile(absl::StrCat(dir, "/", name), kind);
    }
    return;
  }
  while (!text.empty()) {
    ssize_t n = write(fd->get(), text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.remove_prefix(static_cast<size_t>(n));
  }
}

void Touch(const std::string& path) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return;
  futimens(fd, nullptr);
  close(fd);
}

bool HasMountUnder(const std::string& dir) {
  // Mount points decoded: a path with a space is `\040` in mountinfo.
  for (const MountEntry& mount : ReadMountInfo()) {
    if (IsAtOrUnder(mount.mount_point, dir)) return true;
  }
  return false;
}

}  // namespace drover::agent
