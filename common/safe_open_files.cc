// The small-file helpers: a whole small file read beneath a root (nothing followed) or at a
// path an administrator named (links followed), and a file replaced atomically.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"
#include "common/safe_open.h"
#include "common/safe_open_internal.h"

namespace drover {

using safe_open_internal::KindNoun;
using safe_open_internal::OpenRoot;

namespace {

// All of the open file `fd` (named `path` in errors), at most `max_bytes`.
absl::StatusOr<std::string> ReadAtMost(int fd, absl::string_view path, size_t max_bytes) {
  std::string contents;
  char buffer[4096];
  while (true) {
    ssize_t n = read(fd, buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, absl::StrCat("reading '", path, "'"));
    }
    if (n == 0) break;
    contents.append(buffer, static_cast<size_t>(n));
    if (contents.size() > max_bytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat("'", path, "' is larger than ", max_bytes, " bytes"));
    }
  }
  return contents;
}

}  // namespace

absl::StatusOr<std::string> ReadSmallFileBeneath(int root_fd, absl::string_view path,
                                                 size_t max_bytes, FileKind* found) {
  absl::StatusOr<UniqueFd> fd = OpenBeneath(root_fd, path, O_RDONLY, 0, found);
  if (!fd.ok()) return fd.status();
  return ReadAtMost(fd->get(), path, max_bytes);
}

absl::StatusOr<std::string> ReadSmallFile(const std::string& path, size_t max_bytes) {
  int raw = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (raw < 0) return ErrnoStatus(errno, absl::StrCat("cannot read '", path, "'"));
  UniqueFd fd(raw);
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, absl::StrCat("cannot read '", path, "'"));
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "'", path, "' is ", KindNoun(KindOfMode(st.st_mode)), ", not a regular file"));
  }
  return ReadAtMost(fd.get(), path, max_bytes);
}

namespace {

// All of `text` written to `fd`, again after a signal or a short write. False with errno set
// otherwise.
bool WriteAll(int fd, absl::string_view text) {
  while (!text.empty()) {
    ssize_t n = ::write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) {
      errno = EIO;
      return false;
    }
    text.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

absl::Status ReplaceFile(const std::string& path, absl::string_view text, mode_t mode,
                         FileSync sync) {
  const std::string temporary = path + ".new";
  ::unlink(temporary.c_str());
  int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  bool ok = fd >= 0 && ::fchmod(fd, mode) == 0 && WriteAll(fd, text) &&
            (sync == FileSync::kUnsynced || ::fsync(fd) == 0);
  int error = errno;
  if (fd >= 0) ::close(fd);
  if (!ok || ::rename(temporary.c_str(), path.c_str()) != 0) {
    if (ok) error = errno;
    ::unlink(temporary.c_str());
    return absl::UnavailableError(absl::StrCat("cannot write ", path, ": ", strerror(error)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadSmallFileBeneath(const std::string& root, absl::string_view path,
                                                 size_t max_bytes, FileKind* found) {
  if (found != nullptr) *found = FileKind::kMissing;
  absl::StatusOr<UniqueFd> root_fd = OpenRoot(root);
  if (!root_fd.ok()) return root_fd.status();
  return ReadSmallFileBeneath(root_fd->get(), path, max_bytes, found);
}

}  // namespace drover
