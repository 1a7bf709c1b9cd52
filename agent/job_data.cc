#include "agent/job_data.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/log.h"
#include "common/safe_open.h"
#include "common/status_macros.h"

namespace drover::agent {
namespace {

namespace fs = std::filesystem;

// How long an rclone mount may take to answer.
constexpr absl::Duration kMountTimeout = absl::Minutes(2);

// `base` joined with a datastore-relative `path` ("" for the root).
std::string Join(const std::string& base, const std::string& path) {
  return path.empty() ? base : absl::StrCat(base, "/", path);
}

// Data paths are checked at submit too; the agent does not trust what reaches it.
bool SafeRelative(const std::string& path) {
  if (absl::StartsWith(path, "/") || path.find('\0') != std::string::npos) return false;
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part == "..") return false;
  }
  return true;
}

// A datastore name as droverd allows it: 1-63 characters of [a-z0-9_-], the first a letter
// or digit; so never "", ".", ".." or anything with '/'.
bool PathSafeName(absl::string_view name) {
  if (name.empty() || name.size() > 63 || !absl::ascii_isalnum(name[0])) return false;
  for (char c : name) {
    if (!(absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '_' || c == '-')) return false;
  }
  return true;
}

// How many entries a copy left out are logged one by one.
constexpr size_t kMaxSkippedLogged = 20;

// Copies `from` below the folder `from_root` (a file or a folder; "" the whole folder) to `to`
// below the folder `to_root` ("" that folder itself), replacing files of the same name. Either
// side may hold links a job planted (it writes its upload folders, and a datastore it mounts
// read-write): nothing is followed on either side, links and special files in the source are
// left out (logged), and one in the way at the destination fails the copy (common/safe_open.h).
absl::Status Copy(const std::string& from_root, const std::string& from, const std::string& to_root,
                  const std::string& to, const std::string& what) {
  const std::string shown_from = Join(from_root, from), shown_to = Join(to_root, to);
  auto failed = [&](absl::string_view error) {
    return absl::UnavailableError(
        absl::StrCat(what, ": copying ", shown_from, " to ", shown_to, ": ", error));
  };
  UniqueFd from_fd(::open(from_root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!from_fd.valid()) return failed(strerror(errno));
  UniqueFd to_fd(::open(to_root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!to_fd.valid()) return failed(strerror(errno));
  std::vector<std::string> skipped;
  absl::Status copied = CopyBeneath(from_fd.get(), from, to_fd.get(), to, &skipped);
  for (size_t i = 0; i < skipped.size() && i < kMaxSkippedLogged; ++i) {
    Log(LogLevel::kWarning, "copy_entry_skipped",
        {{"what", what}, {"from", from_root}, {"entry", skipped[i]}});
  }
  if (skipped.size() > kMaxSkippedLogged) {
    Log(LogLevel::kWarning, "copy_entries_skipped",
        {{"what", what}, {"from", from_root}, {"count", skipped.size()}});
  }
  if (absl::IsNotFound(copied) && !from.empty()) {
    return absl::UnavailableError(
        absl::StrCat(what, ": ", from, " does not exist in it (", shown_from, ")"));
  }
  if (!copied.ok()) return failed(copied.message());
  return absl::OkStatus();
}

// Whether a reference writes to its datastore.
bool Writes(const v1::DataReference& ref) {
  return ref.mode() == v1::DataReference::UPLOAD ||
         (ref.mode() != v1::DataReference::DOWNLOAD && ref.read_write());
}

}  // namespace

std::string ContainerDatastorePath(const std::string& name) {
  return absl::StrCat("/datastores/", name);
}

std::string AttemptMountDir(const std::string& work_dir, const v1::AttemptRef& attempt) {
  return absl::StrCat(work_dir, "/mounts/", attempt.job_id(), "-", attempt.epoch());
}

std::string DatastoreVariable(const std::string& name) {
  std::string upper = absl::AsciiStrToUpper(name);
  for (char& c : upper) {
    if (c == '-') c = '_';
  }
  return absl::StrCat("DROVER_DATASTORE_", upper);
}

absl::StatusOr<JobData> PrepareJobData(const v1::AssignAttempt& assignment,
                                       const JobDataContext& context) {
  const v1::JobSpec& spec = assignment.spec();
  std::map<std::string, const v1::Datastore*> registered;
  for (const v1::Datastore& d : assignment.datastores()) {
    // Names become paths (/job/data/<name>, mount points, rclone files): checked as droverd
    // checks them, since the agent does not trust what reaches it.
    if (!PathSafeName(d.name())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "datastore name '", absl::CHexEscape(d.name()),
          "' is not 1-63 characters of [a-z0-9_-] starting with a letter or digit"));
    }
    registered[d.name()] = &d;
  }
  // The datastore named by `field` (arguments[i] or outputs[i]), checked as droverd checks
  // it at submit: an agent does not trust what reaches it.
  auto lookup = [&](const std::string& field, const std::string& name, const std::string& path,
                    bool writes) -> absl::StatusOr<const v1::Datastore*> {
    std::string what = absl::StrCat(field, ": datastore '", name, "'");
    auto found = registered.find(name);
    if (found == registered.end()) {
      return absl::FailedPreconditionError(
          absl::StrCat(what, " is no longer registered (see `drover datastore list`)"));
    }
    if (!SafeRelative(path)) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": path '", path, "' must be relative, without '..'"));
    }
    if (writes && !found->second->allow_write()) {
      return absl::FailedPreconditionError(
          absl::StrCat(what, " is read-only; an administrator can allow writes"));
    }
    std::error_code error;
    if (found->second->type() == v1::Datastore::HOSTPATH &&
        !fs::is_directory(found->second->path(), error)) {
      return absl::UnavailableError(absl::StrCat(what, ": its folder ", found->second->path(),
                                                 " does not exist on node ", context.node_name));
    }
    return found->second;
  };

  // Every datastore is checked before anything is mounted or copied.
  std::vector<const v1::Datastore*> referenced(spec.arguments_size(), nullptr);
  std::vector<const v1::Datastore*> outputs;
  std::map<std::string, const v1::Datastore*> used;
  for (int i = 0; i < spec.arguments_size(); ++i) {
    if (!spec.arguments(i).has_data()) continue;
    const v1::DataReference& ref = spec.arguments(i).data();
    DROVER_ASSIGN_OR_RETURN(referenced[i], lookup(absl::StrCat("arguments[", i, "]"),
                                                  ref.datastore(), ref.path(), Writes(ref)));
    used[ref.datastore()] = referenced[i];
  }
  for (int i = 0; i < spec.outputs_size(); ++i) {
    const v1::OutputTarget& target = spec.outputs(i);
    DROVER_ASSIGN_OR_RETURN(const v1::Datastore* store,
                            lookup(absl::StrCat("outputs[", i, "]"), target.datastore(),
                                   target.path(), /*writes=*/true));
    outputs.push_back(store);
    used[target.datastore()] = store;
  }

  JobData data;
  std::vector<v1::Datastore> remotes;
  for (const auto& [name, store] : used) {
    if (store->type() == v1::Datastore::RCLONE) remotes.push_back(*store);
  }
  if (!remotes.empty()) {
    std::error_code error;
    fs::create_directories(context.rclone_dir, error);
    fs::permissions(context.rclone_dir, fs::perms::owner_all, error);
    data.rclone = std::make_unique<JobData::Rclone>();
    data.rclone->tools = context.rclone;
    data.rclone->config = context.rclone_dir + "/rclone.conf";
    data.rclone->mount_dir = context.mount_dir;
    DROVER_RETURN_IF_ERROR(WriteRcloneConfig(context.rclone, remotes, data.rclone->config));
  }

  std::map<std::string, bool> mounted;  // name -> read-write
  for (int i = 0; i < spec.arguments_size(); ++i) {
    const v1::Argument& argument = spec.arguments(i);
    if (!argument.has_data()) {
      data.arguments.push_back(argument.value());
      continue;
    }
    const v1::DataReference& ref = argument.data();
    const v1::Datastore& store = *referenced[i];
    const bool rclone = store.type() == v1::Datastore::RCLONE;
    std::string what = absl::StrCat("arguments[", i, "]: datastore '", ref.datastore(), "'");
    std::string source = rclone ? RcloneRemote(store, ref.path()) : Join(store.path(), ref.path());
    switch (ref.mode()) {
      case v1::DataReference::DOWNLOAD: {
        std::string local = Join(absl::StrCat(context.job_dir, "/data/", store.name()), ref.path());
        if (context.recovering) {
          // Copied before the processes started.
        } else if (rclone) {
          if (absl::Status s = RcloneCopy(context.rclone, data.rclone->config, source, local,
                                          context.stop);
              !s.ok()) {
            return absl::Status(s.code(), absl::StrCat(what, ": ", s.message()));
          }
        } else {
          if (absl::Status s = Copy(store.path(), ref.path(), context.job_dir,
                                    Join(absl::StrCat("data/", store.name()), ref.path()), what);
              !s.ok()) {
            return s;
          }
        }
        data.arguments.push_back(Join(absl::StrCat("/job/data/", store.name()), ref.path()));
        break;
      }
      case v1::DataReference::UPLOAD: {
        const std::string local_path = Join(absl::StrCat("upload/", store.name()), ref.path());
        const std::string local = absl::StrCat(context.job_dir, "/", local_path);
        // Below the job folder, which a job taken over has written to: never through a link.
        UniqueFd job_dir(::open(context.job_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
        absl::Status made = job_dir.valid()
                                ? MakeFoldersBeneath(job_dir.get(), local_path)
                                : absl::UnavailableError(strerror(errno));
        if (!made.ok()) {
          return absl::UnavailableError(absl::StrCat(what, ": creating ", local, ": ", made.message()));
        }
        data.uploads.push_back({.datastore = store.name(),
                                .local = local,
                                .target = source,
                                .rclone = rclone,
                                .local_root = context.job_dir,
                                .local_path = local_path,
                                .target_root = store.path(),
                                .target_path = ref.path()});
        data.arguments.push_back(Join(absl::StrCat("/job/upload/", store.name()), ref.path()));
        break;
      }
      default: {  // MOUNT
        mounted[store.name()] = mounted[store.name()] || Writes(ref);
        data.arguments.push_back(Join(ContainerDatastorePath(store.name()), ref.path()));
        break;
      }
    }
  }
  for (int i = 0; i < spec.outputs_size(); ++i) {
    const v1::Datastore& store = *outputs[i];
    const bool rclone = store.type() == v1::Datastore::RCLONE;
    const std::string& path = spec.outputs(i).path();
    data.uploads.push_back({.datastore = store.name(),
                            .local = context.job_dir + "/outputs",
                            .target = rclone ? RcloneRemote(store, path) : Join(store.path(), path),
                            .rclone = rclone,
                            .local_root = context.job_dir,
                            .local_path = "outputs",
                            .target_root = store.path(),
                            .target_path = path});
  }
  for (const auto& [name, read_write] : mounted) {
    const v1::Datastore& store = *used[name];
    std::string source = store.path();
    if (store.type() == v1::Datastore::RCLONE) {
      RcloneMountSpec mount_spec = {
          .datastore = name,
          .node = context.node_name,
          .config = data.rclone->config,
          .remote = RcloneRemote(store, ""),
          .mountpoint = absl::StrCat(context.mount_dir, "/", name),
          .cache_dir = absl::StrCat(context.rclone_dir, "/cache-", name),
          .log_path = absl::StrCat(context.rclone_dir, "/mount-", name, ".log"),
          .read_write = read_write,
          .record_path = context.record_dir.empty()
                             ? ""
                             : absl::StrCat(context.record_dir, "/rclone-", name)};
      absl::StatusOr<std::unique_ptr<RcloneMount>> mount;
      if (context.recovering) {
        // The job's processes use it: the same mount, served by the same rclone.
        mount = RcloneMount::Adopt(context.rclone, std::move(mount_spec));
      } else {
        if (context.report) context.report(absl::StrCat("MOUNTING datastore=", name));
        if (!mount_spec.record_path.empty()) RcloneMount::RemoveLeftover(context.rclone, mount_spec);
        mount = RcloneMount::Start(context.rclone, std::move(mount_spec), kMountTimeout,
                                   context.stop);
      }
      if (!mount.ok()) {
        // The mounts taken over so far are released as at an end: their written files first.
        if (context.recovering) (void)ReleaseJobData(data);
        return mount.status();
      }
      source = (*mount)->spec().mountpoint;
      data.rclone->mounts.push_back(*std::move(mount));
    }
    data.mounts.push_back(
        {.source = source, .destination = ContainerDatastorePath(name), .read_only = !read_write});
    data.env.push_back(absl::StrCat(DatastoreVariable(name), "=", ContainerDatastorePath(name)));
  }
  return data;
}

absl::Status UploadJobData(const JobData& data) {
  absl::Status result = absl::OkStatus();
  for (const JobData::Upload& upload : data.uploads) {
    const std::string what = absl::StrCat("uploading to datastore '", upload.datastore, "'");
    std::error_code error;
    if (upload.rclone) {
      if (fs::is_empty(upload.local, error) || error) continue;
      absl::Status copied = RcloneCopy(data.rclone->tools, data.rclone->config, upload.local,
                                       upload.target);
      if (!copied.ok() && result.ok()) {
        result = absl::Status(copied.code(), absl::StrCat(what, ": ", copied.message()));
      }
      continue;
    }
    // The folder is the job's: listed below the job folder, nothing followed.
    absl::StatusOr<std::vector<BeneathEntry>> entries =
        ListBeneath(upload.local_root, upload.local_path);
    if (absl::IsNotFound(entries.status()) || (entries.ok() && entries->empty())) continue;
    absl::Status copied =
        entries.ok()
            ? Copy(upload.local_root, upload.local_path, upload.target_root, upload.target_path,
                   what)
            : absl::UnavailableError(
                  absl::StrCat(what, ": reading ", upload.local, ": ", entries.status().message()));
    if (!copied.ok() && result.ok()) result = copied;
  }
  return result;
}

JobData::Rclone::~Rclone() {
  mounts.clear();  // each unmounts, unless left
  if (left) return;
  std::error_code error;
  if (!config.empty()) fs::remove(config, error);
  if (!mount_dir.empty()) fs::remove(mount_dir, error);  // only when empty: never recursively
}

absl::Status ReleaseJobData(JobData& data, absl::Duration upload_wait) {
  if (data.rclone == nullptr) return absl::OkStatus();
  absl::Status result = absl::OkStatus();
  for (std::unique_ptr<RcloneMount>& mount : data.rclone->mounts) {
    absl::Status s = mount->Unmount(upload_wait);
    if (!s.ok() && result.ok()) result = s;
  }
  data.rclone.reset();
  return result;
}

void LeaveJobData(JobData& data) {
  if (data.rclone == nullptr) return;
  for (std::unique_ptr<RcloneMount>& mount : data.rclone->mounts) mount->Leave();
  data.rclone->left = true;
}

}  // namespace drover::agent
