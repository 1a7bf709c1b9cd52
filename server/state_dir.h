// droverd's state folder at rest (docs/operations.md, "The state folder"): drover.db with
// its -wal and -shm, blobs and logs hold datastore credentials, exec tokens and every job's
// output, so only droverd's user may read them, however droverd was started. Called once
// from main() before anything is opened in the folder; no state of its own.
#ifndef DROVER_SERVER_STATE_DIR_H_
#define DROVER_SERVER_STATE_DIR_H_

#include <string>

#include "absl/status/status.h"

namespace drover::server {

// Creates `path` (mode 0700) when missing; otherwise checks that it is a folder owned by
// this process's user that neither group nor others may write (anyone else could have
// changed what droverd is about to trust), then makes it 0700 and takes group and other
// permissions off everything inside it (symlinks are neither followed nor changed). New
// files are private only with umask 077, which main() sets first.
// FAILED_PRECONDITION naming the folder, its owner or mode, and the fix; UNAVAILABLE when
// it cannot be created or changed.
absl::Status SecureStateDir(const std::string& path);

}  // namespace drover::server

#endif  // DROVER_SERVER_STATE_DIR_H_
