// The resolution of a path beneath a root with nothing followed: openat2(2) where the
// kernel has it, else one component at a time with O_NOFOLLOW (kernels before 5.6, or a
// seccomp filter that refuses openat2).
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/safe_open.h"
#include "common/safe_open_internal.h"

namespace drover {
namespace {

// Whether openat2(2) may be tried: false after the kernel said ENOSYS (before 5.6), or in
// tests of the fallback.
std::atomic<bool> use_openat2{true};

// How many times an open is retried when openat2 says EAGAIN (a rename raced with the
// resolution) or a signal interrupted it.
constexpr int kRetries = 16;

// Opens the folders of `parts[0..count)` below `root_fd` one at a time as O_PATH descriptors,
// refusing a symbolic link or anything but a folder. On failure returns -1 with `*error` the
// errno (ELOOP for a link, ENOTDIR for a non-folder) and `*failed` the index of the component.
int WalkFolders(int root_fd, const std::vector<std::string>& parts, size_t count, int* error,
                size_t* failed) {
  int current = fcntl(root_fd, F_DUPFD_CLOEXEC, 0);
  if (current < 0) {
    *error = errno;
    *failed = 0;
    return -1;
  }
  for (size_t i = 0; i < count; ++i) {
    // O_PATH with O_NOFOLLOW opens a symbolic link itself (never what it names) and never
    // blocks or touches a device; fstat then says what it is.
    int next = openat(current, parts[i].c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
    int err = errno;
    close(current);
    if (next < 0) {
      *error = err;
      *failed = i;
      return -1;
    }
    struct stat st;
    if (fstat(next, &st) != 0 || !S_ISDIR(st.st_mode)) {
      *error = S_ISLNK(st.st_mode) ? ELOOP : ENOTDIR;
      *failed = i;
      close(next);
      return -1;
    }
    current = next;
  }
  return current;
}

}  // namespace

namespace safe_open_internal {

std::string JoinPath(absl::string_view a, absl::string_view b) {
  if (a.empty()) return std::string(b);
  return absl::StrCat(a, "/", b);
}

// The components of a path that IsBeneathPath accepted, without "" and ".".
std::vector<std::string> Components(absl::string_view path) {
  std::vector<std::string> parts;
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part.empty() || part == ".") continue;
    parts.emplace_back(part);
  }
  return parts;
}

int RawOpenBeneath(int root_fd, absl::string_view path, int flags, mode_t mode) {
  const std::string text(path);
  for (int attempt = 0; attempt < kRetries; ++attempt) {
    if (use_openat2.load(std::memory_order_relaxed)) {
      open_how how{};
      how.flags = static_cast<uint64_t>(flags);
      how.mode = (flags & O_CREAT) != 0 ? mode : 0;
      how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
      long fd = syscall(SYS_openat2, root_fd, text.c_str(), &how, sizeof how);
      if (fd >= 0) return static_cast<int>(fd);
      if (errno == EAGAIN || errno == EINTR) continue;
      if (errno != ENOSYS && errno != EPERM) return -errno;
      // No openat2 (or a seccomp filter that refuses it): walk the components.
      use_openat2.store(false, std::memory_order_relaxed);
    }
    std::vector<std::string> parts = Components(path);
    if (parts.empty()) {
      // The root itself.
      int fd = openat(root_fd, ".", flags & ~(O_CREAT | O_EXCL | O_NOFOLLOW), mode);
      if (fd < 0 && errno == EINTR) continue;
      return fd >= 0 ? fd : -errno;
    }
    int error = 0;
    size_t failed = 0;
    int parent = WalkFolders(root_fd, parts, parts.size() - 1, &error, &failed);
    if (parent < 0) return -error;
    int fd = openat(parent, parts.back().c_str(), flags, mode);
    int err = errno;
    close(parent);
    if (fd >= 0) return fd;
    if (err == EINTR) continue;
    return -err;
  }
  return -EAGAIN;
}

// What `path` below `root_fd` names, nothing followed; `*where` the part of the path that
// has that kind when a folder on the way is not a folder.
FileKind Classify(int root_fd, absl::string_view path, std::string* where) {
  std::vector<std::string> parts = Components(path);
  *where = std::string(path);
  if (parts.empty()) {
    struct stat st;
    return fstat(root_fd, &st) == 0 ? KindOfMode(st.st_mode) : FileKind::kMissing;
  }
  int error = 0;
  size_t failed = 0;
  int parent = WalkFolders(root_fd, parts, parts.size() - 1, &error, &failed);
  if (parent < 0) {
    std::string prefix;
    for (size_t i = 0; i <= failed && i < parts.size(); ++i) {
      absl::StrAppend(&prefix, i == 0 ? "" : "/", parts[i]);
    }
    *where = prefix;
    if (error == ELOOP) return FileKind::kSymlink;
    if (error != ENOTDIR) return FileKind::kMissing;
    // Not a folder: say what it is.
    struct stat st;
    if (fstatat(root_fd, prefix.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
      return KindOfMode(st.st_mode);
    }
    return FileKind::kOther;
  }
  struct stat st;
  int rc = fstatat(parent, parts.back().c_str(), &st, AT_SYMLINK_NOFOLLOW);
  close(parent);
  return rc == 0 ? KindOfMode(st.st_mode) : FileKind::kMissing;
}

}  // namespace safe_open_internal

namespace internal {
void SetUseOpenat2ForTesting(bool use) { use_openat2.store(use, std::memory_order_relaxed); }
}  // namespace internal

}  // namespace drover
