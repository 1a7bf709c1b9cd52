#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/proto_bytes.h"
#include "common/status_macros.h"
#include "storage/sqlite_store_internal.h"
#include "storage/store_rules.h"

namespace drover::storage {
namespace {

using sqlite_store_internal::FunctionOp;

using rules::OpenDatastore;
using rules::SealedDatastore;

}  // namespace

namespace sqlite_store_internal {

absl::Status SealStoredDatastores(Db& db, const SecretBox& secrets) {
  DROVER_ASSIGN_OR_RETURN(auto select, db.Prepare("SELECT name, datastore FROM datastores"));
  std::vector<v1::Datastore> unsealed;
  while (true) {
    DROVER_ASSIGN_OR_RETURN(bool row, select->Step());
    if (!row) break;
    absl::string_view bytes = select->ColumnBlob(1);
    v1::Datastore datastore;
    if (!datastore.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) continue;
    if (rules::HasUnsealedOption(datastore)) unsealed.push_back(std::move(datastore));
  }
  select.reset();
  if (unsealed.empty()) return absl::OkStatus();
  DROVER_RETURN_IF_ERROR(db.Exec("BEGIN IMMEDIATE"));
  for (v1::Datastore& datastore : unsealed) {
    rules::SealClearOptions(secrets, datastore);
    DROVER_ASSIGN_OR_RETURN(auto update,
                            db.Prepare("UPDATE datastores SET datastore = ? WHERE name = ?"));
    update->BindBlob(1, SerializeDeterministic(datastore)).Bind(2, datastore.name());
    if (absl::Status s = update->Run(); !s.ok()) {
      db.Exec("ROLLBACK").IgnoreError();
      return s;
    }
  }
  DROVER_RETURN_IF_ERROR(db.Exec("COMMIT"));
  Log(LogLevel::kInfo, "datastores_sealed", {{"count", static_cast<int64_t>(unsealed.size())}});
  return absl::OkStatus();
}

}  // namespace sqlite_store_internal

void SqliteStore::PutComputeTarget(v1::ComputeTarget target, DoneCallback done) {
  Enqueue(std::make_unique<FunctionOp>(
      [target = std::move(target)](Writer& w) -> absl::Status {
        DROVER_ASSIGN_OR_RETURN(
            auto put, w.db->Prepare("INSERT OR REPLACE INTO compute_targets (name, target) "
                                    "VALUES (?, ?)"));
        put->Bind(1, target.name()).BindBlob(2, SerializeDeterministic(target));
        return put->Run();
      },
      std::move(done)));
}

void SqliteStore::DeleteComputeTarget(std::string name, DoneCallback done) {
  Enqueue(std::make_unique<FunctionOp>(
      [name = std::move(name)](Writer& w) -> absl::Status {
        DROVER_ASSIGN_OR_RETURN(auto del,
                                w.db->Prepare("DELETE FROM compute_targets WHERE name = ?"));
        del->Bind(1, name);
        return del->Run();
      },
      std::move(done)));
}

absl::StatusOr<std::vector<v1::ComputeTarget>> SqliteStore::LoadComputeTargets() {
  return WithReader([&](Db& db) -> absl::StatusOr<std::vector<v1::ComputeTarget>> {
    DROVER_ASSIGN_OR_RETURN(auto select,
                            db.Prepare("SELECT target FROM compute_targets ORDER BY name"));
    std::vector<v1::ComputeTarget> targets;
    while (true) {
      DROVER_ASSIGN_OR_RETURN(bool row, select->Step());
      if (!row) break;
      absl::string_view bytes = select->ColumnBlob(0);
      v1::ComputeTarget target;
      if (!target.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
        return absl::DataLossError("a stored compute target is unreadable");
      }
      targets.push_back(std::move(target));
    }
    return targets;
  });
}

void SqliteStore::PutImage(v1::Image image, DoneCallback done) {
  Enqueue(std::make_unique<FunctionOp>(
      [image = std::move(image)](Writer& w) -> absl::Status {
        DROVER_ASSIGN_OR_RETURN(
            auto put, w.db->Prepare("INSERT OR REPLACE INTO images (name, image) VALUES (?, ?)"));
        put->Bind(1, image.name()).BindBlob(2, SerializeDeterministic(image));
        return put->Run();
      },
      std::move(done)));
}

void SqliteStore::DeleteImage(std::string name, DoneCallback done) {
  Enqueue(std::make_unique<FunctionOp>(
      [name = std::move(name)](Writer& w) -> absl::Status {
        DROVER_ASSIGN_OR_RETURN(auto del, w.db->Prepare("DELETE FROM images WHERE name = ?"));
        del->Bind(1, name);
        return del->Run();
      },
      std::move(done)));
}

absl::StatusOr<std::vector<v1::Image>> SqliteStore::LoadImages() {
  return WithReader([&](Db& db) -> absl::StatusOr<std::vector<v1::Image>> {
    DROVER_ASSIGN_OR_RETURN(auto select, db.Prepare("SELECT image FROM images ORDER BY name"));
    std::vector<v1::Image> images;
    while (true) {
      DROVER_ASSIGN_OR_RETURN(bool row, select->Step());
      if (!row) break;
      absl::string_view bytes = select->ColumnBlob(0);
      v1::Image image;
      if (!image.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
        return absl::DataLossError("a stored image registration is unreadable");
      }
      images.push_back(std::move(image));
    }
    return images;
  });
}

void SqliteStore::PutDatastore(v1::Datastore datastore, bool replace, DoneCallback done) {
  Enqueue(std::make_unique<FunctionOp>(
      [datastore = std::move(datastore), replace](Writer& w) -> absl::Status {
        if (!replace) {
          DROVER_ASSIGN_OR_RETURN(auto find,
                                  w.db->Prepare("SELECT 1 FROM datastores WHERE name = ?"));
          find->Bind(1, datastore.name());
          DROVER_ASSIGN_OR_RETURN(bool found, find->Step());
          if (found) {
            return absl::AlreadyExistsError(absl::StrCat(
                "datastore '", datastore.name(), "' already exists; set replace to overwrite it"));
          }
        }
        DROVER_ASSIGN_OR_RETURN(
            auto put, w.db->Prepare("INSERT OR REPLACE INTO datastores (name, datastore) "
                                    "VALUES (?, ?)"));
        put->Bind(1, datastore.name())
            .BindBlob(2, SerializeDeterministic(SealedDatastore(w.secrets, datastore)));
        return put->Run();
      },
      std::move(done)));
}

void SqliteStore::DeleteDatastore(std::string name, DoneCallback done) {
  Enqueue(std::make_unique<FunctionOp>(
      [name = std::move(name)](Writer& w) -> absl::Status {
        DROVER_ASSIGN_OR_RETURN(auto del,
                                w.db->Prepare("DELETE FROM datastores WHERE name = ?"));
        del->Bind(1, name);
        return del->Run();
      },
      std::move(done)));
}

absl::StatusOr<std::vector<v1::Datastore>> SqliteStore::LoadDatastores() {
  return WithReader([&](Db& db) -> absl::StatusOr<std::vector<v1::Datastore>> {
    DROVER_ASSIGN_OR_RETURN(auto select,
                            db.Prepare("SELECT name, datastore FROM datastores ORDER BY name"));
    std::vector<v1::Datastore> datastores;
    while (true) {
      DROVER_ASSIGN_OR_RETURN(bool row, select->Step());
      if (!row) break;
      absl::string_view bytes = select->ColumnBlob(1);
      v1::Datastore datastore;
      if (!datastore.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
        return absl::DataLossError(absl::StrCat("the stored datastore '",
                                                select->ColumnText(0), "' is unreadable"));
      }
      DROVER_RETURN_IF_ERROR(OpenDatastore(options_.secrets, datastore));
      datastores.push_back(std::move(datastore));
    }
    return datastores;
  });
}

}  // namespace drover::storage
