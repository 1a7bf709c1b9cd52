// What administrators register, checked before droverd keeps it (beside the job-spec checks,
// job_spec.h): image names, datastores (their paths under the allowed roots, rclone
// backends and options), and datastore credentials masked for clients. The CLI checks image
// names with the same rules before it uploads. Pure functions, any thread.
#ifndef DROVER_SCHEDULER_ADMIN_CHECKS_H_
#define DROVER_SCHEDULER_ADMIN_CHECKS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/datastore_policy.h"
#include "drover/v1/datastore.pb.h"

namespace drover::scheduler {

// Checks an image name for `drover image import` (AdminService.PutImage): 1-255 characters,
// lowercase path components of [a-z0-9._-] separated by '/', each starting and ending with a
// letter or digit, optionally ":tag" (1-128 of [A-Za-z0-9._-]); never "host", never
// "docker://...". Every such name is also a valid `environment.image`. INVALID_ARGUMENT
// naming `field` otherwise.
absl::Status CheckImageName(absl::string_view field, absl::string_view name);

// Whether `image` (a job's `environment.image`) needs no registered image: "host" or a
// "docker://" reference, which agents pull themselves.
bool IsBuiltInImage(absl::string_view image);

// Checks a datastore for AdminService.PutDatastore: `name` (as a compute target's), `type`,
// for HOSTPATH an absolute clean `path` below one of `roots.allowed` and clear of the system
// folders and `roots.refused` (CheckHostPathUnderRoots) and no rclone options, for RCLONE
// an allowed backend and options (CheckRcloneRemote), option keys of [a-z0-9_] and values
// without line breaks, a relative `path`; every `secret_keys` entry a key of
// `rclone_options`. INVALID_ARGUMENT naming the field ("datastore.path") and the fix
// otherwise.
absl::Status CheckDatastore(const v1::Datastore& datastore, const DatastoreRoots& roots);

// Whether the rclone option `key` of `datastore` holds a credential: listed in
// `secret_keys`, or its name contains "key", "secret", "pass", "token" or "sas" (any case).
bool IsCredentialKey(const v1::Datastore& datastore, absl::string_view key);

// `datastore` with the value of every credential option replaced by "***": what clients
// are shown.
v1::Datastore MaskCredentials(v1::Datastore datastore);

}  // namespace drover::scheduler

#endif  // DROVER_SCHEDULER_ADMIN_CHECKS_H_
