// OpenBeneath: a path resolved beneath a root (safe_open_resolve.cc) and what it names
// checked, with the refusals worded for the caller; folders made beneath a root; the kinds of
// files, and the log line for an unsafe one. Reading, listing and copying beneath a root are
// in safe_open_files.cc and safe_open_list.cc.
#include "common/safe_open.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "common/errno_status.h"
#include "common/log.h"
#include "common/safe_open_internal.h"

namespace drover {

using safe_open_internal::Classify;
using safe_open_internal::Components;
using safe_open_internal::JoinPath;
using safe_open_internal::OpenRoot;
using safe_open_internal::RawOpenBeneath;
using safe_open_internal::Refused;

namespace safe_open_internal {

absl::string_view KindNoun(FileKind kind) {
  switch (kind) {
    case FileKind::kMissing:
      return "missing";
    case FileKind::kRegular:
      return "a regular file";
    case FileKind::kDirectory:
      return "a folder";
    case FileKind::kSymlink:
      return "a symbolic link";
    case FileKind::kFifo:
      return "a fifo";
    case FileKind::kSocket:
      return "a socket";
    case FileKind::kCharDevice:
      return "a character device";
    case FileKind::kBlockDevice:
      return "a block device";
    case FileKind::kOther:
      break;
  }
  return "not a file";
}

absl::Status Refused(absl::string_view path, absl::string_view where, FileKind kind,
                     bool want_dir) {
  std::string what =
      where == path ? absl::StrCat("'", path, "'")
                    : absl::StrCat("'", where, "' on the way to '", path, "'");
  if (kind == FileKind::kSymlink) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, " is a symbolic link; it is not followed"));
  }
  return absl::FailedPreconditionError(
      absl::StrCat(what, " is ", KindNoun(kind), ", not a ",
                   want_dir || where != path ? "folder" : "regular file"));
}

absl::StatusOr<UniqueFd> OpenRoot(const std::string& root) {
  int fd = open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat("'", root, "' does not exist"));
    return ErrnoStatus(errno, absl::StrCat("opening folder '", root, "'"));
  }
  return UniqueFd(fd);
}

}  // namespace safe_open_internal

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = other.release();
  }
  return *this;
}

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) close(fd_);
}

absl::string_view FileKindName(FileKind kind) {
  switch (kind) {
    case FileKind::kMissing:
      return "missing";
    case FileKind::kRegular:
      return "regular";
    case FileKind::kDirectory:
      return "directory";
    case FileKind::kSymlink:
      return "symlink";
    case FileKind::kFifo:
      return "fifo";
    case FileKind::kSocket:
      return "socket";
    case FileKind::kCharDevice:
      return "char_device";
    case FileKind::kBlockDevice:
      return "block_device";
    case FileKind::kOther:
      break;
  }
  return "other";
}

FileKind KindOfMode(mode_t mode) {
  if (S_ISREG(mode)) return FileKind::kRegular;
  if (S_ISDIR(mode)) return FileKind::kDirectory;
  if (S_ISLNK(mode)) return FileKind::kSymlink;
  if (S_ISFIFO(mode)) return FileKind::kFifo;
  if (S_ISSOCK(mode)) return FileKind::kSocket;
  if (S_ISCHR(mode)) return FileKind::kCharDevice;
  if (S_ISBLK(mode)) return FileKind::kBlockDevice;
  return FileKind::kOther;
}

bool IsBeneathPath(absl::string_view path) {
  if (path.empty() || path[0] == '/' || path.find('\0') != absl::string_view::npos) return false;
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part == "..") return false;
  }
  return true;
}

absl::StatusOr<UniqueFd> OpenBeneath(int root_fd, absl::string_view path, int flags, mode_t mode,
                                     FileKind* found) {
  FileKind ignored;
  if (found == nullptr) found = &ignored;
  *found = FileKind::kMissing;
  if (!IsBeneathPath(path)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", path, "' is not a relative path below its folder (absolute, empty or with '..')"));
  }
  const bool want_dir = (flags & O_DIRECTORY) != 0;
  // O_NONBLOCK: a fifo must not hold the open (nor an open for writing wait for a reader).
  // O_TRUNC waits until the file is known to be a regular file.
  const int open_flags =
      (flags & ~(O_TRUNC | O_NONBLOCK)) | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK;
  int fd = RawOpenBeneath(root_fd, path, open_flags, mode);
  if (fd < 0) {
    int error = -fd;
    // Classifying would take descriptors too: say what it is, so that the caller may close
    // some of its own and try again (IsOutOfDescriptors).
    if (error == EMFILE || error == ENFILE) {
      return ErrnoStatus(error, absl::StrCat("opening '", path, "'"));
    }
    std::string where;
    FileKind kind = Classify(root_fd, path, &where);
    *found = kind;
    if (kind == FileKind::kMissing || error == ENOENT) {
      *found = FileKind::kMissing;
      return absl::NotFoundError(absl::StrCat("'", path, "' does not exist"));
    }
    if (kind == FileKind::kSymlink || where != path ||
        kind != (want_dir ? FileKind::kDirectory : FileKind::kRegular)) {
      return Refused(path, where, kind, want_dir);
    }
    return ErrnoStatus(error, absl::StrCat("opening '", path, "'"));
  }
  UniqueFd file(fd);
  struct stat st;
  if (fstat(fd, &st) != 0) return ErrnoStatus(errno, absl::StrCat("inspecting '", path, "'"));
  *found = KindOfMode(st.st_mode);
  if (*found != (want_dir ? FileKind::kDirectory : FileKind::kRegular)) {
    return Refused(path, path, *found, want_dir);
  }
  if ((flags & O_TRUNC) != 0 && ftruncate(fd, 0) != 0) {
    return ErrnoStatus(errno, absl::StrCat("truncating '", path, "'"));
  }
  if ((flags & O_NONBLOCK) == 0) {
    int current = fcntl(fd, F_GETFL);
    if (current < 0 || fcntl(fd, F_SETFL, current & ~O_NONBLOCK) != 0) {
      return ErrnoStatus(errno, absl::StrCat("opening '", path, "'"));
    }
  }
  return file;
}

bool IsOutOfDescriptors(const absl::Status& status) {
  return absl::IsUnavailable(status) &&
         (absl::EndsWith(status.message(), strerror(EMFILE)) ||
          absl::EndsWith(status.message(), strerror(ENFILE)));
}

absl::StatusOr<UniqueFd> OpenBeneath(const std::string& root, absl::string_view path, int flags,
                                     mode_t mode, FileKind* found) {
  if (found != nullptr) *found = FileKind::kMissing;
  absl::StatusOr<UniqueFd> root_fd = OpenRoot(root);
  if (!root_fd.ok()) return root_fd.status();
  return OpenBeneath(root_fd->get(), path, flags, mode, found);
}

absl::Status MakeFoldersBeneath(int root_fd, absl::string_view path, mode_t mode) {
  if (!IsBeneathPath(path)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", path, "' is not a relative path below its folder (absolute, empty or with '..')"));
  }
  // One level at a time below the folder already open, so that a folder swapped for a link
  // meanwhile (by a job writing to the same datastore) cannot take a mkdir elsewhere.
  UniqueFd current(fcntl(root_fd, F_DUPFD_CLOEXEC, 0));
  if (!current.valid()) return ErrnoStatus(errno, "duplicating a descriptor");
  std::string done;
  for (const std::string& part : Components(path)) {
    done = JoinPath(done, part);
    if (mkdirat(current.get(), part.c_str(), mode) != 0 && errno != EEXIST) {
      return ErrnoStatus(errno, absl::StrCat("creating folder '", done, "'"));
    }
    // mkdirat never follows a link in its last component; whatever is there must be a folder.
    FileKind kind = FileKind::kMissing;
    absl::StatusOr<UniqueFd> next =
        OpenBeneath(current.get(), part, O_RDONLY | O_DIRECTORY, 0, &kind);
    if (!next.ok()) {
      if (kind == FileKind::kMissing) return next.status();
      return Refused(done, done, kind, /*want_dir=*/true);
    }
    current = *std::move(next);
  }
  return absl::OkStatus();
}

void LogUnsafeFile(absl::string_view path, FileKind kind) {
  static constexpr size_t kRemembered = 4096;
  static absl::Mutex mu(absl::kConstInit);
  static auto* logged = new absl::flat_hash_set<std::string>();  // guarded by `mu`
  bool first = false;
  {
    absl::MutexLock lock(&mu);
    if (logged->contains(path)) return;
    first = logged->size() < kRemembered;
    if (first) logged->insert(std::string(path));
  }
  Log(first ? LogLevel::kWarning : LogLevel::kDebug, "unsafe_job_file",
      {{"path", path}, {"kind", FileKindName(kind)}});
}

}  // namespace drover
