#include "common/archive/snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/archive/archive_paths.h"
#include "common/archive/ignore_rules.h"
#include "common/archive/tar_writer.h"
#include "common/status_macros.h"

namespace drover::archive {
namespace {

constexpr char kDroverIgnore[] = ".droverignore";
constexpr char kGitIgnore[] = ".gitignore";
constexpr size_t kMaxIgnoreFileBytes = 4 << 20;

struct WalkEntry {
  enum Kind { kFile, kFolder, kSymlink };
  std::string path;
  Kind kind = kFile;
  uint64_t size = 0;
  bool executable = false;
  std::string target;  // symbolic links
};

// Closes a descriptor on scope exit.
struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) close(fd);
  }
};

std::string Join(const std::string& prefix, absl::string_view name) {
  return prefix.empty() ? std::string(name) : absl::StrCat(prefix, "/", name);
}

std::string SpecialKind(mode_t mode) {
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISFIFO(mode)) return "a fifo";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "not a file, folder or link";
}

class Walker {
 public:
  Walker(const SnapshotOptions& options, const struct stat& output, Snapshot* snapshot)
      : options_(options), output_(output), snapshot_(snapshot) {}

  absl::Status WalkRoot(int root_fd) {
    if (options_.use_ignore_files) {
      struct stat st;
      ignore_name_ = fstatat(root_fd, kDroverIgnore, &st, AT_SYMLINK_NOFOLLOW) == 0 ? kDroverIgnore
                                                                                    : kGitIgnore;
    }
    return Walk(root_fd, "");
  }

  std::vector<WalkEntry>& entries() { return entries_; }
  const std::string& ignore_name() const { return ignore_name_; }

 private:
  absl::Status ReadIgnoreFile(int dir_fd, const std::string& prefix) {
    int fd = openat(dir_fd, ignore_name_.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
      // Missing, or a symbolic link (which git does not follow either).
      if (errno == ENOENT || errno == ELOOP) return absl::OkStatus();
      return absl::ErrnoToStatus(errno,
                                 absl::StrCat("cannot read '", Join(prefix, ignore_name_), "'"));
    }
    FdCloser closer{fd};
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      snapshot_->warnings.push_back(absl::StrCat(
          "'", Join(prefix, ignore_name_), "' is not a regular file; its rules are not applied"));
      return absl::OkStatus();
    }
    std::string contents;
    char buffer[65536];
    while (true) {
      ssize_t n = read(fd, buffer, sizeof(buffer));
      if (n < 0) {
        if (errno == EINTR) continue;
        return absl::ErrnoToStatus(errno,
                                   absl::StrCat("cannot read '", Join(prefix, ignore_name_), "'"));
      }
      if (n == 0) break;
      contents.append(buffer, static_cast<size_t>(n));
      if (contents.size() > kMaxIgnoreFileBytes) {
        return absl::InvalidArgumentError(
            absl::StrCat("'", Join(prefix, ignore_name_), "' is larger than ",
                         FormatBytes(kMaxIgnoreFileBytes), "; is it really an ignore file?"));
      }
    }
    rules_.AddFile(prefix, contents);
    snapshot_->ignore_files.push_back(Join(prefix, ignore_name_));
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<std::string>> ListFolder(int dir_fd, const std::string& prefix) {
    int dup_fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0) return absl::ErrnoToStatus(errno, "cannot duplicate a descriptor");
    DIR* dir = fdopendir(dup_fd);
    if (dir == nullptr) {
      int err = errno;
      close(dup_fd);
      return absl::ErrnoToStatus(err, absl::StrCat("cannot list folder '", prefix, "'"));
    }
    std::vector<std::string> names;
    while (true) {
      errno = 0;
      struct dirent* ent = readdir(dir);
      if (ent == nullptr) break;
      absl::string_view name(ent->d_name);
      if (name == "." || name == "..") continue;
      names.emplace_back(name);
    }
    int err = errno;
    closedir(dir);
    if (err != 0) {
      return absl::ErrnoToStatus(err, absl::StrCat("cannot list folder '", prefix, "'"));
    }
    std::sort(names.begin(), names.end());
    return names;
  }

  absl::Status Walk(int dir_fd, const std::string& prefix) {
    if (options_.use_ignore_files) DROVER_RETURN_IF_ERROR(ReadIgnoreFile(dir_fd, prefix));
    DROVER_ASSIGN_OR_RETURN(std::vector<std::string> names, ListFolder(dir_fd, prefix));
    for (const std::string& name : names) {
      std::string path = Join(prefix, name);
      struct stat st;
      if (fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) continue;  // removed since the listing
        return absl::ErrnoToStatus(errno, absl::StrCat("cannot inspect '", path, "'"));
      }
      bool is_dir = S_ISDIR(st.st_mode);
      if (options_.use_ignore_files && (name == ".git" || rules_.Excludes(path, is_dir))) {
        ++snapshot_->ignored_count;
        continue;
      }
      if (st.st_dev == output_.st_dev && st.st_ino == output_.st_ino) continue;  // our archive
      if (S_ISREG(st.st_mode)) {
        WalkEntry entry;
        entry.path = std::move(path);
        entry.size = static_cast<uint64_t>(st.st_size);
        entry.executable = (st.st_mode & S_IXUSR) != 0;
        entries_.push_back(std::move(entry));
      } else if (is_dir) {
        int child = openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (child < 0) {
          if (errno == EACCES) {
            return absl::PermissionDeniedError(absl::StrCat(
                "cannot read folder '", path, "': permission denied; make it readable or add '",
                path, "/' to ", IgnoreAdvice()));
          }
          return absl::ErrnoToStatus(errno, absl::StrCat("cannot open folder '", path, "'"));
        }
        FdCloser closer{child};
        WalkEntry entry;
        entry.path = path;
        entry.kind = WalkEntry::kFolder;
        entries_.push_back(std::move(entry));
        DROVER_RETURN_IF_ERROR(Walk(child, path));
      } else if (S_ISLNK(st.st_mode)) {
        std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
        ssize_t n = readlinkat(dir_fd, name.c_str(), target.data(), target.size());
        if (n < 0 || static_cast<size_t>(n) >= target.size()) {
          return absl::AbortedError(
              absl::StrCat("cannot read symbolic link '", path, "' (did it change?); retry"));
        }
        target.resize(static_cast<size_t>(n));
        if (!SymlinkStaysInside(path, target)) {
          std::string link = absl::StrCat("symbolic link '", path, "' -> '", target, "'");
          if (options_.fail_on_outside_symlinks) {
            return absl::InvalidArgumentError(
                absl::StrCat(link,
                             " may point outside the folder; replace it by what it points to or "
                             "add it to ",
                             IgnoreAdvice()));
          }
          snapshot_->warnings.push_back(
              absl::StrCat("skipped ", link,
                           ": it may point outside the folder (only relative links "
                           "that stay inside are archived)"));
          continue;
        }
        WalkEntry entry;
        entry.path = std::move(path);
        entry.kind = WalkEntry::kSymlink;
        entry.target = std::move(target);
        entries_.push_back(std::move(entry));
      } else {
        snapshot_->warnings.push_back(
            absl::StrCat("skipped '", path, "': ", SpecialKind(st.st_mode), " cannot be archived"));
      }
    }
    return absl::OkStatus();
  }

  std::string IgnoreAdvice() const {
    return options_.use_ignore_files ? kDroverIgnore : "the folder's ignore rules";
  }

  const SnapshotOptions& options_;
  struct stat output_;
  Snapshot* snapshot_;
  std::string ignore_name_;
  IgnoreRules rules_;
  std::vector<WalkEntry> entries_;
};

// Opens the folders of archived files without following symbolic links at any level, so
// that a folder swapped for a link between the walk and the copy (for example by a job in
// its `outputs/` while the agent, as root, archives them) cannot redirect a read outside
// the tree. Remembers the last folder: entries come sorted, so neighbours share it.
class FolderOpener {
 public:
  explicit FolderOpener(int root_fd) : root_fd_(root_fd) {}
  ~FolderOpener() {
    if (cached_fd_ >= 0) close(cached_fd_);
  }

  // The descriptor of folder `path` ("" is the root), owned by the opener and valid until
  // the next call; -1 with errno set on failure.
  int Open(const std::string& path) {
    if (path.empty()) return root_fd_;
    if (cached_fd_ >= 0 && path == cached_path_) return cached_fd_;
    int current = -1;
    size_t start = 0;
    while (start <= path.size()) {
      size_t slash = path.find('/', start);
      if (slash == std::string::npos) slash = path.size();
      std::string component = path.substr(start, slash - start);
      int next = openat(current >= 0 ? current : root_fd_, component.c_str(),
                        O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      int err = errno;
      if (current >= 0) close(current);
      if (next < 0) {
        errno = err;
        return -1;
      }
      current = next;
      start = slash + 1;
    }
    if (cached_fd_ >= 0) close(cached_fd_);
    cached_fd_ = current;
    cached_path_ = path;
    return current;
  }

 private:
  int root_fd_;
  int cached_fd_ = -1;
  std::string cached_path_;
};

std::vector<SizeEntry> TopBySize(std::vector<SizeEntry> all, size_t count) {
  auto bigger = [](const SizeEntry& a, const SizeEntry& b) {
    return a.bytes != b.bytes ? a.bytes > b.bytes : a.path < b.path;
  };
  count = std::min(count, all.size());
  std::partial_sort(all.begin(), all.begin() + static_cast<ptrdiff_t>(count), all.end(), bigger);
  all.resize(count);
  return all;
}

std::string ListSizes(const std::vector<SizeEntry>& entries, size_t count, bool folders) {
  std::vector<std::string> parts;
  for (size_t i = 0; i < entries.size() && i < count; ++i) {
    parts.push_back(absl::StrCat(entries[i].path, folders ? "/" : "", " (",
                                 FormatBytes(entries[i].bytes), ")"));
  }
  return absl::StrJoin(parts, ", ");
}

std::string LargestSummary(const Snapshot& snapshot) {
  std::string summary;
  if (!snapshot.largest_files.empty()) {
    absl::StrAppend(&summary, "largest files: ", ListSizes(snapshot.largest_files, 3, false));
  }
  if (!snapshot.largest_folders.empty()) {
    absl::StrAppend(&summary, summary.empty() ? "" : "; ",
                    "largest folders: ", ListSizes(snapshot.largest_folders, 3, true));
  }
  return summary;
}

absl::StatusOr<Snapshot> Build(const std::string& source_dir, const SnapshotOptions& options,
                               const std::string& output_path, const struct stat& output) {
  int root_fd = options.source_fd >= 0 ? fcntl(options.source_fd, F_DUPFD_CLOEXEC, 0)
                                       : open(source_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) {
    if (errno == ENOTDIR) {
      return absl::InvalidArgumentError(
          absl::StrCat("source '", source_dir, "' is not a folder; give the project folder"));
    }
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot open source folder '", source_dir, "'"));
  }
  FdCloser closer{root_fd};

  Snapshot snapshot;
  snapshot.tar_path = output_path;
  Walker walker(options, output, &snapshot);
  DROVER_RETURN_IF_ERROR(walker.WalkRoot(root_fd));
  std::vector<WalkEntry>& entries = walker.entries();
  std::sort(entries.begin(), entries.end(),
            [](const WalkEntry& a, const WalkEntry& b) { return a.path < b.path; });

  // Sizes: totals, largest files, and folders by what is archived below them.
  std::vector<SizeEntry> files;
  absl::flat_hash_map<std::string, uint64_t> folder_bytes;
  for (const WalkEntry& entry : entries) {
    if (entry.kind != WalkEntry::kFile) continue;
    ++snapshot.file_count;
    snapshot.content_bytes += entry.size;
    if (entry.size == 0) continue;
    files.push_back({entry.path, entry.size});
    for (size_t slash = entry.path.find('/'); slash != std::string::npos;
         slash = entry.path.find('/', slash + 1)) {
      folder_bytes[entry.path.substr(0, slash)] += entry.size;
    }
  }
  snapshot.entry_count = entries.size();
  snapshot.largest_files = TopBySize(files, options.largest_count);
  std::vector<SizeEntry> folders;
  folders.reserve(folder_bytes.size());
  for (auto& [path, bytes] : folder_bytes) folders.push_back({path, bytes});
  snapshot.largest_folders = TopBySize(std::move(folders), options.largest_count);

  std::string advice = options.use_ignore_files
                           ? absl::StrCat("; add what the job does not need to ", kDroverIgnore)
                           : "";
  if (options.max_entries != 0 && snapshot.entry_count > options.max_entries) {
    return absl::ResourceExhaustedError(absl::StrCat("'", source_dir, "' holds ",
                                                     snapshot.entry_count,
                                                     " files, folders and links, above "
                                                     "the limit of ",
                                                     options.max_entries, advice));
  }
  if (options.max_file_bytes != 0 && !snapshot.largest_files.empty() &&
      snapshot.largest_files[0].bytes > options.max_file_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "'", snapshot.largest_files[0].path, "' is ", FormatBytes(snapshot.largest_files[0].bytes),
        ", above the limit of ", FormatBytes(options.max_file_bytes), " per file", advice));
  }
  if (options.max_total_bytes != 0 && snapshot.content_bytes > options.max_total_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("'", source_dir, "' holds ", FormatBytes(snapshot.content_bytes),
                     " of files, above the limit of ", FormatBytes(options.max_total_bytes), "; ",
                     LargestSummary(snapshot), advice));
  }
  if (options.warn_bytes != 0 && snapshot.content_bytes > options.warn_bytes) {
    snapshot.warnings.push_back(absl::StrCat("snapshot holds ", FormatBytes(snapshot.content_bytes),
                                             " of files, above ", FormatBytes(options.warn_bytes),
                                             "; ", LargestSummary(snapshot), advice));
  }

  DROVER_ASSIGN_OR_RETURN(std::unique_ptr<TarWriter> writer, TarWriter::Create(output_path));
  FolderOpener folders_opener(root_fd);
  for (const WalkEntry& entry : entries) {
    switch (entry.kind) {
      case WalkEntry::kFolder:
        DROVER_RETURN_IF_ERROR(writer->AddDirectory(entry.path, 0755));
        break;
      case WalkEntry::kSymlink:
        DROVER_RETURN_IF_ERROR(writer->AddSymlink(entry.path, entry.target));
        break;
      case WalkEntry::kFile: {
        auto changed = [&] {
          return absl::AbortedError(
              absl::StrCat("'", entry.path, "' changed while the snapshot was built; retry"));
        };
        size_t slash = entry.path.rfind('/');
        int parent_fd = folders_opener.Open(
            slash == std::string::npos ? std::string() : entry.path.substr(0, slash));
        if (parent_fd < 0) {
          if (errno == ENOENT || errno == ELOOP || errno == ENOTDIR) return changed();
          return absl::ErrnoToStatus(errno,
                                     absl::StrCat("cannot open the folder of '", entry.path, "'"));
        }
        std::string leaf = slash == std::string::npos ? entry.path : entry.path.substr(slash + 1);
        // O_NONBLOCK: a fifo swapped in since the walk must not hang the open.
        int fd = openat(parent_fd, leaf.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) {
          if (errno == ENOENT || errno == ELOOP) return changed();
          if (errno == EACCES) {
            return absl::PermissionDeniedError(absl::StrCat(
                "cannot read '", entry.path, "': permission denied; make it readable",
                options.use_ignore_files ? absl::StrCat(" or add it to ", kDroverIgnore) : ""));
          }
          return absl::ErrnoToStatus(errno, absl::StrCat("cannot open '", entry.path, "'"));
        }
        FdCloser file_closer{fd};
        struct stat before;
        if (fstat(fd, &before) != 0 || !S_ISREG(before.st_mode) ||
            static_cast<uint64_t>(before.st_size) != entry.size) {
          return changed();
        }
        DROVER_RETURN_IF_ERROR(
            writer->AddFile(entry.path, entry.executable ? 0755 : 0644, entry.size, fd));
        struct stat after;
        if (fstat(fd, &after) != 0 || after.st_size != before.st_size ||
            after.st_mtim.tv_sec != before.st_mtim.tv_sec ||
            after.st_mtim.tv_nsec != before.st_mtim.tv_nsec) {
          return changed();
        }
        break;
      }
    }
  }
  DROVER_ASSIGN_OR_RETURN(snapshot.digest, writer->Finish());
  snapshot.tar_bytes = writer->bytes_written();
  return snapshot;
}

}  // namespace

absl::StatusOr<Snapshot> BuildSnapshot(const std::string& source_dir,
                                       const SnapshotOptions& options) {
  // Create the output first: the walk must know it, in case it lies inside the folder.
  std::string output_path = options.output_path;
  int fd;
  if (output_path.empty()) {
    std::string dir = options.temp_dir;
    if (dir.empty()) {
      const char* tmpdir = getenv("TMPDIR");
      dir = tmpdir != nullptr && *tmpdir != '\0' ? tmpdir : "/tmp";
    }
    output_path = absl::StrCat(dir, "/drover-snapshot-XXXXXX.tar");
    fd = mkostemps(output_path.data(), 4, O_CLOEXEC);
  } else {
    fd = open(output_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  }
  if (fd < 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot create archive '", output_path, "'"));
  }
  struct stat output;
  int rc = fstat(fd, &output);
  int err = errno;
  close(fd);
  if (rc != 0) {
    unlink(output_path.c_str());
    return absl::ErrnoToStatus(err, absl::StrCat("cannot inspect '", output_path, "'"));
  }
  absl::StatusOr<Snapshot> snapshot = Build(source_dir, options, output_path, output);
  if (!snapshot.ok()) unlink(output_path.c_str());
  return snapshot;
}

std::string FormatBytes(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  double value = static_cast<double>(bytes);
  size_t unit = 0;
  while (value >= 1024 && unit + 1 < sizeof(kUnits) / sizeof(kUnits[0])) {
    value /= 1024;
    ++unit;
  }
  std::string number = absl::StrFormat("%.1f", value);
  if (absl::EndsWith(number, ".0")) number.resize(number.size() - 2);
  return absl::StrCat(number, " ", kUnits[unit]);
}

std::string DescribeSnapshot(const Snapshot& snapshot) {
  std::string out = absl::StrCat("snapshot ", snapshot.digest, ": ", snapshot.file_count,
                                 " files, ", FormatBytes(snapshot.content_bytes), " (archive ",
                                 FormatBytes(snapshot.tar_bytes), ")");
  if (snapshot.ignored_count > 0) {
    absl::StrAppend(&out, ", ", snapshot.ignored_count,
                    snapshot.ignored_count == 1 ? " path" : " paths", " ignored");
    if (!snapshot.ignore_files.empty()) {
      absl::StrAppend(&out, " (rules from ", absl::StrJoin(snapshot.ignore_files, ", "), ")");
    }
  }
  out.push_back('\n');
  auto list = [&out](absl::string_view title, const std::vector<SizeEntry>& entries,
                     absl::string_view suffix) {
    if (entries.empty()) return;
    absl::StrAppend(&out, title, ":\n");
    for (const SizeEntry& entry : entries) {
      absl::StrAppend(
          &out, absl::StrFormat("  %10s  %s%s\n", FormatBytes(entry.bytes), entry.path, suffix));
    }
  };
  list("largest files", snapshot.largest_files, "");
  list("largest folders", snapshot.largest_folders, "/");
  for (const std::string& warning : snapshot.warnings) {
    absl::StrAppend(&out, "warning: ", warning, "\n");
  }
  return out;
}

}  // namespace drover::archive
