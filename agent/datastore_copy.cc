#include "agent/datastore_copy.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/errno_status.h"
#include "common/safe_open.h"
#include "common/status_macros.h"

namespace drover::agent {
namespace {

// Deeper trees are refused: each level holds two descriptors and a stack frame.
constexpr int kMaxDepth = 128;

using Fd = UniqueFd;

constexpr int kDirFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;

std::vector<std::string> Components(const std::string& relative) {
  return absl::StrSplit(relative, '/', absl::SkipEmpty());
}

std::string JoinRelative(const std::string& base, const std::string& name) {
  return base.empty() ? name : absl::StrCat(base, "/", name);
}

// Why `name` in `dir` could not be opened as a folder without following it.
absl::Status NotAFolder(int dir, const std::string& name, const std::string& shown, int error) {
  struct stat st;
  if (fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (S_ISLNK(st.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat(shown, " is a symbolic link; the agent follows no links in datastores "
                              "and job folders (replace it with the folder itself)"));
    }
    if (!S_ISDIR(st.st_mode)) {
      return absl::FailedPreconditionError(absl::StrCat(shown, " is not a folder"));
    }
  }
  if (error == ENOENT) return absl::NotFoundError(absl::StrCat(shown, " does not exist"));
  return ErrnoStatus(error, absl::StrCat("opening ", shown));
}

absl::StatusOr<Fd> OpenRoot(const std::string& root) {
  Fd fd(open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat(root, " does not exist"));
    return ErrnoStatus(errno, absl::StrCat("opening ", root));
  }
  return fd;
}

// Opens the folder `name` in `dir` without following it; with `create`, makes it first
// when missing. `shown` names it in errors.
absl::StatusOr<Fd> OpenFolderIn(int dir, const std::string& name, bool create,
                                const std::string& shown) {
  if (create && mkdirat(dir, name.c_str(), 0755) != 0 && errno != EEXIST) {
    return ErrnoStatus(errno, absl::StrCat("creating ", shown));
  }
  Fd fd(openat(dir, name.c_str(), kDirFlags));
  if (!fd.valid()) return NotAFolder(dir, name, shown, errno);
  return fd;
}

// Walks `relative` beneath `root_fd` one folder at a time.
absl::StatusOr<Fd> WalkFolders(int root_fd, const std::vector<std::string>& parts, size_t count,
                               bool create) {
  Fd current(fcntl(root_fd, F_DUPFD_CLOEXEC, 0));
  if (!current.valid()) return ErrnoStatus(errno, "duplicating a descriptor");
  std::string shown;
  for (size_t i = 0; i < count; ++i) {
    shown = JoinRelative(shown, parts[i]);
    absl::StatusOr<Fd> next = OpenFolderIn(current.get(), parts[i], create, shown);
    if (!next.ok()) return next.status();
    current = *std::move(next);
  }
  return current;
}

absl::Status WriteAll(int in, int out, const std::string& shown) {
  bool use_sendfile = true;
  std::vector<char> buffer;
  for (;;) {
    ssize_t n;
    if (use_sendfile) {
      n = sendfile(out, in, nullptr, 1 << 30);
      if (n < 0 && (errno == EINVAL || errno == ENOSYS)) {
        use_sendfile = false;
        continue;
      }
    } else {
      if (buffer.empty()) buffer.resize(1 << 20);
      n = read(in, buffer.data(), buffer.size());
      for (ssize_t done = 0; n > 0 && done < n;) {
        ssize_t w = write(out, buffer.data() + done, static_cast<size_t>(n - done));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return ErrnoStatus(w < 0 ? errno : EIO, absl::StrCat("writing ", shown));
        done += w;
      }
    }
    if (n == 0) return absl::OkStatus();
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, absl::StrCat("copying ", shown));
    }
  }
}

class Copier {
 public:
  CopyStats stats;

  // Copies the open folder `from` into the open folder `to`, merging.
  absl::Status CopyContents(int from, int to, const std::string& shown, int depth) {
    if (depth > kMaxDepth) {
      return absl::FailedPreconditionError(
          absl::StrCat(shown, " is nested deeper than ", kMaxDepth, " folders"));
    }
    int listed = fcntl(from, F_DUPFD_CLOEXEC, 0);
    if (listed < 0) return ErrnoStatus(errno, "duplicating a descriptor");
    DIR* dir = fdopendir(listed);
    if (dir == nullptr) {
      int error = errno;
      close(listed);
      return ErrnoStatus(error, absl::StrCat("listing ", shown));
    }
    std::vector<std::string> names;
    errno = 0;
    while (dirent* entry = readdir(dir)) {
      std::string name = entry->d_name;
      if (name != "." && name != "..") names.push_back(std::move(name));
      errno = 0;
    }
    int error = errno;
    closedir(dir);
    if (error != 0) return ErrnoStatus(error, absl::StrCat("listing ", shown));
    for (const std::string& name : names) {
      if (absl::Status s = CopyEntry(from, name, to, name, JoinRelative(shown, name), depth + 1);
          !s.ok()) {
        return s;
      }
    }
    return absl::OkStatus();
  }

  // Copies `name` of the folder `from` to `to_name` in the folder `to`. `top`: the entry the
  // caller named, which must be a folder or a regular file.
  absl::Status CopyEntry(int from, const std::string& name, int to, const std::string& to_name,
                         const std::string& shown, int depth, bool top = false) {
    struct stat st;
    if (fstatat(from, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) return absl::NotFoundError(absl::StrCat(shown, " does not exist"));
      return ErrnoStatus(errno, absl::StrCat("reading ", shown));
    }
    if (S_ISDIR(st.st_mode)) {
      Fd source(openat(from, name.c_str(), kDirFlags));
      if (!source.valid()) return NotAFolder(from, name, shown, errno);
      DROVER_ASSIGN_OR_RETURN(Fd target, MakeTargetFolder(to, to_name, shown));
      return CopyContents(source.get(), target.get(), shown, depth);
    }
    if (!S_ISREG(st.st_mode)) return Skip(st, shown, top);
    Fd source(openat(from, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    if (!source.valid()) {
      if (errno == ELOOP) return Skip(st, shown, top);
      return ErrnoStatus(errno, absl::StrCat("opening ", shown));
    }
    // Swapped since the look: check what was opened.
    if (fstat(source.get(), &st) != 0) return ErrnoStatus(errno, absl::StrCat("reading ", shown));
    if (!S_ISREG(st.st_mode)) return Skip(st, shown, top);
    DROVER_ASSIGN_OR_RETURN(Fd target, MakeTargetFile(to, to_name, st.st_mode, shown));
    if (absl::Status s = WriteAll(source.get(), target.get(), shown); !s.ok()) return s;
    ++stats.files;
    return absl::OkStatus();
  }

 private:
  absl::Status Skip(const struct stat& st, const std::string& shown, bool top) {
    if (top) {
      return absl::FailedPreconditionError(absl::StrCat(
          shown, S_ISLNK(st.st_mode) ? " is a symbolic link" : " is not a folder or a file",
          "; the agent copies only folders and regular files"));
    }
    if (stats.skipped++ == 0) stats.first_skipped = shown;
    return absl::OkStatus();
  }

  // The folder `name` in `dir`: made when missing, or in place of a symlink or file there.
  absl::StatusOr<Fd> MakeTargetFolder(int dir, const std::string& name, const std::string& shown) {
    struct stat st;
    if (fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode) &&
        unlinkat(dir, name.c_str(), 0) != 0) {
      return ErrnoStatus(errno, absl::StrCat("replacing ", shown));
    }
    return OpenFolderIn(dir, name, /*create=*/true, shown);
  }

  // The regular file `name` in `dir`, empty: a file there is truncated; a symlink or other
  // non-folder is replaced, never opened.
  absl::StatusOr<Fd> MakeTargetFile(int dir, const std::string& name, mode_t mode,
                                    const std::string& shown) {
    const mode_t bits = mode & 0777;
    struct stat existing;
    if (fstatat(dir, name.c_str(), &existing, AT_SYMLINK_NOFOLLOW) == 0) {
      if (S_ISDIR(existing.st_mode)) {
        return absl::FailedPreconditionError(
            absl::StrCat(shown, " is a folder where the copy has a file; remove it"));
      }
      // Never opened: a symlink, FIFO or device, or a file with other names (a hard link to
      // a file outside) is replaced, not written into.
      if ((!S_ISREG(existing.st_mode) || existing.st_nlink > 1) &&
          unlinkat(dir, name.c_str(), 0) != 0 && errno != ENOENT) {
        return ErrnoStatus(errno, absl::StrCat("replacing ", shown));
      }
    }
    for (int tries = 0; tries < 3; ++tries) {
      Fd fd(openat(dir, name.c_str(),
                   O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, bits));
      if (fd.valid()) {
        struct stat st;
        if (fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, absl::StrCat("writing ", shown));
        if (S_ISREG(st.st_mode) && st.st_nlink <= 1) {
          if (ftruncate(fd.get(), 0) != 0 || fchmod(fd.get(), bits) != 0) {
            return ErrnoStatus(errno, absl::StrCat("writing ", shown));
          }
          return fd;
        }
      } else if (errno == EISDIR) {
        return absl::FailedPreconditionError(
            absl::StrCat(shown, " is a folder where the copy has a file; remove it"));
      } else if (errno != ELOOP && errno != ENXIO && errno != EWOULDBLOCK) {
        return ErrnoStatus(errno, absl::StrCat("creating ", shown));
      }
      // A symlink, FIFO, socket or device of that name: replaced.
      if (unlinkat(dir, name.c_str(), 0) != 0 && errno != ENOENT) {
        return ErrnoStatus(errno, absl::StrCat("replacing ", shown));
      }
    }
    return absl::UnavailableError(absl::StrCat(shown, " keeps changing while it is written"));
  }
};

}  // namespace

absl::StatusOr<CopyStats> CopyBeneath(const std::string& from_root, const std::string& from,
                                      const std::string& to_root, const std::string& to) {
  absl::StatusOr<Fd> from_root_fd = OpenRoot(from_root);
  if (!from_root_fd.ok()) return from_root_fd.status();
  absl::StatusOr<Fd> to_root_fd = OpenRoot(to_root);
  if (!to_root_fd.ok()) return to_root_fd.status();
  const std::vector<std::string> from_parts = Components(from);
  const std::vector<std::string> to_parts = Components(to);
  Copier copier;
  if (from_parts.empty()) {
    // The root folder itself: its contents go into `to`.
    absl::StatusOr<Fd> target =
        WalkFolders(to_root_fd->get(), to_parts, to_parts.size(), /*create=*/true);
    if (!target.ok()) return target.status();
    DROVER_RETURN_IF_ERROR(
        copier.CopyContents(from_root_fd->get(), target->get(), "", /*depth=*/0));
    return copier.stats;
  }
  absl::StatusOr<Fd> source_parent =
      WalkFolders(from_root_fd->get(), from_parts, from_parts.size() - 1, /*create=*/false);
  if (!source_parent.ok()) return source_parent.status();
  std::string target_name;
  absl::StatusOr<Fd> target_parent;
  if (to_parts.empty()) {
    // Into the root folder itself: `from` must be a folder.
    Fd source(openat(source_parent->get(), from_parts.back().c_str(), kDirFlags));
    if (!source.valid()) return NotAFolder(source_parent->get(), from_parts.back(), from, errno);
    DROVER_RETURN_IF_ERROR(
        copier.CopyContents(source.get(), to_root_fd->get(), from, /*depth=*/0));
    return copier.stats;
  }
  target_parent = WalkFolders(to_root_fd->get(), to_parts, to_parts.size() - 1, /*create=*/true);
  if (!target_parent.ok()) return target_parent.status();
  DROVER_RETURN_IF_ERROR(copier.CopyEntry(source_parent->get(), from_parts.back(),
                                               target_parent->get(), to_parts.back(), from,
                                               /*depth=*/0, /*top=*/true));
  return copier.stats;
}

absl::Status MakeFoldersBeneath(const std::string& root, const std::string& relative) {
  absl::StatusOr<Fd> root_fd = OpenRoot(root);
  if (!root_fd.ok()) return root_fd.status();
  const std::vector<std::string> parts = Components(relative);
  return WalkFolders(root_fd->get(), parts, parts.size(), /*create=*/true).status();
}

absl::StatusOr<bool> FolderBeneathIsEmpty(const std::string& root, const std::string& relative) {
  absl::StatusOr<Fd> root_fd = OpenRoot(root);
  if (!root_fd.ok()) return root_fd.status();
  const std::vector<std::string> parts = Components(relative);
  absl::StatusOr<Fd> folder = WalkFolders(root_fd->get(), parts, parts.size(), /*create=*/false);
  if (absl::IsNotFound(folder.status())) return true;
  if (!folder.ok()) return folder.status();
  DIR* dir = fdopendir(fcntl(folder->get(), F_DUPFD_CLOEXEC, 0));
  if (dir == nullptr) return ErrnoStatus(errno, absl::StrCat("listing ", relative));
  bool empty = true;
  while (dirent* entry = readdir(dir)) {
    std::string name = entry->d_name;
    if (name != "." && name != "..") {
      empty = false;
      break;
    }
  }
  closedir(dir);
  return empty;
}

}  // namespace drover::agent
