// The helpers the files of EnvironmentCache share (environment_internal.h).
#include "agent/environments/environment_internal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <sstream>

#include "agent/runtime/mountinfo.h"

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

void AppendLog(const std::string& path, absl::string_view text) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return;
  while (!text.empty()) {
    ssize_t n = write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.remove_prefix(static_cast<size_t>(n));
  }
  close(fd);
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
