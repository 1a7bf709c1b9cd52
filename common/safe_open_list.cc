// Listing and copying beneath a root: folders read entry by entry without following
// anything, and trees copied with every level resolved again beneath its root.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"
#include "common/safe_open.h"
#include "common/safe_open_internal.h"

namespace drover {

using safe_open_internal::Components;
using safe_open_internal::JoinPath;
using safe_open_internal::OpenRoot;

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

}  // namespace drover
