#include "agent/job_data.h"

#include <filesystem>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace drover::agent {
namespace {

namespace fs = std::filesystem;

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

// Copies `from` (a file or a folder) to `to`, replacing files of the same name.
absl::Status Copy(const std::string& from, const std::string& to, const std::string& what) {
  std::error_code error;
  fs::create_directories(fs::path(to).parent_path(), error);
  if (!error) {
    fs::copy(from, to,
             fs::copy_options::recursive | fs::copy_options::overwrite_existing |
                 fs::copy_options::copy_symlinks,
             error);
  }
  if (error) {
    return absl::UnavailableError(
        absl::StrCat(what, ": copying ", from, " to ", to, ": ", error.message()));
  }
  return absl::OkStatus();
}

}  // namespace

std::string ContainerDatastorePath(const std::string& name) {
  return absl::StrCat("/datastores/", name);
}

std::string DatastoreVariable(const std::string& name) {
  std::string upper = absl::AsciiStrToUpper(name);
  for (char& c : upper) {
    if (c == '-') c = '_';
  }
  return absl::StrCat("DROVER_DATASTORE_", upper);
}

absl::StatusOr<JobData> PrepareJobData(const v1::AssignAttempt& assignment,
                                       const std::string& job_dir, const std::string& node_name) {
  std::map<std::string, const v1::Datastore*> registered;
  for (const v1::Datastore& d : assignment.datastores()) registered[d.name()] = &d;
  JobData data;
  std::map<std::string, bool> mounted;  // name -> read-write
  for (int i = 0; i < assignment.spec().arguments_size(); ++i) {
    const v1::Argument& argument = assignment.spec().arguments(i);
    if (!argument.has_data()) {
      data.arguments.push_back(argument.value());
      continue;
    }
    const v1::DataReference& ref = argument.data();
    std::string what = absl::StrCat("arguments[", i, "]: datastore '", ref.datastore(), "'");
    auto found = registered.find(ref.datastore());
    if (found == registered.end()) {
      return absl::FailedPreconditionError(
          absl::StrCat(what, " is no longer registered (see `drover datastore list`)"));
    }
    const v1::Datastore& store = *found->second;
    if (store.type() != v1::Datastore::HOSTPATH) {
      return absl::FailedPreconditionError(absl::StrCat(
          what, " is of type ", v1::Datastore::Type_Name(store.type()),
          ", which this agent cannot mount yet; use a hostpath datastore"));
    }
    if (!SafeRelative(ref.path())) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": path '", ref.path(), "' must be relative, without '..'"));
    }
    bool writes = ref.mode() == v1::DataReference::UPLOAD ||
                  (ref.mode() != v1::DataReference::DOWNLOAD && ref.read_write());
    if (writes && !store.allow_write()) {
      return absl::FailedPreconditionError(
          absl::StrCat(what, " is read-only; an administrator can allow writes"));
    }
    std::error_code error;
    if (!fs::is_directory(store.path(), error)) {
      return absl::UnavailableError(absl::StrCat(what, ": its folder ", store.path(),
                                                 " does not exist on node ", node_name));
    }
    std::string source = Join(store.path(), ref.path());
    switch (ref.mode()) {
      case v1::DataReference::DOWNLOAD: {
        std::string local = Join(absl::StrCat(job_dir, "/data/", store.name()), ref.path());
        if (!fs::exists(source, error)) {
          return absl::UnavailableError(
              absl::StrCat(what, ": ", ref.path(), " does not exist in it (", source, ")"));
        }
        if (absl::Status s = Copy(source, local, what); !s.ok()) return s;
        data.arguments.push_back(Join(absl::StrCat("/job/data/", store.name()), ref.path()));
        break;
      }
      case v1::DataReference::UPLOAD: {
        std::string local = Join(absl::StrCat(job_dir, "/upload/", store.name()), ref.path());
        fs::create_directories(local, error);
        if (error) {
          return absl::UnavailableError(
              absl::StrCat(what, ": creating ", local, ": ", error.message()));
        }
        data.uploads.push_back({store.name(), local, source});
        data.arguments.push_back(Join(absl::StrCat("/job/upload/", store.name()), ref.path()));
        break;
      }
      default: {  // MOUNT
        mounted[store.name()] = mounted[store.name()] || writes;
        data.arguments.push_back(Join(ContainerDatastorePath(store.name()), ref.path()));
        break;
      }
    }
  }
  for (const auto& [name, read_write] : mounted) {
    data.mounts.push_back({.source = registered[name]->path(),
                           .destination = ContainerDatastorePath(name),
                           .read_only = !read_write});
    data.env.push_back(absl::StrCat(DatastoreVariable(name), "=", ContainerDatastorePath(name)));
  }
  return data;
}

absl::Status UploadJobData(const JobData& data) {
  absl::Status result = absl::OkStatus();
  for (const JobData::Upload& upload : data.uploads) {
    std::error_code error;
    for (const fs::directory_entry& entry : fs::directory_iterator(upload.local, error)) {
      absl::Status copied =
          Copy(entry.path().string(),
               absl::StrCat(upload.target, "/", entry.path().filename().string()),
               absl::StrCat("uploading to datastore '", upload.datastore, "'"));
      if (!copied.ok() && result.ok()) result = copied;
    }
    if (error && result.ok()) {
      result = absl::UnavailableError(absl::StrCat("uploading to datastore '", upload.datastore,
                                                   "': reading ", upload.local, ": ",
                                                   error.message()));
    }
  }
  return result;
}

}  // namespace drover::agent
