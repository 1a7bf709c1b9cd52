// `drover image import|list|delete`: OCI images imported into droverd (the archive in its
// blob store, the name in AdminService's image registry; see docs/images.md). The command
// is one row of the table in commands.cc; the checks and the table it prints are here as
// pure functions for tests. Main thread only.
#ifndef DROVER_CLI_IMAGE_COMMANDS_H_
#define DROVER_CLI_IMAGE_COMMANDS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "drover/v1/image.pb.h"

namespace drover::cli {

class Invocation;

// `drover image ACTION ...`.
int ImageCommand(Invocation& inv, const std::vector<std::string>& args);

// What CheckOciArchive learnt while reading the file once.
struct OciArchive {
  std::string digest;  // "sha256:..." of the whole file, the blob it becomes
  int64_t size = 0;    // bytes
};

// Reads the file at `path` once: it must be an uncompressed tar holding an OCI image layout
// (`oci-layout` and `index.json` at its root), as `skopeo copy ... oci-archive:FILE` makes.
// INVALID_ARGUMENT naming `path` and how to make one otherwise; NOT_FOUND or
// PERMISSION_DENIED from the file system.
absl::StatusOr<OciArchive> CheckOciArchive(const std::string& path);

// The rules droverd applies to an image name (scheduler::CheckImageName), checked before
// anything is uploaded. INVALID_ARGUMENT starting with "NAME: " otherwise.
absl::Status CheckImageName(absl::string_view name);

// The `drover image list` table: NAME, DIGEST (sha256: and 12 hex digits), SIZE and
// IMPORTED (age); rows in the order given.
std::string FormatImageTable(const std::vector<v1::Image>& images, absl::Time now);

}  // namespace drover::cli

#endif  // DROVER_CLI_IMAGE_COMMANDS_H_
