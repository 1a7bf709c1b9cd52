#include "common/archive/safe_extract.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <system_error>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/archive/archive_paths.h"
#include "common/archive/sha256.h"
#include "common/archive/tar_format.h"
#include "common/archive/tar_reader.h"
#include "common/status_macros.h"

namespace drover::archive {
namespace {

// Owns a file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { Reset(); }
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void Reset() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  int Release() { return std::exchange(fd_, -1); }

 private:
  int fd_ = -1;
};

absl::Status EntryError(absl::string_view name, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("archive entry '", PrintableName(name), "': ", why));
}

std::string FormatSize(uint64_t bytes) {
  if (bytes >= (uint64_t{1} << 30) && bytes % (uint64_t{1} << 30) == 0) {
    return absl::StrCat(bytes >> 30, " GiB");
  }
  if (bytes >= (uint64_t{1} << 20) && bytes % (uint64_t{1} << 20) == 0) {
    return absl::StrCat(bytes >> 20, " MiB");
  }
  return absl::StrCat(bytes, " bytes");
}

// "a/b/c" -> {"a/b", "c"}; "c" -> {"", "c"}.
std::pair<absl::string_view, absl::string_view> SplitParent(absl::string_view path) {
  size_t slash = path.rfind('/');
  if (slash == absl::string_view::npos) return {absl::string_view(), path};
  return {path.substr(0, slash), path.substr(slash + 1)};
}

absl::Status WriteAll(int fd, absl::string_view data, absl::string_view name) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::ErrnoToStatus(
          errno, absl::StrCat("cannot write extracted file '", PrintableName(name), "'"));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

// Extracts entries below one root folder descriptor.
class Extractor {
 public:
  Extractor(int root_fd, const ExtractOptions& options) : root_fd_(root_fd), options_(options) {}

  absl::Status Run(TarReader& reader) {
    while (true) {
      DROVER_ASSIGN_OR_RETURN(std::optional<TarEntry> entry, reader.Next());
      if (!entry.has_value()) return absl::OkStatus();
      DROVER_RETURN_IF_ERROR(Extract(reader, *entry));
    }
  }

  // Gives every folder its final mode, deepest first (so that a read-only folder does not
  // stop its children from being changed), and syncs folders when asked.
  absl::Status FinishFolders() {
    for (auto it = folder_modes_.rbegin(); it != folder_modes_.rend(); ++it) {
      DROVER_ASSIGN_OR_RETURN(int fd, OpenFolder(it->first, it->first, /*create=*/false));
      if (fchmod(fd, it->second) != 0) {
        return absl::ErrnoToStatus(
            errno, absl::StrCat("cannot set the mode of folder '", PrintableName(it->first), "'"));
      }
      if (options_.sync_to_disk && fsync(fd) != 0) {
        return absl::ErrnoToStatus(errno, "cannot sync extracted folder");
      }
    }
    cached_fd_.Reset();
    cached_path_.reset();
    return absl::OkStatus();
  }

  uint64_t entry_count() const { return entry_count_; }
  uint64_t total_bytes() const { return total_bytes_; }

 private:
  absl::Status Extract(TarReader& reader, const TarEntry& entry) {
    if (++entry_count_ > options_.max_entries) {
      return absl::ResourceExhaustedError(
          absl::StrCat("archive has more than ", options_.max_entries,
                       " entries (the limit); at entry '", PrintableName(entry.path), "'"));
    }
    absl::StatusOr<std::string> normalized = NormalizeEntryPath(entry.path);
    if (!normalized.ok()) return EntryError(entry.path, normalized.status().message());
    const std::string& path = *normalized;
    if (path.empty()) {
      --entry_count_;
      if (entry.type == tar::kDirectory) return absl::OkStatus();  // "./": the root itself
      return EntryError(entry.path, "names the destination folder itself");
    }
    uint32_t mode = entry.mode & 0777;  // setuid, setgid and sticky bits are dropped
    switch (entry.type) {
      case tar::kDirectory:
        return MakeFolder(entry.path, path, mode);
      case tar::kRegular:
        return WriteFile(reader, entry, path, mode);
      case tar::kSymlink:
        return MakeSymlink(entry, path);
      case tar::kHardLink:
        return MakeHardLink(entry, path);
      case tar::kCharDevice:
      case tar::kBlockDevice:
        return EntryError(entry.path, "device files are not allowed");
      case tar::kFifo:
        return EntryError(entry.path, "fifos are not allowed");
      default:
        return EntryError(entry.path, absl::StrCat("unsupported entry type '",
                                                   PrintableName(std::string(1, entry.type)), "'"));
    }
  }

  // Opens the folder `path` ("" is the root), one component at a time without following
  // links, creating missing components when `create`. The descriptor stays owned by the
  // extractor and is valid until the next call.
  absl::StatusOr<int> OpenFolder(absl::string_view entry_name, absl::string_view path,
                                 bool create) {
    if (path.empty()) return root_fd_;
    if (cached_path_.has_value() && *cached_path_ == path) return cached_fd_.get();
    int base = root_fd_;
    size_t start = 0;
    if (cached_path_.has_value() && !cached_path_->empty() && path.size() > cached_path_->size() &&
        path[cached_path_->size()] == '/' &&
        path.substr(0, cached_path_->size()) == *cached_path_) {
      base = cached_fd_.get();
      start = cached_path_->size() + 1;
    }
    Fd current;
    while (start <= path.size()) {
      size_t slash = path.find('/', start);
      if (slash == absl::string_view::npos) slash = path.size();
      std::string component(path.substr(start, slash - start));
      absl::string_view so_far = path.substr(0, slash);
      int parent = current.valid() ? current.get() : base;
      int fd = openat(parent, component.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0 && errno == ENOENT && create) {
        if (mkdirat(parent, component.c_str(), 0700) != 0) {
          return absl::ErrnoToStatus(
              errno, absl::StrCat("cannot create folder '", PrintableName(so_far), "'"));
        }
        folder_modes_.emplace(std::string(so_far), 0755);
        fd = openat(parent, component.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      }
      if (fd < 0) {
        int err = errno;
        struct stat st;
        // O_DIRECTORY reports a symbolic link as ENOTDIR; tell the two apart for the message.
        if ((err == ELOOP || err == ENOTDIR) &&
            fstatat(parent, component.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISLNK(st.st_mode)) {
          return EntryError(entry_name, absl::StrCat("'", PrintableName(so_far),
                                                     "' is a symbolic link; writing through "
                                                     "links is refused"));
        }
        if (err == ENOTDIR) {
          return EntryError(entry_name,
                            absl::StrCat("'", PrintableName(so_far), "' is not a folder"));
        }
        return absl::ErrnoToStatus(
            err, absl::StrCat("cannot open folder '", PrintableName(so_far), "'"));
      }
      current = Fd(fd);
      start = slash + 1;
    }
    cached_fd_ = std::move(current);
    cached_path_ = std::string(path);
    return cached_fd_.get();
  }

  absl::Status Duplicate(absl::string_view name) {
    return EntryError(name, "the name appears twice in the archive (or below a file)");
  }

  absl::Status MakeFolder(absl::string_view name, const std::string& path, uint32_t mode) {
    auto [parent, leaf] = SplitParent(path);
    DROVER_ASSIGN_OR_RETURN(int parent_fd, OpenFolder(name, parent, /*create=*/true));
    std::string leaf_name(leaf);
    // Created private; `FinishFolders` sets the archived mode once nothing is added below.
    if (mkdirat(parent_fd, leaf_name.c_str(), 0700) != 0) {
      int err = errno;
      struct stat st;
      if (err != EEXIST || fstatat(parent_fd, leaf_name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 ||
          !S_ISDIR(st.st_mode)) {
        if (err == EEXIST) return Duplicate(name);
        return absl::ErrnoToStatus(
            err, absl::StrCat("cannot create folder '", PrintableName(path), "'"));
      }
    }
    folder_modes_[path] = mode;
    return absl::OkStatus();
  }

  absl::Status WriteFile(TarReader& reader, const TarEntry& entry, const std::string& path,
                         uint32_t mode) {
    if (entry.size > options_.max_file_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "archive entry '", PrintableName(entry.path), "' is ", entry.size,
          " bytes, above the limit of ", FormatSize(options_.max_file_bytes), " per file"));
    }
    if (entry.size > options_.max_total_bytes - total_bytes_) {
      return absl::ResourceExhaustedError(
          absl::StrCat("archive holds more than ", FormatSize(options_.max_total_bytes),
                       " of file data (the limit); at entry '", PrintableName(entry.path), "'"));
    }
    total_bytes_ += entry.size;
    auto [parent, leaf] = SplitParent(path);
    DROVER_ASSIGN_OR_RETURN(int parent_fd, OpenFolder(entry.path, parent, /*create=*/true));
    std::string leaf_name(leaf);
    int raw = openat(parent_fd, leaf_name.c_str(),
                     O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (raw < 0) {
      if (errno == EEXIST) return Duplicate(entry.path);
      return absl::ErrnoToStatus(errno,
                                 absl::StrCat("cannot create file '", PrintableName(path), "'"));
    }
    Fd fd(raw);
    DROVER_RETURN_IF_ERROR(reader.ReadData(
        [&](absl::string_view piece) { return WriteAll(fd.get(), piece, entry.path); }));
    if (fchmod(fd.get(), mode) != 0) {
      return absl::ErrnoToStatus(
          errno, absl::StrCat("cannot set the mode of '", PrintableName(path), "'"));
    }
    if (options_.sync_to_disk && fsync(fd.get()) != 0) {
      return absl::ErrnoToStatus(errno, absl::StrCat("cannot sync '", PrintableName(path), "'"));
    }
    if (close(fd.Release()) != 0) {
      return absl::ErrnoToStatus(
          errno, absl::StrCat("cannot write extracted file '", PrintableName(path), "'"));
    }
    files_.insert(path);
    return absl::OkStatus();
  }

  absl::Status MakeSymlink(const TarEntry& entry, const std::string& path) {
    if (!SymlinkStaysInside(path, entry.linkname)) {
      return EntryError(
          entry.path,
          absl::StrCat("symbolic link to '", PrintableName(entry.linkname),
                       "' may point outside the destination (only relative targets inside "
                       "the tree, with '..' only at the start, are allowed)"));
    }
    auto [parent, leaf] = SplitParent(path);
    DROVER_ASSIGN_OR_RETURN(int parent_fd, OpenFolder(entry.path, parent, /*create=*/true));
    std::string leaf_name(leaf);
    if (symlinkat(entry.linkname.c_str(), parent_fd, leaf_name.c_str()) != 0) {
      if (errno == EEXIST) return Duplicate(entry.path);
      return absl::ErrnoToStatus(
          errno, absl::StrCat("cannot create symbolic link '", PrintableName(path), "'"));
    }
    return absl::OkStatus();
  }

  absl::Status MakeHardLink(const TarEntry& entry, const std::string& path) {
    absl::StatusOr<std::string> target = NormalizeEntryPath(entry.linkname);
    if (!target.ok()) {
      return EntryError(entry.path,
                        absl::StrCat("hard link target '", PrintableName(entry.linkname),
                                     "': ", target.status().message()));
    }
    if (!files_.contains(*target)) {
      return EntryError(entry.path,
                        absl::StrCat("hard link to '", PrintableName(entry.linkname),
                                     "', which is not a regular file extracted earlier from "
                                     "this archive"));
    }
    auto [target_parent, target_leaf] = SplitParent(*target);
    DROVER_ASSIGN_OR_RETURN(int borrowed, OpenFolder(entry.path, target_parent, /*create=*/false));
    Fd target_parent_fd(fcntl(borrowed, F_DUPFD_CLOEXEC, 0));
    if (!target_parent_fd.valid()) return absl::ErrnoToStatus(errno, "cannot duplicate fd");
    auto [parent, leaf] = SplitParent(path);
    DROVER_ASSIGN_OR_RETURN(int parent_fd, OpenFolder(entry.path, parent, /*create=*/true));
    std::string target_leaf_name(target_leaf);
    std::string leaf_name(leaf);
    // No AT_SYMLINK_FOLLOW: the link is to the file itself, never through a symlink.
    if (linkat(target_parent_fd.get(), target_leaf_name.c_str(), parent_fd, leaf_name.c_str(), 0) !=
        0) {
      if (errno == EEXIST) return Duplicate(entry.path);
      return absl::ErrnoToStatus(
          errno, absl::StrCat("cannot create hard link '", PrintableName(path), "'"));
    }
    files_.insert(path);
    return absl::OkStatus();
  }

  int root_fd_;
  const ExtractOptions& options_;
  std::optional<std::string> cached_path_;
  Fd cached_fd_;
  absl::flat_hash_set<std::string> files_;  // regular files so far: hard-link targets
  std::map<std::string, uint32_t> folder_modes_;
  uint64_t entry_count_ = 0;
  uint64_t total_bytes_ = 0;
};

absl::Status SyncPath(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("cannot open '", path, "'"));
  int rc = fsync(fd);
  int err = errno;
  close(fd);
  if (rc != 0) return absl::ErrnoToStatus(err, absl::StrCat("cannot sync '", path, "'"));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ExtractResult> ExtractTar(const std::string& tar_path, const std::string& dest_dir,
                                         const ExtractOptions& options) {
  if (!options.expected_digest.empty() && !IsValidDigest(options.expected_digest)) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected digest '", options.expected_digest,
                     "' is malformed: want 'sha256:' and 64 lowercase hex digits"));
  }
  std::string dest = dest_dir;
  while (dest.size() > 1 && dest.back() == '/') dest.pop_back();
  size_t slash = dest.rfind('/');
  std::string parent =
      slash == std::string::npos ? "." : (slash == 0 ? "/" : dest.substr(0, slash));
  std::string base = slash == std::string::npos ? dest : dest.substr(slash + 1);
  if (base.empty() || base == "." || base == "..") {
    return absl::InvalidArgumentError(absl::StrCat(
        "destination '", dest_dir, "' must name a new folder (for example 'out/snapshot')"));
  }
  std::error_code ec;
  std::filesystem::create_directories(parent, ec);
  if (ec) {
    return absl::ErrnoToStatus(ec.value(), absl::StrCat("cannot create folder '", parent, "'"));
  }
  struct stat st;
  if (lstat(dest.c_str(), &st) == 0) {
    return absl::AlreadyExistsError(absl::StrCat(
        "destination '", dest, "' already exists; remove it or extract somewhere else"));
  }
  DROVER_ASSIGN_OR_RETURN(std::unique_ptr<TarReader> reader, TarReader::Open(tar_path));

  // Hidden and beside the destination, so that the final rename stays on one file system.
  std::string temp = absl::StrCat(parent, "/.", base.substr(0, 200), ".partial-XXXXXX");
  if (mkdtemp(temp.data()) == nullptr) {
    return absl::ErrnoToStatus(
        errno, absl::StrCat("cannot create a temporary folder beside '", dest, "'"));
  }
  auto remove_temp = [&temp] {
    std::error_code ignored;
    std::filesystem::remove_all(temp, ignored);
  };

  ExtractResult result;
  absl::Status status = [&]() -> absl::Status {
    Fd root(open(temp.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!root.valid()) return absl::ErrnoToStatus(errno, absl::StrCat("cannot open '", temp, "'"));
    Extractor extractor(root.get(), options);
    DROVER_RETURN_IF_ERROR(extractor.Run(*reader));
    DROVER_ASSIGN_OR_RETURN(result.digest, reader->DrainAndDigest());
    if (!options.expected_digest.empty() && result.digest != options.expected_digest) {
      return absl::DataLossError(absl::StrCat("archive '", tar_path, "' has digest ", result.digest,
                                              ", not the expected ", options.expected_digest,
                                              "; fetch it again"));
    }
    DROVER_RETURN_IF_ERROR(extractor.FinishFolders());
    if (fchmod(root.get(), 0755) != 0) {
      return absl::ErrnoToStatus(errno, absl::StrCat("cannot set the mode of '", temp, "'"));
    }
    if (options.sync_to_disk && fsync(root.get()) != 0) {
      return absl::ErrnoToStatus(errno, absl::StrCat("cannot sync '", temp, "'"));
    }
    result.entry_count = extractor.entry_count();
    result.total_bytes = extractor.total_bytes();
    return absl::OkStatus();
  }();
  if (!status.ok()) {
    remove_temp();
    return status;
  }

  if (renameat2(AT_FDCWD, temp.c_str(), AT_FDCWD, dest.c_str(), RENAME_NOREPLACE) != 0) {
    int err = errno;
    if (err == EINVAL || err == ENOSYS) {
      // A file system without RENAME_NOREPLACE: check, then rename (a narrow race).
      if (lstat(dest.c_str(), &st) == 0) {
        err = EEXIST;
      } else {
        err = rename(temp.c_str(), dest.c_str()) == 0 ? 0 : errno;
      }
    }
    if (err != 0) {
      remove_temp();
      if (err == EEXIST || err == ENOTEMPTY) {
        return absl::AlreadyExistsError(absl::StrCat(
            "destination '", dest, "' appeared while extracting; remove it or use it"));
      }
      return absl::ErrnoToStatus(err,
                                 absl::StrCat("cannot move the extracted folder to '", dest, "'"));
    }
  }
  if (options.sync_to_disk) DROVER_RETURN_IF_ERROR(SyncPath(parent));
  return result;
}

}  // namespace drover::archive
