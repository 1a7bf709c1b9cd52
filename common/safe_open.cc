#include "common/safe_open.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "common/errno_status.h"
#include "common/log.h"

namespace drover {
namespace {

// Whether openat2(2) may be tried: false after the kernel said ENOSYS (before 5.6), or in
// tests of the fallback.
std::atomic<bool> use_openat2{true};

// How many times an open is retried when openat2 says EAGAIN (a rename raced with the
// resolution) or a signal interrupted it.
constexpr int kRetries = 16;

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

// open(2) of `path` below `root_fd` with nothing followed: the fd, or -errno.
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

// "a symbolic link", "a fifo", ... for messages.
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

// FAILED_PRECONDITION for `path`, where `where` (the path or a folder on the way to it) is of
// `kind`.
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

// The folder `root` (a path the caller trusts), opened to resolve paths beneath it.
absl::StatusOr<UniqueFd> OpenRoot(const std::string& root) {
  int fd = open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat("'", root, "' does not exist"));
    return ErrnoStatus(errno, absl::StrCat("opening folder '", root, "'"));
  }
  return UniqueFd(fd);
}

}  // namespace

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

absl::StatusOr<UniqueFd> OpenBeneath(const std::string& root, absl::string_view path, int flags,
                                     mode_t mode, FileKind* found) {
  if (found != nullptr) *found = FileKind::kMissing;
  absl::StatusOr<UniqueFd> root_fd = OpenRoot(root);
  if (!root_fd.ok()) return root_fd.status();
  return OpenBeneath(root_fd->get(), path, flags, mode, found);
}

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

absl::Status ReplaceFile(const std::string& path, absl::string_view text, mode_t mode) {
  const std::string temporary = path + ".new";
  ::unlink(temporary.c_str());
  int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  bool ok = fd >= 0 && ::fchmod(fd, mode) == 0 &&
            ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            ::fsync(fd) == 0;
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

namespace {

// The entries of the open folder `dir_fd`, sorted by name.
absl::StatusOr<std::vector<BeneathEntry>> ListOpenFolder(int dir_fd, absl::string_view path) {
  int dup_fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
  if (dup_fd < 0) return ErrnoStatus(errno, "duplicating a descriptor");
  DIR* dir = fdopendir(dup_fd);
  if (dir == nullptr) {
    int error = errno;
    close(dup_fd);
    return ErrnoStatus(error, absl::StrCat("listing '", path, "'"));
  }
  std::vector<BeneathEntry> entries;
  while (true) {
    errno = 0;
    struct dirent* ent = readdir(dir);
    if (ent == nullptr) break;
    absl::string_view name(ent->d_name);
    if (name == "." || name == "..") continue;
    struct stat st;
    if (fstatat(dir_fd, ent->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;  // gone since
    BeneathEntry entry;
    entry.name = std::string(name);
    entry.kind = KindOfMode(st.st_mode);
    if (entry.kind == FileKind::kRegular) entry.size = st.st_size;
    entries.push_back(std::move(entry));
  }
  int error = errno;
  closedir(dir);
  if (error != 0) return ErrnoStatus(error, absl::StrCat("listing '", path, "'"));
  std::sort(entries.begin(), entries.end(),
            [](const BeneathEntry& a, const BeneathEntry& b) { return a.name < b.name; });
  return entries;
}

// `path` of the root itself.
bool IsRoot(absl::string_view path) { return Components(path).empty() && !path.empty(); }

absl::StatusOr<UniqueFd> OpenFolderBeneath(int root_fd, absl::string_view path) {
  if (path.empty() || IsRoot(path)) {
    int fd = openat(root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus(errno, "opening a folder");
    return UniqueFd(fd);
  }
  return OpenBeneath(root_fd, path, O_RDONLY | O_DIRECTORY);
}

}  // namespace

absl::StatusOr<std::vector<BeneathEntry>> ListBeneath(int root_fd, absl::string_view path) {
  absl::StatusOr<UniqueFd> dir = OpenFolderBeneath(root_fd, path);
  if (!dir.ok()) return dir.status();
  return ListOpenFolder(dir->get(), path);
}

absl::StatusOr<std::vector<BeneathEntry>> ListBeneath(const std::string& root,
                                                      absl::string_view path) {
  absl::StatusOr<UniqueFd> root_fd = OpenRoot(root);
  if (!root_fd.ok()) return root_fd.status();
  return ListBeneath(root_fd->get(), path);
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

namespace {

// Copies the regular file open as `from_fd` to `to` below `to_root`.
absl::Status CopyFile(int from_fd, absl::string_view from, int to_root, absl::string_view to,
                      mode_t mode) {
  absl::StatusOr<UniqueFd> out = OpenBeneath(to_root, to, O_WRONLY | O_CREAT | O_TRUNC, mode);
  if (!out.ok()) return out.status();
  char buffer[1 << 16];
  while (true) {
    ssize_t n = read(from_fd, buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, absl::StrCat("reading '", from, "'"));
    }
    if (n == 0) break;
    for (ssize_t written = 0; written < n;) {
      ssize_t w = write(out->get(), buffer + written, static_cast<size_t>(n - written));
      if (w < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus(errno, absl::StrCat("writing '", to, "'"));
      }
      written += w;
    }
  }
  return absl::OkStatus();
}

absl::Status CopyFolder(int from_root, const std::string& from, int to_root, const std::string& to,
                        std::vector<std::string>* skipped, int depth) {
  if (depth > 256) {
    return absl::FailedPreconditionError(
        absl::StrCat("'", from, "' is nested more than 256 folders deep"));
  }
  if (!to.empty()) {
    if (absl::Status made = MakeFoldersBeneath(to_root, to); !made.ok()) return made;
  }
  absl::StatusOr<UniqueFd> dir = OpenFolderBeneath(from_root, from);
  if (!dir.ok()) return dir.status();
  absl::StatusOr<std::vector<BeneathEntry>> entries = ListOpenFolder(dir->get(), from);
  if (!entries.ok()) return entries.status();
  for (const BeneathEntry& entry : *entries) {
    std::string source = JoinPath(from, entry.name);
    std::string target = JoinPath(to, entry.name);
    if (entry.kind == FileKind::kDirectory) {
      // Opened below the folder already open, so that a swap of `from` since cannot lead
      // elsewhere: each level is resolved again without links.
      if (absl::Status s = CopyFolder(from_root, source, to_root, target, skipped, depth + 1);
          !s.ok()) {
        return s;
      }
      continue;
    }
    FileKind kind = entry.kind;
    if (kind == FileKind::kRegular) {
      absl::StatusOr<UniqueFd> in = OpenBeneath(dir->get(), entry.name, O_RDONLY, 0, &kind);
      if (in.ok()) {
        struct stat st;
        mode_t mode = fstat(in->get(), &st) == 0 && (st.st_mode & S_IXUSR) != 0 ? 0755 : 0644;
        if (absl::Status s = CopyFile(in->get(), source, to_root, target, mode); !s.ok()) return s;
        continue;
      }
      if (kind == FileKind::kMissing) continue;  // removed since the listing
    }
    if (skipped != nullptr) skipped->push_back(absl::StrCat(source, " (", FileKindName(kind), ")"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CopyBeneath(int from_root, absl::string_view from, int to_root, absl::string_view to,
                         std::vector<std::string>* skipped) {
  const bool from_root_itself = from.empty() || IsRoot(from);
  if (!from_root_itself && !IsBeneathPath(from)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", from, "' is not a relative path below its folder (absolute, empty or with '..')"));
  }
  const bool to_root_itself = to.empty() || IsRoot(to);
  if (!to_root_itself && !IsBeneathPath(to)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", to, "' is not a relative path below its folder (absolute, empty or with '..')"));
  }
  std::string source = from_root_itself ? "" : std::string(from);
  std::string target = to_root_itself ? "" : std::string(to);
  FileKind kind = FileKind::kDirectory;
  if (!from_root_itself) {
    absl::StatusOr<UniqueFd> in = OpenBeneath(from_root, source, O_RDONLY, 0, &kind);
    if (in.ok()) {
      if (target.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("'", source, "' is a file; it cannot replace a whole folder"));
      }
      size_t slash = target.rfind('/');
      if (slash != std::string::npos) {
        if (absl::Status made = MakeFoldersBeneath(to_root, target.substr(0, slash)); !made.ok()) {
          return made;
        }
      }
      struct stat st;
      mode_t mode = fstat(in->get(), &st) == 0 && (st.st_mode & S_IXUSR) != 0 ? 0755 : 0644;
      return CopyFile(in->get(), source, to_root, target, mode);
    }
    if (kind != FileKind::kDirectory) return in.status();
  }
  return CopyFolder(from_root, source, to_root, target, skipped, 0);
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

namespace internal {
void SetUseOpenat2ForTesting(bool use) { use_openat2.store(use, std::memory_order_relaxed); }
}  // namespace internal

}  // namespace drover
