// Safe extraction of tar archives that may be hostile: a snapshot fetched by the agent, a
// job's outputs downloaded by the CLI. `ExtractTar` never creates, changes or follows
// anything outside the destination, whatever the archive holds, and leaves either the
// whole result or nothing.
//
// How: entries go into a fresh hidden folder beside the destination
// (".NAME.partial-XXXXXX"), created relative to directory descriptors opened one component
// at a time with O_NOFOLLOW, so no entry is ever written through a symbolic link; files are
// created with O_EXCL. On success that folder is renamed to the destination (which must
// not exist); on any error it is removed.
//
// Refused, with an INVALID_ARGUMENT error that names the entry: absolute names, ".."
// components, names with NUL bytes, names longer than PATH_MAX (or a component longer than
// NAME_MAX); symbolic links whose target is absolute or may leave the tree (see
// `SymlinkStaysInside`); hard links to anything but a regular file extracted earlier from
// the same archive; entries below a symbolic link or a file extracted earlier; the same
// name twice (except a folder repeated); character and block devices, fifos, GNU sparse
// files and unknown entry types. RESOURCE_EXHAUSTED when the archive exceeds a limit.
//
// Permissions: the permission bits of each entry (mode & 0777) are kept; setuid, setgid and
// sticky bits are dropped silently (they are never needed by a job's code or outputs, and
// refusing would reject archives that GNU tar made as root). Owners are not restored:
// everything belongs to the extracting user. Modification times are not restored either
// (Drover's own archives carry 0): files get the time of extraction.
//
// Blocking file-system work: call it from a worker thread, not from an event loop. Any
// thread; concurrent extractions into different destinations are independent.
#ifndef DROVER_COMMON_ARCHIVE_SAFE_EXTRACT_H_
#define DROVER_COMMON_ARCHIVE_SAFE_EXTRACT_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace drover::archive {

// Defaults for both the extractor and the snapshot builder, so that every snapshot Drover
// builds extracts with default limits.
inline constexpr uint64_t kDefaultMaxTotalBytes = uint64_t{16} << 30;  // 16 GiB
inline constexpr uint64_t kDefaultMaxFileBytes = uint64_t{8} << 30;    // 8 GiB
inline constexpr uint64_t kDefaultMaxEntries = 1'000'000;

struct ExtractOptions {
  // Sum of the sizes of all regular files.
  uint64_t max_total_bytes = kDefaultMaxTotalBytes;
  // Size of any one regular file.
  uint64_t max_file_bytes = kDefaultMaxFileBytes;
  // Entries of every kind (files, folders, links).
  uint64_t max_entries = kDefaultMaxEntries;
  // When not empty ("sha256:..."), the archive file's digest must equal it; checked while
  // reading, before anything is moved into place.
  std::string expected_digest;
  // fsync every file and folder before the result is moved into place, and the move
  // itself, so that a crash or power loss never leaves a destination with missing data
  // (for caches that trust what they find after a restart). Slower on many small files.
  bool sync_to_disk = false;
};

struct ExtractResult {
  std::string digest;        // of the archive file, "sha256:..."
  uint64_t entry_count = 0;  // entries extracted (the root "./" not counted)
  uint64_t total_bytes = 0;  // bytes of regular-file data written
};

// Extracts the tar archive at `tar_path` into the folder `dest_dir`, which must not exist;
// its parent folders are created when missing. Errors:
//   INVALID_ARGUMENT   a hostile or malformed entry, named in the message ("archive entry
//                      '../x': '..' component leaves the destination"), or a corrupt or
//                      compressed archive, or a malformed `expected_digest`;
//   RESOURCE_EXHAUSTED a limit of `options` exceeded, or the disk is full;
//   DATA_LOSS          the archive is truncated or its digest is not `expected_digest`
//                      (fetch it again);
//   ALREADY_EXISTS     `dest_dir` exists (a cache can treat this as "someone else
//                      extracted it first");
//   NOT_FOUND, PERMISSION_DENIED, INTERNAL from the file system, naming the path.
// Nothing is left at `dest_dir` or beside it after an error.
absl::StatusOr<ExtractResult> ExtractTar(const std::string& tar_path, const std::string& dest_dir,
                                         const ExtractOptions& options = {});

}  // namespace drover::archive

#endif  // DROVER_COMMON_ARCHIVE_SAFE_EXTRACT_H_
