#include "server/registries.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/archive/sha256.h"
#include "common/status_macros.h"
#include "google/protobuf/util/time_util.h"
#include "scheduler/admin_checks.h"

namespace drover::server {
namespace {

using google::protobuf::util::TimeUtil;

google::protobuf::Timestamp ToTimestamp(absl::Time t) {
  return TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(t));
}

}  // namespace

void TargetNames::Set(const std::vector<v1::ComputeTarget>& targets) {
  absl::flat_hash_set<std::string> names;
  for (const v1::ComputeTarget& target : targets) names.insert(target.name());
  names_.Set(std::move(names));
}

void ImageRegistry::Restore(const std::vector<v1::Image>& images) {
  std::map<std::string, v1::Image> restored;
  for (const v1::Image& image : images) restored[image.name()] = image;
  images_.Set(std::move(restored));
}

void ImageRegistry::Put(const v1::Image& request, ImageCallback done) {
  v1::Image image = request;
  *image.mutable_create_time() = ToTimestamp(clock_.Now());
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
      std::map<std::string, v1::Image> next = *images_.Get();
      next[image.name()] = image;
      images_.Set(std::move(next));
      std::move(done)(image);
    });
  });
}

void ImageRegistry::Delete(const std::string& name, StatusCallback done) {
  if (!Exists(name)) {
    std::move(done)(absl::NotFoundError(
        absl::StrCat("image '", name, "' is not registered; see drover image list")));
    return;
  }
  store_.DeleteImage(name, [this, name, done = std::move(done)](absl::Status s) mutable {
    loop_.Post([this, name, s, done = std::move(done)]() mutable {
      if (s.ok()) {
        std::map<std::string, v1::Image> next = *images_.Get();
        next.erase(name);
        images_.Set(std::move(next));
      }
      std::move(done)(s);
    });
  });
}

std::string ImageRegistry::DigestOf(const v1::JobSpec& spec) const {
  if (scheduler::IsBuiltInImage(spec.environment().image())) return "";
  std::shared_ptr<const std::map<std::string, v1::Image>> images = images_.Get();
  auto image = images->find(spec.environment().image());
  return image != images->end() ? image->second.digest() : "";
}

std::vector<v1::Image> ImageRegistry::List() const {
  std::shared_ptr<const std::map<std::string, v1::Image>> images = images_.Get();
  std::vector<v1::Image> list;
  list.reserve(images->size());
  for (const auto& [name, image] : *images) list.push_back(image);
  return list;
}

void DatastoreRegistry::Restore(const std::vector<v1::Datastore>& datastores) {
  std::map<std::string, v1::Datastore> restored;
  for (const v1::Datastore& datastore : datastores) restored[datastore.name()] = datastore;
  datastores_.Set(std::move(restored));
}

void DatastoreRegistry::Put(const v1::Datastore& request, bool replace, DatastoreCallback done) {
  if (absl::Status valid = scheduler::CheckDatastore(request, roots_); !valid.ok()) {
    std::move(done)(valid);
    return;
  }
  if (!replace) {
    std::shared_ptr<const std::map<std::string, v1::Datastore>> datastores = datastores_.Get();
    if (auto it = datastores->find(request.name()); it != datastores->end()) {
      const v1::Datastore& existing = it->second;
      std::move(done)(absl::AlreadyExistsError(absl::StrCat(
          "datastore '", request.name(), "' already exists (",
          absl::AsciiStrToLower(v1::Datastore::Type_Name(existing.type())),
          existing.path().empty() ? "" : " ", existing.path(),
          "); set replace (drover datastore create --replace) to change it")));
      return;
    }
  }
  v1::Datastore datastore = request;
  *datastore.mutable_create_time() = ToTimestamp(clock_.Now());
  store_.PutDatastore(datastore, replace,
                      [this, datastore, done = std::move(done)](absl::Status s) mutable {
                        loop_.Post([this, datastore, s, done = std::move(done)]() mutable {
                          if (!s.ok()) {
                            std::move(done)(s);
                            return;
                          }
                          std::map<std::string, v1::Datastore> next = *datastores_.Get();
                          next[datastore.name()] = datastore;
                          datastores_.Set(std::move(next));
                          std::move(done)(scheduler::MaskCredentials(datastore));
                        });
                      });
}

void DatastoreRegistry::Delete(const std::string& name, StatusCallback done) {
  if (!datastores_.Get()->contains(name)) {
    std::move(done)(absl::NotFoundError(
        absl::StrCat("datastore '", name, "' is not registered; see drover datastore list")));
    return;
  }
  store_.DeleteDatastore(name, [this, name, done = std::move(done)](absl::Status s) mutable {
    loop_.Post([this, name, s, done = std::move(done)]() mutable {
      if (s.ok()) {
        std::map<std::string, v1::Datastore> next = *datastores_.Get();
        next.erase(name);
        datastores_.Set(std::move(next));
      }
      std::move(done)(s);
    });
  });
}

std::vector<v1::Datastore> DatastoreRegistry::List() const {
  std::shared_ptr<const std::map<std::string, v1::Datastore>> datastores = datastores_.Get();
  std::vector<v1::Datastore> list;
  list.reserve(datastores->size());
  for (const auto& [name, datastore] : *datastores) {
    list.push_back(scheduler::MaskCredentials(datastore));
  }
  return list;
}

absl::Status DatastoreRegistry::CheckReferences(const v1::JobSpec& spec) const {
  std::shared_ptr<const std::map<std::string, v1::Datastore>> datastores = datastores_.Get();
  // `field` names the reference (spec.arguments[i].data, spec.outputs[i]); `writing` says
  // how it writes, empty when it only reads; `otherwise` what else the user can do.
  auto check = [&datastores](const std::string& field, const std::string& name,
                             absl::string_view writing, absl::string_view otherwise) {
    auto it = datastores->find(name);
    if (it == datastores->end()) {
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
  auto check_reference = [&check](const std::string& field, const v1::DataReference& data) {
    const bool upload = data.mode() == v1::DataReference::UPLOAD;
    absl::string_view writing = upload             ? "the job cannot upload to it"
                                : data.read_write() ? "it cannot be mounted writable"
                                                    : "";
    return check(field, data.datastore(), writing, "read it with a read-only mount or download");
  };
  for (int i = 0; i < spec.arguments_size(); ++i) {
    if (!spec.arguments(i).has_data()) continue;
    DROVER_RETURN_IF_ERROR(
        check_reference(absl::StrCat("spec.arguments[", i, "].data"), spec.arguments(i).data()));
  }
  for (int i = 0; i < spec.inputs_size(); ++i) {
    DROVER_RETURN_IF_ERROR(
        check_reference(absl::StrCat("spec.inputs[", i, "].data"), spec.inputs(i).data()));
  }
  for (int i = 0; i < spec.outputs_size(); ++i) {
    DROVER_RETURN_IF_ERROR(check(absl::StrCat("spec.outputs[", i, "]"), spec.outputs(i).datastore(),
                                 "the job cannot upload its outputs to it",
                                 "name a datastore that allows writes"));
  }
  return absl::OkStatus();
}

std::map<std::string, v1::Datastore> DatastoreRegistry::ReferencedBy(
    const v1::JobSpec& spec) const {
  std::shared_ptr<const std::map<std::string, v1::Datastore>> datastores = datastores_.Get();
  std::map<std::string, v1::Datastore> referenced;
  auto add = [&](const std::string& name) {
    auto it = datastores->find(name);
    if (it != datastores->end()) referenced.emplace(it->first, it->second);
  };
  for (const v1::Argument& argument : spec.arguments()) {
    if (argument.has_data()) add(argument.data().datastore());
  }
  for (const v1::DataInput& input : spec.inputs()) add(input.data().datastore());
  for (const v1::OutputTarget& output : spec.outputs()) add(output.datastore());
  return referenced;
}

}  // namespace drover::server
