#include "agent/job_data.h"

#include <limits.h>
#include <stdlib.h>

#include <filesystem>
#include <map>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/datastore_copy.h"
#include "common/datastore_policy.h"
#include "common/log.h"
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

// `path` with every symlink resolved; `path` itself when it cannot be (it is missing).
std::string RealPath(const std::string& path) {
  char real[PATH_MAX];
  if (realpath(path.c_str(), real) == nullptr) return path;
  return real;
}

// The real folder of the HOSTPATH datastore `store`, checked against `roots` (whose folders
// are resolved too): resolved first, so that a symlink at or above the datastore's path
// cannot lead out of the allowed roots. `what` names the datastore.
absl::StatusOr<std::string> RealHostDatastore(const v1::Datastore& store,
                                              const DatastoreRoots& roots,
                                              const std::string& what, const std::string& node) {
  const std::string field = absl::StrCat(what, ": path");
  if (absl::Status s = CheckCleanAbsolutePath(field, store.path()); !s.ok()) {
    return absl::FailedPreconditionError(s.message());
  }
  char resolved[PATH_MAX];
  std::error_code error;
  if (realpath(store.path().c_str(), resolved) == nullptr || !fs::is_directory(resolved, error)) {
    return absl::UnavailableError(absl::StrCat(what, ": its folder ", store.path(),
                                               " does not exist on node ", node));
  }
  const std::string real = resolved;
  DatastoreRoots real_roots;
  for (const std::string& root : roots.allowed) real_roots.allowed.push_back(RealPath(root));
  for (const std::string& folder : roots.refused) {
    real_roots.refused.push_back(folder);
    real_roots.refused.push_back(RealPath(folder));
  }
  const std::string checked =
      real == store.path() ? absl::StrCat(what, ": its folder")
                           : absl::StrCat(what, ": its folder ", store.path(), " resolves to ", real,
                                          ", and");
  if (absl::Status s = CheckHostPathUnderRoots(checked, real, real_roots); !s.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(s.message(), " (drover-agent --datastore-root on node ", node, ")"));
  }
  return real;
}

// A copy's error with `what` (the argument and datastore) named: NOT_FOUND becomes
// UNAVAILABLE saying `missing` (when given).
absl::Status CopyError(const absl::Status& s, const std::string& what, const std::string& missing) {
  if (absl::IsNotFound(s)) {
    return absl::UnavailableError(
        absl::StrCat(what, ": ", missing.empty() ? s.message() : missing));
  }
  return absl::Status(s.code(), absl::StrCat(what, ": ", s.message()));
}

void LogSkipped(const CopyStats& stats, const std::string& datastore, const std::string& from) {
  if (stats.skipped == 0) return;
  Log(LogLevel::kWarning, "datastore_copy_skipped",
      {{"datastore", datastore}, {"from", from}, {"entries", stats.skipped},
       {"first", stats.first_skipped}});
}

// Whether a reference writes to its datastore.
bool Writes(const v1::DataReference& ref) {
  return ref.mode() == v1::DataReference::UPLOAD ||
         (ref.mode() != v1::DataReference::DOWNLOAD && ref.read_write());
}

bool InputNameIsValid(const std::string& name) {
  if (name.empty() || name.size() > 63 || !absl::ascii_isalpha(static_cast<unsigned char>(name[0]))) {
    return false;
  }
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
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
  // HOSTPATH datastores' real folders, by name: what is bound and copied.
  std::map<std::string, std::string> real_folders;
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
    const v1::Datastore& store = *found->second;
    if (store.type() == v1::Datastore::HOSTPATH) {
      if (!real_folders.contains(name)) {
        DROVER_ASSIGN_OR_RETURN(real_folders[name],
                                RealHostDatastore(store, context.datastore_roots, what,
                                                  context.node_name));
      }
    } else if (store.type() == v1::Datastore::RCLONE) {
      std::map<std::string, std::string> options(store.rclone_options().begin(),
                                                 store.rclone_options().end());
      if (absl::Status s = CheckRcloneRemote(absl::StrCat(what, ": rclone_options"),
                                             options, store.allow_write());
          !s.ok()) {
        return absl::FailedPreconditionError(
            absl::StrCat(s.message(), " (refused by drover-agent on node ", context.node_name, ")"));
      }
    } else {
      return absl::FailedPreconditionError(absl::StrCat(what, " has no type this agent knows"));
    }
    return found->second;
  };

  // The data references: the arguments' (by index) and the named inputs'.
  struct Use {
    std::string field;  // arguments[i] or inputs[i]
    const v1::DataReference* ref;
    int argument = -1;       // the argument it replaces, or -1
    std::string variable;    // an input's DROVER_INPUT_<name>
    const v1::Datastore* store = nullptr;
  };
  std::vector<Use> uses;
  for (int i = 0; i < spec.arguments_size(); ++i) {
    if (!spec.arguments(i).has_data()) continue;
    uses.push_back({.field = absl::StrCat("arguments[", i, "]"),
                    .ref = &spec.arguments(i).data(),
                    .argument = i});
  }
  for (int i = 0; i < spec.inputs_size(); ++i) {
    const v1::DataInput& input = spec.inputs(i);
    std::string field = absl::StrCat("inputs[", i, "]");
    // The name becomes a variable name: checked as droverd checks it.
    if (!InputNameIsValid(input.name())) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": name '", absl::CHexEscape(input.name()),
          "' is not 1-63 characters of [A-Za-z0-9_] starting with a letter"));
    }
    uses.push_back({.field = std::move(field),
                    .ref = &input.data(),
                    .variable = absl::StrCat(kInputVariablePrefix, input.name())});
  }

  // Every datastore is checked before anything is mounted or copied.
  std::vector<const v1::Datastore*> outputs;
  std::map<std::string, const v1::Datastore*> used;
  for (Use& use : uses) {
    const v1::DataReference& ref = *use.ref;
    DROVER_ASSIGN_OR_RETURN(use.store, lookup(use.field, ref.datastore(), ref.path(), Writes(ref)));
    used[ref.datastore()] = use.store;
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
  for (const v1::Argument& argument : spec.arguments()) {
    data.arguments.push_back(argument.has_data() ? "" : argument.value());
  }
  // Makes one reference available (copied, upload folder made, or its datastore marked for
  // mounting) and returns its path in the container.
  auto make_available = [&](const std::string& field, const v1::DataReference& ref,
                            const v1::Datastore& store) -> absl::StatusOr<std::string> {
    const bool rclone = store.type() == v1::Datastore::RCLONE;
    std::string what = absl::StrCat(field, ": datastore '", ref.datastore(), "'");
    const std::string real_root = rclone ? "" : real_folders[store.name()];
    std::string source = rclone ? RcloneRemote(store, ref.path()) : Join(real_root, ref.path());
    switch (ref.mode()) {
      case v1::DataReference::DOWNLOAD: {
        const std::string relative = Join(absl::StrCat("data/", store.name()), ref.path());
        std::string local = absl::StrCat(context.job_dir, "/", relative);
        if (context.recovering) {
          // Copied before the processes started.
        } else if (rclone) {
          // rclone writes where it is told: the folders on the way are made here, none a
          // symlink (the job folder may hold what an earlier attempt's job left).
          if (absl::Status s = MakeFoldersBeneath(context.job_dir,
                                                  fs::path(relative).parent_path().string());
              !s.ok()) {
            return CopyError(s, what, "");
          }
          // A symlink of that name (from the job's snapshot, say) is replaced, never
          // written through.
          std::error_code error;
          if (fs::is_symlink(fs::symlink_status(local, error))) fs::remove(local, error);
          if (absl::Status s = RcloneCopy(context.rclone, data.rclone->config, source, local,
                                          context.stop);
              !s.ok()) {
            return absl::Status(s.code(), absl::StrCat(what, ": ", s.message()));
          }
        } else {
          absl::StatusOr<CopyStats> copied =
              CopyBeneath(real_root, ref.path(), context.job_dir, relative);
          if (!copied.ok()) {
            return CopyError(copied.status(), what,
                             absl::StrCat(ref.path(), " does not exist in it (", source, ")"));
          }
          LogSkipped(*copied, store.name(), ref.path());
        }
        return Join(absl::StrCat("/job/data/", store.name()), ref.path());
      }
      case v1::DataReference::UPLOAD: {
        const std::string local = Join(absl::StrCat("upload/", store.name()), ref.path());
        if (absl::Status s = MakeFoldersBeneath(context.job_dir, local); !s.ok()) {
          return CopyError(s, what, "");
        }
        data.uploads.push_back({.datastore = store.name(),
                                .job_dir = context.job_dir,
                                .local = local,
                                .target_root = real_root,
                                .target = rclone ? source : ref.path(),
                                .rclone = rclone});
        return Join(absl::StrCat("/job/upload/", store.name()), ref.path());
      }
      default:  // MOUNT
        mounted[store.name()] = mounted[store.name()] || Writes(ref);
        return Join(ContainerDatastorePath(store.name()), ref.path());
    }
  };
  // The same reference twice (an input that is also an argument) is made available once.
  std::map<std::tuple<std::string, std::string, int, bool>, std::string> resolved;
  for (const Use& use : uses) {
    const v1::DataReference& ref = *use.ref;
    const v1::Datastore& store = *use.store;
    auto key = std::make_tuple(ref.datastore(), ref.path(), static_cast<int>(ref.mode()),
                               ref.read_write());
    auto done = resolved.find(key);
    std::string path;
    if (done != resolved.end()) {
      path = done->second;
    } else {
      DROVER_ASSIGN_OR_RETURN(path, make_available(use.field, ref, store));
      resolved.emplace(key, path);
    }
    if (use.argument >= 0) {
      data.arguments[use.argument] = path;
    } else {
      data.env.push_back(absl::StrCat(use.variable, "=", path));
    }
  }
  for (int i = 0; i < spec.outputs_size(); ++i) {
    const v1::Datastore& store = *outputs[i];
    const bool rclone = store.type() == v1::Datastore::RCLONE;
    const std::string& path = spec.outputs(i).path();
    data.uploads.push_back({.datastore = store.name(),
                            .job_dir = context.job_dir,
                            .local = "outputs",
                            .target_root = rclone ? "" : real_folders[store.name()],
                            .target = rclone ? RcloneRemote(store, path) : path,
                            .rclone = rclone});
  }
  for (const auto& [name, read_write] : mounted) {
    const v1::Datastore& store = *used[name];
    // The real folder, checked: a symlink swapped in at the registered path later is not
    // what gets bound.
    std::string source = store.type() == v1::Datastore::HOSTPATH ? real_folders[name] : "";
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
          .owner_id = context.container_root,
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
  auto keep_first = [&result](const absl::Status& s) {
    if (!s.ok() && result.ok()) result = s;
  };
  for (const JobData::Upload& upload : data.uploads) {
    const std::string what = absl::StrCat("uploading to datastore '", upload.datastore, "'");
    // What the job left there, resolved without following a symlink out of its folder.
    absl::StatusOr<bool> empty = FolderBeneathIsEmpty(upload.job_dir, upload.local);
    if (!empty.ok()) {
      keep_first(CopyError(empty.status(), what, ""));
      continue;
    }
    if (*empty) continue;
    if (upload.rclone) {
      // rclone's local side follows no symlinks inside (it skips them); the folder itself
      // was checked just above, and the job's processes are gone.
      absl::Status copied = RcloneCopy(data.rclone->tools, data.rclone->config,
                                       absl::StrCat(upload.job_dir, "/", upload.local),
                                       upload.target);
      if (!copied.ok()) {
        keep_first(absl::Status(copied.code(), absl::StrCat(what, ": ", copied.message())));
      }
      continue;
    }
    absl::StatusOr<CopyStats> copied =
        CopyBeneath(upload.job_dir, upload.local, upload.target_root, upload.target);
    if (!copied.ok()) {
      keep_first(CopyError(copied.status(), what, ""));
      continue;
    }
    LogSkipped(*copied, upload.datastore, upload.local);
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
