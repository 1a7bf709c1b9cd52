// Code snapshots: a deterministic tar archive of a folder, named by its SHA-256 digest.
//
// `BuildSnapshot` walks the folder, leaves out what the ignore files say (`.droverignore`
// files when the folder's root has one, else `.gitignore` files; in either case the files
// of that name in subfolders apply below them, as in git) and always `.git`, and writes a
// tar archive in which nothing depends on the file system's order, on timestamps, owners or
// umask: entries sorted by path (bytewise), mtime 0, uid/gid 0, no user or group names,
// folders 0755, files 0644 or 0755 (when the owner may execute them), symbolic links as
// links. The same folder contents therefore always give the same bytes and the same digest,
// which is what makes snapshots content-addressed and shared across jobs.
//
// What is not archived, each with a line in `Snapshot::warnings`:
//   - symbolic links that are absolute or may point outside the folder (see
//     `SymlinkStaysInside`): skipped, or an error with `fail_on_outside_symlinks`;
//   - sockets, fifos and device files: skipped.
// Hard-linked files are archived as separate regular files.
//
// The same function archives a job's `outputs/` folder with `use_ignore_files = false`.
// Blocking file-system work: call it from a worker thread, not an event loop. Any thread.
#ifndef DROVER_COMMON_ARCHIVE_SNAPSHOT_H_
#define DROVER_COMMON_ARCHIVE_SNAPSHOT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/archive/safe_extract.h"

namespace drover::archive {

inline constexpr uint64_t kDefaultSnapshotWarnBytes = uint64_t{100} << 20;  // 100 MiB

struct SnapshotOptions {
  // Where to write the archive (created or truncated). Empty: a new file
  // "drover-snapshot-XXXXXX.tar" in `temp_dir`. The caller removes it when done.
  std::string output_path;
  // Folder for the archive when `output_path` is empty. Empty: $TMPDIR, else /tmp.
  std::string temp_dir;
  // Apply ignore files and leave out `.git`. False archives everything (a job's outputs).
  bool use_ignore_files = true;
  // Above this many bytes of file data, `warnings` says so, naming the largest files and
  // folders. 0: never.
  uint64_t warn_bytes = kDefaultSnapshotWarnBytes;
  // Hard caps, checked after the walk and before anything is written:
  // RESOURCE_EXHAUSTED above them. The defaults equal `ExtractTar`'s, so that every
  // snapshot built with them can be extracted with default limits. 0: no cap.
  uint64_t max_total_bytes = kDefaultMaxTotalBytes;
  uint64_t max_file_bytes = kDefaultMaxFileBytes;
  uint64_t max_entries = kDefaultMaxEntries;
  // Symbolic links that may point outside the folder: skipped with a warning (false) or
  // fail the build with INVALID_ARGUMENT naming the link (true).
  bool fail_on_outside_symlinks = false;
  // How many of the largest files and folders to report.
  size_t largest_count = 10;
  // An open folder (O_RDONLY | O_DIRECTORY, kept by the caller) to archive in place of the
  // path: one the caller found without following links, such as a job's `outputs/` opened
  // below the job folder, which the job could otherwise swap for a link meanwhile. The path
  // then only names it in messages. -1: open the path.
  int source_fd = -1;
};

struct SizeEntry {
  std::string path;  // relative to the folder, '/'-separated
  uint64_t bytes = 0;
};

struct Snapshot {
  std::string tar_path;
  std::string digest;          // "sha256:<64 hex>" of the archive's bytes
  uint64_t tar_bytes = 0;      // size of the archive
  uint64_t content_bytes = 0;  // sum of the archived files' sizes
  uint64_t entry_count = 0;    // files, folders and links archived
  uint64_t file_count = 0;     // regular files archived
  uint64_t ignored_count = 0;  // paths left out by ignore rules (a folder counts once)
  // Ignore files read, relative paths ("", when none): ".droverignore", "sub/.gitignore".
  std::vector<std::string> ignore_files;
  // Largest files, and folders by the total size of the files archived below them,
  // biggest first (ties by path); at most `largest_count` each.
  std::vector<SizeEntry> largest_files;
  std::vector<SizeEntry> largest_folders;
  // Human-readable lines: skipped links and special files, the size warning.
  std::vector<std::string> warnings;
};

// Builds the snapshot archive of the folder `source_dir`. Errors:
//   NOT_FOUND / INVALID_ARGUMENT  `source_dir` missing or not a folder;
//   PERMISSION_DENIED             a file or folder cannot be read (named; ignore it or fix
//                                 its permissions);
//   RESOURCE_EXHAUSTED            above a cap of `options` (the message names the largest
//                                 files and folders);
//   ABORTED                       a file changed while it was archived (retry);
//   INVALID_ARGUMENT              an outside symlink with `fail_on_outside_symlinks`;
//   others from the file system.
// On error no archive is left at the output path.
absl::StatusOr<Snapshot> BuildSnapshot(const std::string& source_dir,
                                       const SnapshotOptions& options = {});

// "0 B", "512 B", "1.5 KiB", "100 MiB", "2.3 GiB".
std::string FormatBytes(uint64_t bytes);

// A few lines for a person before an upload: digest, counts and sizes, the largest files
// and folders, and the warnings. The CLI prints it as is.
std::string DescribeSnapshot(const Snapshot& snapshot);

}  // namespace drover::archive

#endif  // DROVER_COMMON_ARCHIVE_SNAPSHOT_H_
