// Copies between a HOSTPATH datastore's folder and a job folder that no symlink can redirect
// (docs/datastores.md, "Symlinks"): every path is resolved beneath its root one component at
// a time with O_NOFOLLOW (what openat2's RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS does), only
// folders and regular files are opened, and nothing blocks on a FIFO. A job can plant a
// symlink in a writable datastore or in its own folder; the agent (root) then neither reads
// a host file through it nor writes one. Used on an attempt's thread; no state.
#ifndef DROVER_AGENT_DATASTORE_COPY_H_
#define DROVER_AGENT_DATASTORE_COPY_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace drover::agent {

// What a copy did.
struct CopyStats {
  int64_t files = 0;  // regular files written
  // Entries inside the copied tree that are not folders or regular files (symlinks, FIFOs,
  // sockets, devices): never followed or opened, not copied.
  int64_t skipped = 0;
  std::string first_skipped;  // relative to the source root, for the log
};

// Copies `from` (a path relative to the folder `from_root`; "" for that folder itself) to
// `to` (relative to `to_root`; "" for that folder), creating `to`'s missing parent folders.
// A folder is merged into the folder `to` (created when missing); a regular file is written
// at `to`, replacing a file of that name. The roots are trusted absolute folders (the real
// path of a datastore, a job folder the agent made); below them no symlink is followed: one
// on the way to `from` or `to` is refused, one inside the copied tree is skipped (and one
// where a copied entry goes is replaced, never written through). Files keep their permission
// bits without setuid, setgid and sticky; folders are created 0755.
// NOT_FOUND when `from` does not exist; FAILED_PRECONDITION naming the relative path when a
// component is a symlink or not a folder, or `from` is neither a folder nor a regular file;
// RESOURCE_EXHAUSTED when the disk is full; UNAVAILABLE for other I/O errors, naming the
// path.
absl::StatusOr<CopyStats> CopyBeneath(const std::string& from_root, const std::string& from,
                                      const std::string& to_root, const std::string& to);

// Creates the folder `relative` beneath `root` with its missing parents (0755), following
// no symlink below `root`. FAILED_PRECONDITION naming the component that is a symlink or not
// a folder; UNAVAILABLE (RESOURCE_EXHAUSTED) when one cannot be created.
absl::Status MakeFoldersBeneath(const std::string& root, const std::string& relative);

// Whether the folder `relative` beneath `root` holds nothing; a missing one is empty.
// FAILED_PRECONDITION when a component (`relative` included) is a symlink or not a folder.
absl::StatusOr<bool> FolderBeneathIsEmpty(const std::string& root, const std::string& relative);

}  // namespace drover::agent

#endif  // DROVER_AGENT_DATASTORE_COPY_H_
