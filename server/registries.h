// Registries: what administrators register for jobs to use (imported images, datastores)
// and the names of the compute targets, as droverd's core keeps them. The core owns one of
// each (Core::images(), datastores(), target_names()).
//
// Threading: immutable snapshots. A registry is changed only on the CoreLoop, and each
// change publishes a new immutable map (std::shared_ptr<const T>) with one atomic store;
// any thread reads the current map with one atomic load and holds it as long as it likes.
// No reader ever waits for the loop, nor the loop for a reader. Chosen over posting reads
// to the loop (as AdminService.ListNodes does) because the readers are submit handlers:
// they check a job's target, image and datastores before the job is stored, and a hop to
// the loop would queue every submit behind placement rounds for data that changes only
// when an administrator runs a command. A reader sees either the map before a change or
// the one after, never half of one; what it read may be outdated by the time it acts,
// exactly as when it read under the old mutexes (an image deleted right after a submit
// was checked is caught when the job is assigned: the assignment carries no digest).
//
// Changes are stored first and applied on the loop once the store committed them, so
// that a restarted droverd knows every change it acknowledged and a refused write changes
// nothing; the store commits in order, so the loop applies them in order.
#ifndef DROVER_SERVER_REGISTRIES_H_
#define DROVER_SERVER_REGISTRIES_H_

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/datastore_policy.h"
#include "drover/v1/datastore.pb.h"
#include "drover/v1/image.pb.h"
#include "drover/v1/job.pb.h"
#include "drover/v1/node.pb.h"
#include "server/core_loop.h"
#include "storage/store.h"

namespace drover::server {

// A value that one thread replaces and any thread reads, as immutable snapshots.
template <typename T>
class Snapshot {
 public:
  Snapshot() : current_(std::make_shared<const T>()) {}
  // The current value; it never changes while held. Any thread.
  std::shared_ptr<const T> Get() const { return current_.load(std::memory_order_acquire); }
  // Replaces the value. One writing thread only (the loop), so that a read-modify-write of
  // Get() and Set() loses nothing.
  void Set(T next) {
    current_.store(std::make_shared<const T>(std::move(next)), std::memory_order_release);
  }

 private:
  std::atomic<std::shared_ptr<const T>> current_;
};

using StatusCallback = absl::AnyInvocable<void(absl::Status) &&>;

// The names of the compute targets (their truth is the core's scheduler::NodeRegistry,
// which only the loop reads): what submit handlers check a job's target against.
class TargetNames {
 public:
  // Loop only: the targets are now `targets`.
  void Set(const std::vector<v1::ComputeTarget>& targets);
  // Whether a compute target exists. Any thread.
  bool Exists(const std::string& name) const { return names_.Get()->contains(name); }

 private:
  Snapshot<absl::flat_hash_set<std::string>> names_;
};

// Image registrations (`drover image import`), by name.
class ImageRegistry {
 public:
  using ImageCallback = absl::AnyInvocable<void(absl::StatusOr<v1::Image>) &&>;

  // `store`, `loop` and `clock` must outlive the registry.
  ImageRegistry(storage::Store& store, CoreLoop& loop, const Clock& clock)
      : store_(store), loop_(loop), clock_(clock) {}

  // At start, before anything reads it: the stored registrations.
  void Restore(const std::vector<v1::Image>& images);
  // On the loop. Checks the name and digest (INVALID_ARGUMENT naming the field; the caller
  // checks that the blob exists and sets `size`), sets `create_time`, stores the image and
  // applies it; `done` runs on the loop after the commit with the stored image, or the
  // store's error (nothing applied).
  void Put(const v1::Image& image, ImageCallback done);
  // On the loop. NOT_FOUND for an unknown name; otherwise as Put.
  void Delete(const std::string& name, StatusCallback done);

  // Any thread.
  bool Exists(const std::string& name) const { return images_.Get()->contains(name); }
  // The digest the job's imported image has now; "" for a built-in image or one not
  // registered.
  std::string DigestOf(const v1::JobSpec& spec) const;
  // Every image, by name.
  std::vector<v1::Image> List() const;

 private:
  storage::Store& store_;
  CoreLoop& loop_;
  const Clock& clock_;
  Snapshot<std::map<std::string, v1::Image>> images_;
};

// Datastores (`drover datastore create`), by name, with their credentials.
class DatastoreRegistry {
 public:
  using DatastoreCallback = absl::AnyInvocable<void(absl::StatusOr<v1::Datastore>) &&>;

  // `roots`: where HOSTPATH datastores may be (CheckDatastore). `store`, `loop` and
  // `clock` must outlive the registry.
  DatastoreRegistry(storage::Store& store, CoreLoop& loop, const Clock& clock,
                    DatastoreRoots roots)
      : store_(store), loop_(loop), clock_(clock), roots_(std::move(roots)) {}

  // At start, before anything reads it: the stored registrations.
  void Restore(const std::vector<v1::Datastore>& datastores);
  // On the loop. Checks the datastore (scheduler::CheckDatastore with the roots), refuses
  // a taken name with ALREADY_EXISTS unless `replace`, sets `create_time`, stores and
  // applies it; `done` runs on the loop after the commit with the stored datastore, its
  // credentials masked, or the store's error (nothing applied).
  void Put(const v1::Datastore& datastore, bool replace, DatastoreCallback done);
  // On the loop. NOT_FOUND for an unknown name; otherwise as Put.
  void Delete(const std::string& name, StatusCallback done);

  // Any thread.
  // Every datastore by name, credentials masked.
  std::vector<v1::Datastore> List() const;
  // Whether every data reference of `spec`'s arguments and inputs and every output target
  // names a registered datastore (INVALID_ARGUMENT naming `spec.arguments[i].data.datastore`,
  // `spec.inputs[i].data.datastore` or `spec.outputs[i].datastore` otherwise) that allows the writes it asks for (outputs
  // always write; FAILED_PRECONDITION naming the datastore otherwise).
  absl::Status CheckReferences(const v1::JobSpec& spec) const;
  // The registered datastores `spec` refers to, by name, credentials included (what an
  // assignment carries); one not registered is left out.
  std::map<std::string, v1::Datastore> ReferencedBy(const v1::JobSpec& spec) const;

 private:
  storage::Store& store_;
  CoreLoop& loop_;
  const Clock& clock_;
  const DatastoreRoots roots_;
  Snapshot<std::map<std::string, v1::Datastore>> datastores_;
};

}  // namespace drover::server

#endif  // DROVER_SERVER_REGISTRIES_H_
