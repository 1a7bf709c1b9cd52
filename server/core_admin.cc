// Core: what administrators change through it (compute targets, images, datastores, cordon
// and drain of nodes) and the registries submit handlers read off the loop.
#include "server/core.h"

#include <algorithm>
#include <random>
#include "absl/algorithm/container.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/archive/sha256.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "google/protobuf/util/time_util.h"
#include "scheduler/job_spec.h"
#include "scheduler/job_state.h"
#include "scheduler/placement.h"
#include "server/server_metrics.h"

namespace drover::server {

using google::protobuf::util::TimeUtil;
using v1::JobStatus;

void Core::RefreshTargetNames() {
  absl::MutexLock lock(&target_names_mu_);
  target_names_.clear();
  for (const v1::ComputeTarget& t : nodes_.ListTargets()) target_names_.insert(t.name());
}

bool Core::TargetExists(const std::string& name) const {
  absl::MutexLock lock(&target_names_mu_);
  return target_names_.contains(name);
}

bool Core::ImageExists(const std::string& name) const {
  absl::MutexLock lock(&images_mu_);
  return images_.contains(name);
}

std::vector<v1::Datastore> Core::ListDatastores() const {
  absl::MutexLock lock(&datastores_mu_);
  std::vector<v1::Datastore> datastores;
  for (const auto& [name, datastore] : datastores_) {
    datastores.push_back(scheduler::MaskCredentials(datastore));
  }
  return datastores;
}

absl::Status Core::CheckDataReferences(const v1::JobSpec& spec) const {
  absl::MutexLock lock(&datastores_mu_);
  // `field` names the reference (spec.arguments[i].data, spec.outputs[i]); `writing` says
  // how it writes, empty when it only reads; `otherwise` what else the user can do.
  auto check = [this](const std::string& field, const std::string& name,
                      absl::string_view writing, absl::string_view otherwise)
                   ABSL_SHARED_LOCKS_REQUIRED(datastores_mu_) {
    auto it = datastores_.find(name);
    if (it == datastores_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".datastore: '", name,
                       "' is not a registered datastore; drover datastore list shows them"));
    }
    if (!writing.empty() && !it->second.allow_write()) {
      return absl::FailedPreconditionError(absl::StrCat(
          field, ": datastore '", name, "' is read-only, so ", writing,
          "; an administrator can allow writes (drover datastore create ", name,
          " ... --allow-write --replace), or ", otherwise));
    }
    return absl::OkStatus();
  };
  for (int i = 0; i < spec.arguments_size(); ++i) {
    if (!spec.arguments(i).has_data()) continue;
    const v1::DataReference& data = spec.arguments(i).data();
    const bool upload = data.mode() == v1::DataReference::UPLOAD;
    absl::string_view writing = upload             ? "the job cannot upload to it"
                                : data.read_write() ? "it cannot be mounted writable"
                                                    : "";
    DROVER_RETURN_IF_ERROR(check(absl::StrCat("spec.arguments[", i, "].data"), data.datastore(),
                                 writing, "read it with a read-only mount or download"));
  }
  for (int i = 0; i < spec.outputs_size(); ++i) {
    DROVER_RETURN_IF_ERROR(check(absl::StrCat("spec.outputs[", i, "]"), spec.outputs(i).datastore(),
                                 "the job cannot upload its outputs to it",
                                 "name a datastore that allows writes"));
  }
  return absl::OkStatus();
}

std::vector<v1::Image> Core::ListImages() const {
  absl::MutexLock lock(&images_mu_);
  std::vector<v1::Image> images;
  for (const auto& [name, image] : images_) images.push_back(image);
  return images;
}

void Core::ChangeNodeAdmin(const std::string& node,
                           std::optional<storage::NodeAdminState> state,
                           absl::AnyInvocable<absl::StatusOr<v1::Node>()> apply,
                           NodeCallback done) {
  // Checked first, so that nothing invalid is stored; applied once durable, so that a
  // restarted droverd knows every change it acknowledged.
  absl::Status valid = scheduler::CheckNodeName(node);
  if (valid.ok() && state.has_value()) valid = scheduler::CheckNodeReason(state->reason);
  if (valid.ok()) valid = nodes_.CheckAdministrable(node);
  if (!valid.ok()) {
    std::move(done)(valid);
    return;
  }
  auto stored = [this, apply = std::move(apply),
                 done = std::move(done)](absl::Status s) mutable {
    loop_.Post([this, s, apply = std::move(apply), done = std::move(done)]() mutable {
      if (!s.ok()) {
        std::move(done)(s);
        return;
      }
      absl::StatusOr<v1::Node> result = apply();
      if (result.ok()) Schedule();
      std::move(done)(std::move(result));
    });
  };
  if (state.has_value()) {
    store_.PutNodeAdminState(*std::move(state), std::move(stored));
  } else {
    store_.DeleteNodeAdminState(node, std::move(stored));
  }
}

void Core::Cordon(const std::string& node, const std::string& reason, NodeCallback done) {
  ChangeNodeAdmin(
      node, storage::NodeAdminState{.node = node, .reason = reason, .set_time = clock_.Now()},
      [this, node, reason] { return nodes_.Cordon(node, reason); }, std::move(done));
}

void Core::Uncordon(const std::string& node, NodeCallback done) {
  ChangeNodeAdmin(
      node, std::nullopt, [this, node] { return nodes_.Uncordon(node); }, std::move(done));
}

void Core::Drain(const std::string& node, const std::string& reason, NodeCallback done) {
  ChangeNodeAdmin(node,
                  storage::NodeAdminState{
                      .node = node, .draining = true, .reason = reason, .set_time = clock_.Now()},
                  [this, node, reason] { return nodes_.Drain(node, reason); }, std::move(done));
}

void Core::PutTarget(const v1::ComputeTarget& target, StatusCallback done) {
  // Check first, so that nothing invalid is stored; apply once durable.
  scheduler::NodeRegistry check;
  if (absl::Status valid = check.PutTarget(target); !valid.ok()) {
    std::move(done)(valid);
    return;
  }
  store_.PutComputeTarget(target, [this, target, done = std::move(done)](absl::Status s) mutable {
    loop_.Post([this, target, s, done = std::move(done)]() mutable {
      if (s.ok()) {
        s = nodes_.PutTarget(target);
        RefreshTargetNames();
        Schedule();
      }
      std::move(done)(s);
    });
  });
}

void Core::DeleteTarget(const std::string& name, StatusCallback done) {
  if (name == "default" || nodes_.FindTarget(name) == nullptr) {
    std::move(done)(nodes_.DeleteTarget(name));  // the registry's error
    return;
  }
  store_.DeleteComputeTarget(name, [this, name, done = std::move(done)](absl::Status s) mutable {
    loop_.Post([this, name, s, done = std::move(done)]() mutable {
      if (s.ok()) {
        s = nodes_.DeleteTarget(name);
        RefreshTargetNames();
        Schedule();
      }
      std::move(done)(s);
    });
  });
}

void Core::PutImage(const v1::Image& request, ImageCallback done) {
  v1::Image image = request;
  *image.mutable_create_time() = TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(clock_.Now()));
  if (absl::Status valid = scheduler::CheckImageName("image.name", image.name()); !valid.ok()) {
    std::move(done)(valid);
    return;
  }
  if (!archive::IsValidDigest(image.digest())) {
    std::move(done)(absl::InvalidArgumentError(absl::StrCat(
        "image.digest: '", image.digest(),
        "' is not a blob digest; give 'sha256:' followed by 64 lowercase hex digits")));
    return;
  }
  store_.PutImage(image, [this, image, done = std::move(done)](absl::Status s) mutable {
    loop_.Post([this, image, s, done = std::move(done)]() mutable {
      if (!s.ok()) {
        std::move(done)(s);
        return;
      }
      {
        absl::MutexLock lock(&images_mu_);
        images_[image.name()] = image;
      }
      std::move(done)(image);
    });
  });
}

void Core::DeleteImage(const std::string& name, StatusCallback done) {
  if (!ImageExists(name)) {
    std::move(done)(absl::NotFoundError(
        absl::StrCat("image '", name, "' is not registered; see drover image list")));
    return;
  }
  store_.DeleteImage(name, [this, name, done = std::move(done)](absl::Status s) mutable {
    loop_.Post([this, name, s, done = std::move(done)]() mutable {
      if (s.ok()) {
        absl::MutexLock lock(&images_mu_);
        images_.erase(name);
      }
      std::move(done)(s);
    });
  });
}

void Core::PutDatastore(const v1::Datastore& request, bool replace, DatastoreCallback done) {
  if (absl::Status valid = scheduler::CheckDatastore(request, options_.datastore_roots); !valid.ok()) {
    std::move(done)(valid);
    return;
  }
  if (!replace) {
    absl::Status taken;
    {
      absl::MutexLock lock(&datastores_mu_);
      if (auto it = datastores_.find(request.name()); it != datastores_.end()) {
        const v1::Datastore& existing = it->second;
        taken = absl::AlreadyExistsError(absl::StrCat(
            "datastore '", request.name(), "' already exists (",
            absl::AsciiStrToLower(v1::Datastore::Type_Name(existing.type())),
            existing.path().empty() ? "" : " ", existing.path(),
            "); set replace (drover datastore create --replace) to change it"));
      }
    }
    if (!taken.ok()) {
      std::move(done)(taken);
      return;
    }
  }
  v1::Datastore datastore = request;
  *datastore.mutable_create_time() =
      TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(clock_.Now()));
  store_.PutDatastore(datastore, replace,
                      [this, datastore, done = std::move(done)](absl::Status s) mutable {
                        loop_.Post([this, datastore, s, done = std::move(done)]() mutable {
                          if (!s.ok()) {
                            std::move(done)(s);
                            return;
                          }
                          {
                            absl::MutexLock lock(&datastores_mu_);
                            datastores_[datastore.name()] = datastore;
                          }
                          std::move(done)(scheduler::MaskCredentials(datastore));
                        });
                      });
}

void Core::DeleteDatastore(const std::string& name, StatusCallback done) {
  bool known;
  {
    absl::MutexLock lock(&datastores_mu_);
    known = datastores_.contains(name);
  }
  if (!known) {
    std::move(done)(absl::NotFoundError(
        absl::StrCat("datastore '", name, "' is not registered; see drover datastore list")));
    return;
  }
  store_.DeleteDatastore(name, [this, name, done = std::move(done)](absl::Status s) mutable {
    loop_.Post([this, name, s, done = std::move(done)]() mutable {
      if (s.ok()) {
        absl::MutexLock lock(&datastores_mu_);
        datastores_.erase(name);
      }
      std::move(done)(s);
    });
  });
}

}  // namespace drover::server
