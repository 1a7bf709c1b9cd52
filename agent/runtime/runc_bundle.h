// Internal to agent/runtime: a runc container's bundle folder, made ready by Create() and
// emptied by Delete() (runc_runtime.h). Called on the thread of the Create() or Delete() it
// serves; different bundles may be prepared at the same time.
#ifndef DROVER_AGENT_RUNTIME_RUNC_BUNDLE_H_
#define DROVER_AGENT_RUNTIME_RUNC_BUNDLE_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "agent/runtime/container_runtime.h"
#include "agent/runtime/oci_spec.h"

namespace drover::agent {

// Fills the empty folder `spec.bundle_dir`: the state folder, the root filesystem (the
// host's skeleton, or the image's overlay mounted on `rootfs/`), the folders a user
// namespace's root must own or pass through, and config.json. `oci` brings the runtime's
// settings (init_binary, cgroups_path, nofile_limit, userns, seccomp); the bundle's own
// fields (rootfs, host_os, state_dir, devices, host_dir_binds) are set here.
// INVALID_ARGUMENT for a device that is no device node, an image_rootfs that is not a
// folder, or a path the overlay cannot take; FAILED_PRECONDITION when the container's root
// (under `oci.userns`) could not reach a folder or a device; UNAVAILABLE when the overlay
// cannot be mounted; INTERNAL for other file errors. On failure the caller empties the
// bundle (CleanBundle). With a `skeleton_dir`, a host-OS container's root is a skeleton
// there shared by every container with the same mountpoints (made once, never written, seen
// read-only), not a folder of the bundle's own.
absl::Status PrepareBundle(const ContainerSpec& spec, OciOptions oci,
                           const std::string& skeleton_dir = "");

// Unmounts everything under `bundle_dir` (deepest first) and removes its contents, keeping
// the folder itself. UNAVAILABLE when a mount stays (then nothing is removed: removing
// through a mount could delete an image or a job folder); INTERNAL when a file cannot be
// removed. "" and "/" are left alone.
absl::Status CleanBundle(absl::string_view bundle_dir);

}  // namespace drover::agent

#endif  // DROVER_AGENT_RUNTIME_RUNC_BUNDLE_H_
