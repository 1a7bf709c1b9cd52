// Bundle folders of runc containers (runc_bundle.h): the root filesystem (host skeleton or
// image overlay), the ownership and mountpoints a user namespace's root needs (ChownTree,
// CheckSearchable, MakeMountpoint), config.json, and the clean-up that unmounts and empties
// a bundle.
#include "agent/runtime/runc_bundle.h"

#include <fcntl.h>
#include <ftw.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/json.h"
#include "agent/runtime/mountinfo.h"
#include "common/archive/sha256.h"
#include "agent/runtime/runtime_files.h"
#include "common/status_macros.h"

namespace drover::agent {
namespace {

namespace fs = std::filesystem;

// Gives `root` and everything below it (on the same file system, links not followed) to
// host id `id`. For folders the agent made for a container before it starts: nothing in
// them is the job's yet.
absl::Status ChownTree(const std::string& root, uint32_t id) {
  static thread_local uint32_t owner = 0;
  static thread_local int failed_errno = 0;
  owner = id;
  failed_errno = 0;
  auto visit = [](const char* path, const struct stat*, int, struct FTW*) -> int {
    if (lchown(path, owner, owner) != 0) {
      failed_errno = errno;
      return 1;
    }
    return 0;
  };
  int result = nftw(root.c_str(), visit, 32, FTW_PHYS | FTW_MOUNT);
  if (result != 0) {
    errno = failed_errno != 0 ? failed_errno : errno;
    return absl::InternalError(ErrnoText("cannot give the container's root", root));
  }
  return absl::OkStatus();
}

// A container whose root is the unprivileged host uid `id` reaches its root filesystem, job
// folder and binds through every folder above them: each must let others (or `id`) search
// it. FAILED_PRECONDITION naming the first that does not.
absl::Status CheckSearchable(const std::string& path, uint32_t id) {
  std::string at = path;
  while (!at.empty() && at != "/") {
    at = at.substr(0, at.rfind('/'));
    const std::string dir = at.empty() ? "/" : at;
    struct stat st {};
    if (stat(dir.c_str(), &st) != 0) return absl::InternalError(ErrnoText("cannot stat", dir));
    bool searchable = (st.st_mode & S_IXOTH) != 0 || (st.st_uid == id && (st.st_mode & S_IXUSR));
    if (!searchable) {
      char mode[8];
      snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
      return absl::FailedPreconditionError(absl::StrCat(
          "folder ", dir, " (above ", path, ") is not searchable by others (mode ",
          mode, "): the job container's root, host uid ",
          id, " (--userns-range), must pass through it; chmod o+x ", dir,
          " or move --work-dir"));
    }
  }
  return absl::OkStatus();
}

// Makes `destination` (absolute, in the container) below `rootfs` as a folder, or an empty
// file when `is_dir` is false, with any missing folders above it: runc makes a missing
// mountpoint as the container's root, which in a user namespace may not write the node's
// skeleton or an image's root-owned folders. Never follows a link (an image may hold any):
// where a component is a link or not a folder it stops and leaves the rest to runc, which
// resolves it inside the root. Best effort: errors are runc's to report.
void MakeMountpoint(const std::string& rootfs, absl::string_view destination, bool is_dir) {
  int fd = open(rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  std::vector<std::string> parts = absl::StrSplit(destination, '/', absl::SkipEmpty());
  for (size_t i = 0; i < parts.size(); ++i) {
    const bool last = i + 1 == parts.size();
    if (last && !is_dir) {
      int file = openat(fd, parts[i].c_str(),
                        O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0644);
      if (file >= 0) close(file);
      break;
    }
    if (mkdirat(fd, parts[i].c_str(), 0755) != 0 && errno != EEXIST) break;
    int next = openat(fd, parts[i].c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    close(fd);
    fd = next;
    if (fd < 0) return;
  }
  close(fd);
}

absl::Status MakeDir(const std::string& path, mode_t mode = 0755) {
  if (mkdir(path.c_str(), mode) != 0 && errno != EEXIST) {
    return absl::InternalError(ErrnoText("cannot create", path));
  }
  return absl::OkStatus();
}

// The mountpoints a container's root needs made in its root filesystem (MakeMountpoint):
// the fixed ones and every bind's destination, each with whether it is a folder.
std::vector<std::pair<std::string, bool>> HostSkeletonMountpoints(const ContainerSpec& spec) {
  std::vector<std::pair<std::string, bool>> points;
  for (const char* dir : {"/proc", "/dev", "/sys", "/job", kContainerDroverDir}) {
    points.emplace_back(dir, true);
  }
  for (const BindMount& mount : spec.mounts) {
    struct stat st {};
    bool is_dir = stat(mount.source.c_str(), &st) != 0 || S_ISDIR(st.st_mode);
    points.emplace_back(mount.destination, is_dir);
  }
  return points;
}

// The host's root entries a host-OS container gets: each link (`bin -> usr/bin`) as a link
// of the same target, each real folder as an empty one bound from the host (`binds`).
struct HostRootEntry {
  std::string name;
  std::string link_target;  // empty: a folder
};
std::vector<HostRootEntry> HostRootEntries() {
  std::vector<HostRootEntry> entries;
  for (const char* name : {"bin", "sbin", "lib", "lib32", "lib64", "libx32"}) {
    std::string host = absl::StrCat("/", name);
    struct stat st;
    if (lstat(host.c_str(), &st) != 0) continue;
    if (S_ISLNK(st.st_mode)) {
      char target[4096];
      ssize_t n = readlink(host.c_str(), target, sizeof target - 1);
      if (n <= 0) continue;
      entries.push_back({name, std::string(target, static_cast<size_t>(n))});
    } else if (S_ISDIR(st.st_mode)) {
      entries.push_back({name, ""});
    }
  }
  return entries;
}

// An empty skeleton in the existing folder `rootfs`: mountpoints, and the host's root
// links; the host's real root folders it must bind are added to `binds`.
absl::Status MakeHostSkeleton(const std::string& rootfs, std::vector<std::string>* binds) {
  for (const char* dir : {"usr", "etc", "tmp", "run", "var", "root", "proc", "dev", "sys", "job"}) {
    DROVER_RETURN_IF_ERROR(MakeDir(absl::StrCat(rootfs, "/", dir)));
  }
  for (const HostRootEntry& entry : HostRootEntries()) {
    std::string inside = absl::StrCat(rootfs, "/", entry.name);
    if (entry.link_target.empty()) {
      DROVER_RETURN_IF_ERROR(MakeDir(inside));
      binds->push_back("/" + entry.name);
    } else if (symlink(entry.link_target.c_str(), inside.c_str()) != 0) {
      return absl::InternalError(ErrnoText("cannot create link", inside));
    }
  }
  return absl::OkStatus();
}

// The skeleton of every host-OS container whose mountpoints are `points`, shared by them
// all: `<skeleton_dir>/<sha256 of the points and the host's root entries>`, made once
// (in a folder of its own, then renamed into place: a reader never sees half of one, and
// two attempts making the same one at once both succeed) and never written again. The
// container sees it read-only; all its mountpoints exist, so the runtime makes none in it.
// Saves making and removing some twenty files and folders per container (issue 18).
absl::StatusOr<std::string> SharedHostSkeleton(const std::string& skeleton_dir,
                                               const std::vector<std::pair<std::string, bool>>& points,
                                               std::vector<std::string>* binds) {
  std::string identity;
  for (const HostRootEntry& entry : HostRootEntries()) {
    absl::StrAppend(&identity, "root ", entry.name, " ", entry.link_target, "\n");
    if (entry.link_target.empty()) binds->push_back("/" + entry.name);
  }
  for (const auto& [destination, is_dir] : points) {
    absl::StrAppend(&identity, is_dir ? "dir " : "file ", destination, "\n");
  }
  const std::string key = archive::Sha256Digest(identity).substr(7, 32);
  const std::string final_dir = absl::StrCat(skeleton_dir, "/", key);
  struct stat st {};
  if (stat(final_dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return final_dir;

  DROVER_RETURN_IF_ERROR(MakeDir(skeleton_dir, 0711));
  static std::atomic<uint64_t> sequence{0};
  const std::string partial = absl::StrCat(skeleton_dir, "/.partial-", key, "-", getpid(), "-",
                                           sequence.fetch_add(1));
  std::error_code error;
  fs::remove_all(partial, error);
  absl::Status made = MakeDir(partial);
  std::vector<std::string> unused;
  if (made.ok()) made = MakeHostSkeleton(partial, &unused);
  if (made.ok()) {
    for (const auto& [destination, is_dir] : points) MakeMountpoint(partial, destination, is_dir);
    if (rename(partial.c_str(), final_dir.c_str()) != 0 && errno != ENOTEMPTY && errno != EEXIST) {
      made = absl::InternalError(ErrnoText("cannot rename into place", final_dir));
    }
  }
  fs::remove_all(partial, error);  // gone after a rename; another attempt's won otherwise
  DROVER_RETURN_IF_ERROR(made);
  return final_dir;
}

}  // namespace

absl::Status PrepareBundle(const ContainerSpec& spec, OciOptions oci,
                           const std::string& skeleton_dir) {
  const std::string& bundle = spec.bundle_dir;
  oci.rootfs = "rootfs";
  oci.host_os = spec.image_rootfs.empty();
  oci.state_dir = bundle + "/state";
  for (const DeviceNode& node : spec.devices) {
    const std::string& path = node.source.empty() ? node.path : node.source;
    struct stat st;
    if (stat(path.c_str(), &st) != 0 || !(S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))) {
      return absl::InvalidArgumentError(
          absl::StrCat("container '", spec.id, "': device '", path, "' is not a device node"));
    }
    if (oci.userns.size > 0 && (st.st_mode & (S_IROTH | S_IWOTH)) != (S_IROTH | S_IWOTH)) {
      // Bound, not made (no mknod in a user namespace): the container's root is an
      // unprivileged host uid and opens the node's own file as one of "others".
      char mode[8];
      snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
      return absl::FailedPreconditionError(absl::StrCat(
          "container '", spec.id, "': device '", path, "' (mode ", mode,
          ") cannot be opened by the job's root, an unprivileged host uid under --userns-range; "
          "make it readable and writable by others (chmod 0666, NVIDIA's default) or run the "
          "agent with --userns-range=none"));
    }
    OciDevice device;
    device.path = node.path;
    device.source = path;
    device.type = S_ISCHR(st.st_mode) ? 'c' : 'b';
    device.major = major(st.st_rdev);
    device.minor = minor(st.st_rdev);
    device.file_mode = st.st_mode & 07777;
    oci.devices.push_back(device);
  }

  DROVER_RETURN_IF_ERROR(MakeDir(oci.state_dir));
  if (oci.userns.size > 0) {
    DROVER_RETURN_IF_ERROR(CheckSearchable(spec.job_dir + "/", oci.userns.host_id));
    // What the container's root writes: drover-init's exit file, the job folder, and the
    // folders the agent made for it.
    DROVER_RETURN_IF_ERROR(ChownTree(oci.state_dir, oci.userns.host_id));
    DROVER_RETURN_IF_ERROR(ChownTree(spec.job_dir, oci.userns.host_id));
    for (const BindMount& mount : spec.mounts) {
      if (mount.owned_by_container) DROVER_RETURN_IF_ERROR(ChownTree(mount.source, oci.userns.host_id));
    }
  }
  std::string rootfs = bundle + "/rootfs";
  const bool shared_skeleton = oci.host_os && !skeleton_dir.empty();
  if (shared_skeleton) {
    // Shared and never written: the container sees it read-only (OciOptions::host_os).
    DROVER_ASSIGN_OR_RETURN(rootfs, SharedHostSkeleton(skeleton_dir, HostSkeletonMountpoints(spec),
                                                       &oci.host_dir_binds));
    oci.rootfs = rootfs;
  } else {
    DROVER_RETURN_IF_ERROR(MakeDir(rootfs));
  }
  if (oci.userns.size > 0) DROVER_RETURN_IF_ERROR(CheckSearchable(rootfs + "/", oci.userns.host_id));

  if (oci.host_os) {
    if (!shared_skeleton) DROVER_RETURN_IF_ERROR(MakeHostSkeleton(rootfs, &oci.host_dir_binds));
  } else {
    // The image stays read-only and shared; this container's writes land in upper/.
    for (const std::string& path : {spec.image_rootfs, bundle}) {
      if (absl::StrContains(path, ",") || absl::StrContains(path, ":")) {
        return absl::InvalidArgumentError(
            absl::StrCat("container '", spec.id, "': path '", path,
                         "' must not contain ',' or ':' (overlay options)"));
      }
    }
    struct stat st;
    if (stat(spec.image_rootfs.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return absl::InvalidArgumentError(absl::StrCat("container '", spec.id, "': image_rootfs '",
                                                     spec.image_rootfs, "' is not a folder"));
    }
    DROVER_RETURN_IF_ERROR(MakeDir(bundle + "/upper"));
    DROVER_RETURN_IF_ERROR(MakeDir(bundle + "/work"));
    // The merged root takes its owner from upper/: the container's root owns its `/`, as
    // the image (unpacked shifted into the range, ImageCache) has it.
    if (oci.userns.size > 0) DROVER_RETURN_IF_ERROR(ChownTree(bundle + "/upper", oci.userns.host_id));
    std::string data = absl::StrCat("lowerdir=", spec.image_rootfs, ",upperdir=", bundle,
                                    "/upper,workdir=", bundle, "/work");
    if (mount("overlay", rootfs.c_str(), "overlay", 0, data.c_str()) != 0) {
      return absl::UnavailableError(absl::StrCat("container '", spec.id,
                                                 "': cannot mount the image overlay on ", rootfs,
                                                 ": ", strerror(errno)));
    }
  }

  if (oci.userns.size > 0 && !shared_skeleton) {
    for (const auto& [destination, is_dir] : HostSkeletonMountpoints(spec)) {
      MakeMountpoint(rootfs, destination, is_dir);
    }
  }

  DROVER_ASSIGN_OR_RETURN(Json config, BuildOciConfig(spec, oci));
  DROVER_RETURN_IF_ERROR(WriteFile(bundle + "/config.json", DumpJson(config, 2) + "\n"));
  return absl::OkStatus();
}

absl::Status CleanBundle(absl::string_view bundle_dir) {
  if (bundle_dir.empty() || bundle_dir == "/") return absl::OkStatus();
  std::string bundle(bundle_dir);
  // Deepest first. Whatever stays mounted keeps its files: removing through a mount could
  // delete an image or a job folder.
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::vector<std::string> points;
    for (const MountEntry& mount : ReadMountInfo()) {
      if (IsAtOrUnder(mount.mount_point, bundle)) points.push_back(mount.mount_point);
    }
    if (points.empty()) break;
    std::sort(points.begin(), points.end(),
              [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
    for (const std::string& point : points) {
      if (umount2(point.c_str(), UMOUNT_NOFOLLOW) != 0 && errno != EINVAL && errno != ENOENT) {
        umount2(point.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW);
      }
    }
  }
  for (const MountEntry& mount : ReadMountInfo()) {
    if (IsAtOrUnder(mount.mount_point, bundle)) {
      return absl::UnavailableError(
          absl::StrCat("cannot unmount ", mount.mount_point, "; its bundle files are kept"));
    }
  }
  std::error_code error;
  if (!fs::exists(bundle, error)) return absl::OkStatus();
  for (const fs::directory_entry& entry : fs::directory_iterator(bundle, error)) {
    std::error_code remove_error;
    fs::remove_all(entry.path(), remove_error);
    if (remove_error) {
      return absl::InternalError(
          absl::StrCat("cannot remove ", entry.path().string(), ": ", remove_error.message()));
    }
  }
  if (error)
    return absl::InternalError(absl::StrCat("cannot list ", bundle, ": ", error.message()));
  return absl::OkStatus();
}

}  // namespace drover::agent
