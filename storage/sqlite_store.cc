#include "storage/sqlite_store.h"

#include <algorithm>
#include <filesystem>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/job_id.h"
#include "common/log.h"
#include "common/proto_bytes.h"
#include "common/status_macros.h"
#include "google/protobuf/util/time_util.h"
#include "storage/sqlite_schema.h"

namespace drover::storage {
namespace {

using google::protobuf::util::TimeUtil;

// Connection settings every connection gets. WAL lets readers run beside the writer;
// synchronous=FULL makes every commit durable (the WAL is fsynced at each commit).
constexpr char kConnectionPragmas[] =
    "PRAGMA journal_mode = WAL;"
    "PRAGMA synchronous = FULL;"
    "PRAGMA foreign_keys = ON;"
    "PRAGMA busy_timeout = 10000;";

constexpr char kJobColumns[] = "seq, spec, status, create_time_us, owner";

// What a sealed value is bound to (SecretBox's context): a value moved to another field,
// job or datastore does not open there.
std::string EnvContext(absl::string_view name) { return absl::StrCat("job env ", name); }
std::string OptionContext(absl::string_view datastore, absl::string_view key) {
  return absl::StrCat("datastore ", datastore, " option ", key);
}

// The job's secret environment values sealed, for storing.
v1::JobSpec SealedSpec(const SecretBox* secrets, v1::JobSpec spec) {
  if (secrets == nullptr || spec.environment().secret_env().empty()) return spec;
  auto& env = *spec.mutable_environment()->mutable_env();
  std::set<std::string> names(spec.environment().secret_env().begin(),
                              spec.environment().secret_env().end());
  for (const std::string& name : names) {
    auto it = env.find(name);
    if (it != env.end()) it->second = secrets->Seal(it->second, EnvContext(name));
  }
  return spec;
}

// Opens the sealed values of a stored spec in place.
// Opens the sealed values of a stored spec in place: those of secret_env names only, each
// once (a user's own value that merely looks sealed is never taken for one).
absl::Status OpenSpec(const SecretBox* secrets, absl::string_view job_id, v1::JobSpec& spec) {
  // mutable_environment() would add an empty environment to a spec without one.
  if (spec.environment().secret_env().empty()) return absl::OkStatus();
  auto& env = *spec.mutable_environment()->mutable_env();
  std::set<std::string> names(spec.environment().secret_env().begin(),
                              spec.environment().secret_env().end());
  for (const std::string& name : names) {
    auto it = env.find(name);
    if (it == env.end() || !SecretBox::IsSealed(it->second)) continue;
    if (secrets == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          "job '", job_id, "': env ", name, " is sealed and droverd has no secrets key"));
    }
    absl::StatusOr<std::string> opened = secrets->Open(it->second, EnvContext(name));
    if (!opened.ok()) {
      return absl::Status(opened.status().code(), absl::StrCat("job '", job_id, "': env ", name,
                                                               ": ", opened.status().message()));
    }
    it->second = *std::move(opened);
  }
  return absl::OkStatus();
}

v1::Datastore SealedDatastore(const SecretBox* secrets, v1::Datastore datastore) {
  if (secrets == nullptr) return datastore;
  for (auto& [key, value] : *datastore.mutable_rclone_options()) {
    value = secrets->Seal(value, OptionContext(datastore.name(), key));
  }
  return datastore;
}

absl::Status OpenDatastore(const SecretBox* secrets, v1::Datastore& datastore) {
  for (auto& [key, value] : *datastore.mutable_rclone_options()) {
    if (!SecretBox::IsSealed(value)) continue;
    if (secrets == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          "datastore '", datastore.name(), "': option ", key,
          " is sealed and droverd has no secrets key"));
    }
    absl::StatusOr<std::string> opened = secrets->Open(value, OptionContext(datastore.name(), key));
    if (!opened.ok()) {
      return absl::Status(opened.status().code(),
                          absl::StrCat("datastore '", datastore.name(), "': option ", key, ": ",
                                       opened.status().message()));
    }
    value = *std::move(opened);
  }
  return absl::OkStatus();
}

// Reads a job from a row selected with kJobColumns, its secret values opened.
absl::StatusOr<v1::Job> JobFromRow(const Statement& row, const SecretBox* secrets) {
  v1::Job job;
  job.set_id(FormatJobId(row.ColumnInt(0)));
  absl::string_view spec = row.ColumnBlob(1);
  absl::string_view status = row.ColumnBlob(2);
  if (!job.mutable_spec()->ParseFromArray(spec.data(), static_cast<int>(spec.size())) ||
      !job.mutable_status()->ParseFromArray(status.data(), static_cast<int>(status.size()))) {
    return absl::DataLossError(absl::StrCat("job '", job.id(), "' has an unreadable record"));
  }
  *job.mutable_create_time() = TimeUtil::MicrosecondsToTimestamp(row.ColumnInt(3));
  job.set_owner(std::string(row.ColumnText(4)));
  DROVER_RETURN_IF_ERROR(OpenSpec(secrets, job.id(), *job.mutable_spec()));
  return job;
}

absl::Status OpenConnection(Db& db) { return db.Exec(kConnectionPragmas); }

}  // namespace

// What the writer thread owns: the write connection and its prepared statements.
struct SqliteStore::Writer {
  std::unique_ptr<Db> db;
  const SecretBox* secrets = nullptr;
  std::unique_ptr<Statement> begin, commit, rollback;
  std::unique_ptr<Statement> savepoint, release, rollback_to;
  std::unique_ptr<Statement> find_by_key, insert_job, insert_tag, update_status, job_version, select_job;
};

// One queued write. Apply runs inside the batch's transaction (under a savepoint, so a
// failing write leaves the others of the batch intact); Finish runs after the commit with
// the write's own error, or the commit's.
class SqliteStore::WriteOp {
 public:
  virtual ~WriteOp() = default;
  virtual absl::Status Apply(Writer& w) = 0;
  virtual void Finish(absl::Status status) && = 0;
};

namespace {

class CreateJobOp final : public SqliteStore::WriteOp {
 public:
  CreateJobOp(v1::Job job, Store::CreateJobCallback done)
      : job_(std::move(job)), done_(std::move(done)) {}

  absl::Status Apply(SqliteStore::Writer& w) override {
    std::string spec = SerializeDeterministic(job_.spec());
    const std::string& key = job_.spec().idempotency_key();
    if (!key.empty()) {
      Statement& find = *w.find_by_key;
      find.Reset();
      find.Bind(1, key);
      DROVER_ASSIGN_OR_RETURN(bool found, find.Step());
      if (found) {
        DROVER_ASSIGN_OR_RETURN(v1::Job existing, JobFromRow(find, w.secrets));
        if (existing.owner() != job_.owner()) {
          return absl::AlreadyExistsError(absl::StrCat(
              "spec.idempotency_key: '", key,
              "' was already used by another user; use a key of your own"));
        }
        if (SerializeDeterministic(existing.spec()) != spec) {
          return absl::AlreadyExistsError(absl::StrCat(
              "spec.idempotency_key: '", key, "' was already used for job '", existing.id(),
              "' with a different spec; use a new key for a different job"));
        }
        result_ = CreateJobResult{std::move(existing), false};
        find.Reset();
        return absl::OkStatus();
      }
      find.Reset();
    }
    Statement& insert = *w.insert_job;
    insert.Reset();
    if (key.empty()) {
      insert.BindNull(1);
    } else {
      insert.Bind(1, key);
    }
    insert.Bind(2, static_cast<int64_t>(job_.status().state()))
        .Bind(3, job_.spec().experiment())
        .Bind(4, static_cast<int64_t>(job_.spec().priority()))
        .Bind(5, job_.status().version())
        .Bind(6, TimeUtil::TimestampToMicroseconds(job_.create_time()))
        .BindBlob(7, w.secrets == nullptr
                         ? spec
                         : SerializeDeterministic(SealedSpec(w.secrets, job_.spec())))
        .BindBlob(8, SerializeDeterministic(job_.status()))
        .Bind(9, job_.owner());
    DROVER_RETURN_IF_ERROR(insert.Run());
    int64_t seq = sqlite3_last_insert_rowid(w.db->raw());
    for (const auto& [tag_key, tag_value] : job_.spec().tags()) {
      Statement& tag = *w.insert_tag;
      tag.Reset();
      tag.Bind(1, seq).Bind(2, tag_key).Bind(3, tag_value);
      DROVER_RETURN_IF_ERROR(tag.Run());
    }
    job_.set_id(FormatJobId(seq));
    result_ = CreateJobResult{std::move(job_), true};
    return absl::OkStatus();
  }

  void Finish(absl::Status status) && override {
    if (status.ok()) {
      std::move(done_)(std::move(result_));
    } else {
      std::move(done_)(std::move(status));
    }
  }

 private:
  v1::Job job_;
  Store::CreateJobCallback done_;
  CreateJobResult result_;
};

class UpdateStatusOp final : public SqliteStore::WriteOp {
 public:
  UpdateStatusOp(int64_t seq, std::string job_id, int64_t expected_version, v1::JobStatus status,
                 Store::UpdateCallback done)
      : seq_(seq),
        job_id_(std::move(job_id)),
        expected_version_(expected_version),
        status_(std::move(status)),
        done_(std::move(done)) {}

  absl::Status Apply(SqliteStore::Writer& w) override {
    Statement& update = *w.update_status;
    update.Reset();
    update.Bind(1, static_cast<int64_t>(status_.state()))
        .Bind(2, status_.version())
        .BindBlob(3, SerializeDeterministic(status_))
        .Bind(4, seq_)
        .Bind(5, expected_version_);
    DROVER_RETURN_IF_ERROR(update.Run());
    if (sqlite3_changes(w.db->raw()) != 1) {
      Statement& version = *w.job_version;
      version.Reset();
      version.Bind(1, seq_);
      DROVER_ASSIGN_OR_RETURN(bool found, version.Step());
      if (!found) return absl::NotFoundError(absl::StrCat("job '", job_id_, "' does not exist"));
      int64_t current = version.ColumnInt(0);
      version.Reset();
      return absl::AbortedError(absl::StrCat("job '", job_id_, "' changed (version ", current,
                                             ", expected ", expected_version_,
                                             "); read it again and retry"));
    }
    Statement& select = *w.select_job;
    select.Reset();
    select.Bind(1, seq_);
    DROVER_ASSIGN_OR_RETURN(bool found, select.Step());
    if (!found) return absl::InternalError(absl::StrCat("job '", job_id_, "' vanished"));
    DROVER_ASSIGN_OR_RETURN(job_, JobFromRow(select, w.secrets));
    select.Reset();
    return absl::OkStatus();
  }

  void Finish(absl::Status status) && override {
    if (!status.ok()) {
      std::move(done_)(std::move(status));
      return;
    }
    std::move(done_)(std::move(job_));
  }

 private:
  int64_t seq_;
  std::string job_id_;
  int64_t expected_version_;
  v1::JobStatus status_;
  Store::UpdateCallback done_;
  v1::Job job_;  // as committed
};

// A write given as a function of the writer's connection.
class FunctionOp final : public SqliteStore::WriteOp {
 public:
  using Fn = absl::AnyInvocable<absl::Status(SqliteStore::Writer&)>;
  FunctionOp(Fn apply, Store::DoneCallback done)
      : apply_(std::move(apply)), done_(std::move(done)) {}
  absl::Status Apply(SqliteStore::Writer& w) override { return apply_(w); }
  void Finish(absl::Status status) && override { std::move(done_)(std::move(status)); }

 private:
  Fn apply_;
  Store::DoneCallback done_;
};

}  // namespace

SqliteStore::SqliteStore(SqliteStoreOptions options)
    : options_(std::move(options)),
      health_("database", std::filesystem::path(options_.path).parent_path().string(),
              options_.on_write_error) {}

namespace {

// Seals the options of datastores stored before droverd sealed them (or while it had no
// key), in one transaction: from then on drover.db holds no datastore credential in clear.
absl::Status SealStoredDatastores(Db& db, const SecretBox& secrets) {
  DROVER_ASSIGN_OR_RETURN(auto select, db.Prepare("SELECT name, datastore FROM datastores"));
  std::vector<v1::Datastore> unsealed;
  while (true) {
    DROVER_ASSIGN_OR_RETURN(bool row, select->Step());
    if (!row) break;
    absl::string_view bytes = select->ColumnBlob(1);
    v1::Datastore datastore;
    if (!datastore.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) continue;
    for (const auto& [key, value] : datastore.rclone_options()) {
      if (!SecretBox::IsSealed(value)) {
        unsealed.push_back(std::move(datastore));
        break;
      }
    }
  }
  select.reset();
  if (unsealed.empty()) return absl::OkStatus();
  DROVER_RETURN_IF_ERROR(db.Exec("BEGIN IMMEDIATE"));
  for (v1::Datastore& datastore : unsealed) {
    for (auto& [key, value] : *datastore.mutable_rclone_options()) {
      if (!SecretBox::IsSealed(value)) value = secrets.Seal(value, OptionContext(datastore.name(), key));
    }
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

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(SqliteStoreOptions options) {
  auto store = std::unique_ptr<SqliteStore>(new SqliteStore(std::move(options)));
  DROVER_RETURN_IF_ERROR(store->StartWriter());
  return store;
}

absl::Status SqliteStore::StartWriter() {
  auto w = std::make_unique<Writer>();
  w->secrets = options_.secrets;
  DROVER_ASSIGN_OR_RETURN(w->db, Db::Open(options_.path));
  DROVER_RETURN_IF_ERROR(OpenConnection(*w->db));
  DROVER_ASSIGN_OR_RETURN(int found_version, MigrateSchema(*w->db));
  if (found_version != LatestSchemaVersion()) {
    Log(LogLevel::kInfo, "schema_migrated",
        {{"path", options_.path}, {"from", found_version}, {"to", LatestSchemaVersion()}});
  }
  if (options_.secrets != nullptr) DROVER_RETURN_IF_ERROR(SealStoredDatastores(*w->db, *options_.secrets));
  DROVER_ASSIGN_OR_RETURN(w->begin, w->db->Prepare("BEGIN IMMEDIATE"));
  DROVER_ASSIGN_OR_RETURN(w->commit, w->db->Prepare("COMMIT"));
  DROVER_ASSIGN_OR_RETURN(w->rollback, w->db->Prepare("ROLLBACK"));
  DROVER_ASSIGN_OR_RETURN(w->savepoint, w->db->Prepare("SAVEPOINT op"));
  DROVER_ASSIGN_OR_RETURN(w->release, w->db->Prepare("RELEASE op"));
  DROVER_ASSIGN_OR_RETURN(w->rollback_to, w->db->Prepare("ROLLBACK TO op"));
  DROVER_ASSIGN_OR_RETURN(
      w->find_by_key,
      w->db->Prepare(absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE idempotency_key = ?")));
  DROVER_ASSIGN_OR_RETURN(
      w->insert_job,
      w->db->Prepare("INSERT INTO jobs (idempotency_key, state, experiment, priority, version, "
                     "create_time_us, spec, status, owner) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"));
  DROVER_ASSIGN_OR_RETURN(
      w->insert_tag, w->db->Prepare("INSERT INTO job_tags (seq, key, value) VALUES (?, ?, ?)"));
  DROVER_ASSIGN_OR_RETURN(
      w->update_status,
      w->db->Prepare("UPDATE jobs SET state = ?, version = ?, status = ? "
                     "WHERE seq = ? AND version = ?"));
  DROVER_ASSIGN_OR_RETURN(w->job_version,
                          w->db->Prepare("SELECT version FROM jobs WHERE seq = ?"));
  DROVER_ASSIGN_OR_RETURN(
      w->select_job,
      w->db->Prepare(absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE seq = ?")));
  writer_ = std::move(w);
  writer_thread_ = std::thread([this] { WriterLoop(); });
  return absl::OkStatus();
}

SqliteStore::~SqliteStore() { Close(); }

void SqliteStore::Close() {
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return;
    closing_ = true;
  }
  if (writer_thread_.joinable()) writer_thread_.join();
  absl::MutexLock lock(&mu_);
  closed_ = true;
  writer_.reset();
}

void SqliteStore::Enqueue(std::unique_ptr<WriteOp> op) {
  {
    absl::MutexLock lock(&mu_);
    if (!closing_) {
      queue_.push_back(std::move(op));
      return;
    }
  }
  std::move(*op).Finish(absl::UnavailableError("droverd is shutting down; retry the call"));
}

void SqliteStore::CreateJob(v1::Job job, CreateJobCallback done) {
  Enqueue(std::make_unique<CreateJobOp>(std::move(job), std::move(done)));
}

void SqliteStore::UpdateJobStatus(std::string job_id, int64_t expected_version,
                                  v1::JobStatus status, UpdateCallback done) {
  absl::StatusOr<int64_t> seq = ParseJobId(job_id);
  if (!seq.ok()) {
    std::move(done)(seq.status());
    return;
  }
  Enqueue(std::make_unique<UpdateStatusOp>(*seq, std::move(job_id), expected_version,
                                           std::move(status), std::move(done)));
}

void SqliteStore::Barrier(DoneCallback done) {
  Enqueue(std::make_unique<FunctionOp>([](Writer&) { return absl::OkStatus(); }, std::move(done)));
}

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

void SqliteStore::PutNodeAdminState(NodeAdminState state, DoneCallback done) {
  Enqueue(std::make_unique<FunctionOp>(
      [state = std::move(state)](Writer& w) -> absl::Status {
        DROVER_ASSIGN_OR_RETURN(
            auto put, w.db->Prepare("INSERT OR REPLACE INTO node_admin "
                                    "(name, draining, reason, set_time_us) VALUES (?, ?, ?, ?)"));
        put->Bind(1, state.node)
            .Bind(2, int64_t{state.draining ? 1 : 0})
            .Bind(3, state.reason)
            .Bind(4, absl::ToUnixMicros(state.set_time));
        return put->Run();
      },
      std::move(done)));
}

void SqliteStore::DeleteNodeAdminState(std::string node, DoneCallback done) {
  Enqueue(std::make_unique<FunctionOp>(
      [node = std::move(node)](Writer& w) -> absl::Status {
        DROVER_ASSIGN_OR_RETURN(auto del, w.db->Prepare("DELETE FROM node_admin WHERE name = ?"));
        del->Bind(1, node);
        return del->Run();
      },
      std::move(done)));
}

absl::StatusOr<std::vector<NodeAdminState>> SqliteStore::LoadNodeAdminStates() {
  return WithReader([&](Db& db) -> absl::StatusOr<std::vector<NodeAdminState>> {
    DROVER_ASSIGN_OR_RETURN(
        auto select,
        db.Prepare("SELECT name, draining, reason, set_time_us FROM node_admin ORDER BY name"));
    std::vector<NodeAdminState> states;
    while (true) {
      DROVER_ASSIGN_OR_RETURN(bool row, select->Step());
      if (!row) break;
      states.push_back({.node = select->ColumnText(0),
                        .draining = select->ColumnInt(1) != 0,
                        .reason = select->ColumnText(2),
                        .set_time = absl::FromUnixMicros(select->ColumnInt(3))});
    }
    return states;
  });
}

namespace {

constexpr char kJoinTokenColumns[] =
    "hash, node, create_us, expire_us, used_us, used_by, revoked";

JoinToken JoinTokenFromRow(const Statement& row) {
  return {.hash = row.ColumnText(0),
          .node = row.ColumnText(1),
          .create_time = absl::FromUnixMicros(row.ColumnInt(2)),
          .expire_time = absl::FromUnixMicros(row.ColumnInt(3)),
          .used_time = absl::FromUnixMicros(row.ColumnInt(4)),
          .used_by = row.ColumnText(5),
          .revoked = row.ColumnInt(6) != 0};
}

// Uses a join token: read, check, mark used, in the writer's transaction.
class UseJoinTokenOp final : public SqliteStore::WriteOp {
 public:
  UseJoinTokenOp(std::string hash, std::string node, absl::Time now, Store::JoinTokenCallback done)
      : hash_(std::move(hash)), node_(std::move(node)), now_(now), done_(std::move(done)) {}

  absl::Status Apply(SqliteStore::Writer& w) override;

  void Finish(absl::Status status) && override {
    if (status.ok()) {
      std::move(done_)(std::move(token_));
    } else {
      std::move(done_)(std::move(status));
    }
  }

 private:
  std::string hash_;
  std::string node_;
  absl::Time now_;
  Store::JoinTokenCallback done_;
  JoinToken token_;
};

}  // namespace

absl::Status UseJoinTokenOp::Apply(SqliteStore::Writer& w) {
  DROVER_ASSIGN_OR_RETURN(
      auto select,
      w.db->Prepare(absl::StrCat("SELECT ", kJoinTokenColumns, " FROM join_tokens WHERE hash = ?")));
  select->Bind(1, hash_);
  DROVER_ASSIGN_OR_RETURN(bool found, select->Step());
  if (!found) return absl::NotFoundError("the join token is unknown to this droverd");
  token_ = JoinTokenFromRow(*select);
  const std::string name = token_.hash.substr(0, 12);
  if (token_.revoked) {
    return absl::FailedPreconditionError(absl::StrCat("join token ", name, " was revoked"));
  }
  if (token_.used_time != absl::UnixEpoch()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "join token ", name, " was already used (by node '", token_.used_by,
        "'); a token joins one node once: create another with 'drover node token create'"));
  }
  if (now_ >= token_.expire_time) {
    return absl::FailedPreconditionError(absl::StrCat(
        "join token ", name, " expired at ", absl::FormatTime(token_.expire_time),
        "; create another with 'drover node token create'"));
  }
  if (!token_.node.empty() && token_.node != node_) {
    return absl::FailedPreconditionError(absl::StrCat("join token ", name, " is for node '",
                                                      token_.node, "', not '", node_, "'"));
  }
  DROVER_ASSIGN_OR_RETURN(
      auto use, w.db->Prepare("UPDATE join_tokens SET used_us = ?, used_by = ? WHERE hash = ?"));
  use->Bind(1, absl::ToUnixMicros(now_)).Bind(2, node_).Bind(3, hash_);
  return use->Run();
}

void SqliteStore::PutJoinToken(JoinToken token, DoneCallback done) {
  Enqueue(std::make_unique<FunctionOp>(
      [token = std::move(token)](Writer& w) -> absl::Status {
        DROVER_ASSIGN_OR_RETURN(auto find, w.db->Prepare("SELECT 1 FROM join_tokens WHERE hash = ?"));
        find->Bind(1, token.hash);
        DROVER_ASSIGN_OR_RETURN(bool found, find->Step());
        if (found) return absl::AlreadyExistsError("a join token with this hash exists");
        DROVER_ASSIGN_OR_RETURN(
            auto put, w.db->Prepare(absl::StrCat("INSERT INTO join_tokens (", kJoinTokenColumns,
                                                 ") VALUES (?, ?, ?, ?, ?, ?, ?)")));
        put->Bind(1, token.hash)
            .Bind(2, token.node)
            .Bind(3, absl::ToUnixMicros(token.create_time))
            .Bind(4, absl::ToUnixMicros(token.expire_time))
            .Bind(5, absl::ToUnixMicros(token.used_time))
            .Bind(6, token.used_by)
            .Bind(7, int64_t{token.revoked ? 1 : 0});
        return put->Run();
      },
      std::move(done)));
}

void SqliteStore::UseJoinToken(std::string hash, std::string node, absl::Time now,
                               JoinTokenCallback done) {
  Enqueue(std::make_unique<UseJoinTokenOp>(std::move(hash), std::move(node), now, std::move(done)));
}

void SqliteStore::RevokeJoinTokens(std::string prefix, DoneCallback done) {
  Enqueue(std::make_unique<FunctionOp>(
      [prefix = std::move(prefix)](Writer& w) -> absl::Status {
        if (prefix.size() < 8 || prefix.find_first_not_of("0123456789abcdef") != std::string::npos) {
          return absl::InvalidArgumentError(absl::StrCat(
              "'", prefix, "' does not name a join token (8 or more hex digits, see 'drover node "
              "token list')"));
        }
        DROVER_ASSIGN_OR_RETURN(
            auto revoke, w.db->Prepare("UPDATE join_tokens SET revoked = 1 "
                                       "WHERE substr(hash, 1, ?) = ? AND used_us = 0"));
        revoke->Bind(1, static_cast<int64_t>(prefix.size())).Bind(2, prefix);
        DROVER_RETURN_IF_ERROR(revoke->Run());
        if (sqlite3_changes(w.db->raw()) == 0) {
          return absl::NotFoundError(
              absl::StrCat("no unused join token starts with '", prefix, "'"));
        }
        return absl::OkStatus();
      },
      std::move(done)));
}

absl::StatusOr<std::vector<JoinToken>> SqliteStore::LoadJoinTokens() {
  return WithReader([&](Db& db) -> absl::StatusOr<std::vector<JoinToken>> {
    DROVER_ASSIGN_OR_RETURN(
        auto select, db.Prepare(absl::StrCat("SELECT ", kJoinTokenColumns,
                                             " FROM join_tokens ORDER BY create_us DESC")));
    std::vector<JoinToken> tokens;
    while (true) {
      DROVER_ASSIGN_OR_RETURN(bool row, select->Step());
      if (!row) break;
      tokens.push_back(JoinTokenFromRow(*select));
    }
    return tokens;
  });
}

void SqliteStore::PutNodeCertificate(NodeCertificateRecord record, DoneCallback done) {
  Enqueue(std::make_unique<FunctionOp>(
      [record = std::move(record)](Writer& w) -> absl::Status {
        DROVER_ASSIGN_OR_RETURN(
            auto put, w.db->Prepare("INSERT OR IGNORE INTO node_certificates "
                                    "(fingerprint, node, not_after_us, recorded_us, revoked_us) "
                                    "VALUES (?, ?, ?, ?, ?)"));
        put->Bind(1, record.fingerprint)
            .Bind(2, record.node)
            .Bind(3, absl::ToUnixMicros(record.not_after))
            .Bind(4, absl::ToUnixMicros(record.recorded))
            .Bind(5, absl::ToUnixMicros(record.revoked));
        return put->Run();
      },
      std::move(done)));
}

void SqliteStore::RevokeNodeCertificates(std::string node, absl::Time now, DoneCallback done) {
  Enqueue(std::make_unique<FunctionOp>(
      [node = std::move(node), now](Writer& w) -> absl::Status {
        DROVER_ASSIGN_OR_RETURN(
            auto revoke, w.db->Prepare("UPDATE node_certificates SET revoked_us = ? "
                                       "WHERE node = ? AND revoked_us = 0"));
        revoke->Bind(1, absl::ToUnixMicros(now)).Bind(2, node);
        return revoke->Run();
      },
      std::move(done)));
}

absl::StatusOr<std::vector<NodeCertificateRecord>> SqliteStore::LoadNodeCertificates() {
  return WithReader([&](Db& db) -> absl::StatusOr<std::vector<NodeCertificateRecord>> {
    DROVER_ASSIGN_OR_RETURN(
        auto select, db.Prepare("SELECT fingerprint, node, not_after_us, recorded_us, revoked_us "
                                "FROM node_certificates ORDER BY node, recorded_us"));
    std::vector<NodeCertificateRecord> records;
    while (true) {
      DROVER_ASSIGN_OR_RETURN(bool row, select->Step());
      if (!row) break;
      records.push_back({.fingerprint = select->ColumnText(0),
                         .node = select->ColumnText(1),
                         .not_after = absl::FromUnixMicros(select->ColumnInt(2)),
                         .recorded = absl::FromUnixMicros(select->ColumnInt(3)),
                         .revoked = absl::FromUnixMicros(select->ColumnInt(4))});
    }
    return records;
  });
}

void SqliteStore::PutNodeLossPause(std::optional<NodeLossPause> pause, DoneCallback done) {
  Enqueue(std::make_unique<FunctionOp>(
      [pause = std::move(pause)](Writer& w) -> absl::Status {
        DROVER_RETURN_IF_ERROR(
            w.db->Exec("DELETE FROM node_loss_pause; DELETE FROM node_loss_pause_nodes;"));
        if (!pause.has_value()) return absl::OkStatus();
        DROVER_ASSIGN_OR_RETURN(
            auto put, w.db->Prepare("INSERT INTO node_loss_pause (id, paused_since_us) "
                                    "VALUES (1, ?)"));
        put->Bind(1, absl::ToUnixMicros(pause->paused_since));
        DROVER_RETURN_IF_ERROR(put->Run());
        DROVER_ASSIGN_OR_RETURN(
            auto member,
            w.db->Prepare("INSERT OR REPLACE INTO node_loss_pause_nodes "
                          "(name, role, listed, last_seen_us, lost_at_us, node) "
                          "VALUES (?, ?, ?, ?, ?, ?)"));
        for (const NodeLossPause::Member& m : pause->nodes) {
          member->Reset();
          member->Bind(1, m.name)
              .Bind(2, static_cast<int64_t>(m.role))
              .Bind(3, int64_t{m.listed ? 1 : 0})
              .Bind(4, absl::ToUnixMicros(m.last_seen))
              .Bind(5, absl::ToUnixMicros(m.lost_at))
              .BindBlob(6, SerializeDeterministic(m.node));
          DROVER_RETURN_IF_ERROR(member->Run());
        }
        return absl::OkStatus();
      },
      std::move(done)));
}

absl::StatusOr<std::optional<NodeLossPause>> SqliteStore::LoadNodeLossPause() {
  return WithReader([&](Db& db) -> absl::StatusOr<std::optional<NodeLossPause>> {
    DROVER_ASSIGN_OR_RETURN(auto since,
                            db.Prepare("SELECT paused_since_us FROM node_loss_pause"));
    DROVER_ASSIGN_OR_RETURN(bool paused, since->Step());
    if (!paused) return std::nullopt;
    NodeLossPause pause;
    pause.paused_since = absl::FromUnixMicros(since->ColumnInt(0));
    DROVER_ASSIGN_OR_RETURN(
        auto select, db.Prepare("SELECT name, role, listed, last_seen_us, lost_at_us, node "
                                "FROM node_loss_pause_nodes ORDER BY name"));
    while (true) {
      DROVER_ASSIGN_OR_RETURN(bool row, select->Step());
      if (!row) break;
      NodeLossPause::Member m;
      m.name = select->ColumnText(0);
      const int64_t role = select->ColumnInt(1);
      absl::string_view bytes = select->ColumnBlob(5);
      if (role < 0 || role > static_cast<int64_t>(NodeLossPause::Role::kSilent) ||
          !m.node.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
        return absl::DataLossError(absl::StrCat(
            "the stored pause of node-loss handling has an unreadable record of node '", m.name,
            "'"));
      }
      m.role = static_cast<NodeLossPause::Role>(role);
      m.listed = select->ColumnInt(2) != 0;
      m.last_seen = absl::FromUnixMicros(select->ColumnInt(3));
      m.lost_at = absl::FromUnixMicros(select->ColumnInt(4));
      pause.nodes.push_back(std::move(m));
    }
    return pause;
  });
}

void SqliteStore::WriterLoop() {
  std::vector<std::unique_ptr<WriteOp>> batch;
  while (true) {
    batch.clear();
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](SqliteStore* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu_) {
            return !s->queue_.empty() || s->closing_;
          },
          this));
      if (queue_.empty()) return;  // closing and drained
      while (!queue_.empty() && static_cast<int>(batch.size()) < options_.max_batch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    (void)CommitBatch(batch);  // failures already went to each write's callback
  }
}

absl::Status SqliteStore::CommitBatch(std::vector<std::unique_ptr<WriteOp>>& batch) {
  Writer& w = *writer_;
  std::vector<absl::Status> results(batch.size());
  auto fail_all = [&](const absl::Status& error) {
    // Ends the transaction whether or not SQLite already rolled it back (it does for some
    // I/O errors), so the connection is ready for the next batch.
    (void)w.rollback->Run();
    w.rollback->Reset();
    absl::Status status = health_.Failed(error, static_cast<int64_t>(batch.size()));
    if (status == error) {  // not the disk's doing: WriteHealth did not log it
      Log(LogLevel::kError, "store_commit_failed",
          {{"writes", batch.size()}, {"error", status.ToString()}});
    }
    for (auto& op : batch) std::move(*op).Finish(status);
    return status;
  };
  const int64_t changes_before = sqlite3_total_changes64(w.db->raw());
  w.begin->Reset();
  if (absl::Status s = w.begin->Run(); !s.ok()) {
    w.begin->Reset();
    return fail_all(s);
  }
  w.begin->Reset();
  for (size_t i = 0; i < batch.size(); ++i) {
    w.savepoint->Reset();
    if (absl::Status s = w.savepoint->Run(); !s.ok()) return fail_all(s);
    results[i] = batch[i]->Apply(w);
    if (!results[i].ok()) {
      w.rollback_to->Reset();
      if (absl::Status s = w.rollback_to->Run(); !s.ok()) return fail_all(s);
      // A full disk or an I/O error fails the whole batch rather than only this write.
      if (absl::IsResourceExhausted(results[i]) || absl::IsUnavailable(results[i])) {
        return fail_all(results[i]);
      }
    }
    w.release->Reset();
    if (absl::Status s = w.release->Run(); !s.ok()) return fail_all(s);
  }
  w.commit->Reset();
  absl::Status committed = w.commit->Run();
  w.commit->Reset();
  if (!committed.ok()) return fail_all(committed);
  // Only a commit that wrote says the disk takes writes again (a batch of refused updates
  // or barriers commits nothing).
  if (sqlite3_total_changes64(w.db->raw()) != changes_before) health_.Succeeded();
  {
    absl::MutexLock lock(&mu_);
    stats_.commits += 1;
    stats_.writes += static_cast<int64_t>(batch.size());
  }
  for (size_t i = 0; i < batch.size(); ++i) std::move(*batch[i]).Finish(results[i]);
  return absl::OkStatus();
}

SqliteStore::Stats SqliteStore::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

absl::StatusOr<std::unique_ptr<Db>> SqliteStore::AcquireReader() {
  {
    absl::MutexLock lock(&readers_mu_);
    if (!idle_readers_.empty()) {
      std::unique_ptr<Db> db = std::move(idle_readers_.back());
      idle_readers_.pop_back();
      return db;
    }
  }
  DROVER_ASSIGN_OR_RETURN(std::unique_ptr<Db> db, Db::Open(options_.path));
  DROVER_RETURN_IF_ERROR(db->Exec("PRAGMA busy_timeout = 10000; PRAGMA query_only = ON;"));
  return db;
}

void SqliteStore::ReleaseReader(std::unique_ptr<Db> db) {
  absl::MutexLock lock(&readers_mu_);
  if (idle_readers_.size() < 8) idle_readers_.push_back(std::move(db));
}

template <typename Fn>
auto SqliteStore::WithReader(Fn&& fn) -> decltype(fn(std::declval<Db&>())) {
  absl::StatusOr<std::unique_ptr<Db>> db = AcquireReader();
  if (!db.ok()) return db.status();
  auto result = fn(**db);
  ReleaseReader(*std::move(db));
  return result;
}

void SqliteStore::CreateUser(UserRecord record, DoneCallback done) {
  Enqueue(std::make_unique<FunctionOp>(
      [record = std::move(record)](Writer& w) -> absl::Status {
        DROVER_ASSIGN_OR_RETURN(auto find, w.db->Prepare("SELECT 1 FROM users WHERE name = ?"));
        find->Bind(1, record.user.name());
        DROVER_ASSIGN_OR_RETURN(bool found, find->Step());
        if (found) {
          return absl::AlreadyExistsError(absl::StrCat(
              "user '", record.user.name(),
              "' already exists; see drover user list, or give them a new token with drover "
              "user token ", record.user.name()));
        }
        DROVER_ASSIGN_OR_RETURN(
            auto put,
            w.db->Prepare("INSERT INTO users (name, token_sha256, user) VALUES (?, ?, ?)"));
        put->Bind(1, record.user.name());
        if (record.token_sha256.empty()) {
          put->BindNull(2);
        } else {
          put->Bind(2, record.token_sha256);
        }
        put->BindBlob(3, SerializeDeterministic(record.user));
        return put->Run();
      },
      std::move(done)));
}

void SqliteStore::SetUserToken(std::string name, std::string token_sha256, UserCallback done) {
  auto updated = std::make_shared<v1::User>();
  Enqueue(std::make_unique<FunctionOp>(
      [name = std::move(name), token_sha256 = std::move(token_sha256),
       updated](Writer& w) -> absl::Status {
        DROVER_ASSIGN_OR_RETURN(auto find, w.db->Prepare("SELECT user FROM users WHERE name = ?"));
        find->Bind(1, name);
        DROVER_ASSIGN_OR_RETURN(bool found, find->Step());
        if (!found) {
          return absl::NotFoundError(
              absl::StrCat("user '", name, "' does not exist; see drover user list"));
        }
        absl::string_view bytes = find->ColumnBlob(0);
        if (!updated->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
          return absl::DataLossError(absl::StrCat("user '", name, "' has an unreadable record"));
        }
        updated->set_revoked(token_sha256.empty());
        DROVER_ASSIGN_OR_RETURN(
            auto put, w.db->Prepare("UPDATE users SET token_sha256 = ?, user = ? WHERE name = ?"));
        if (token_sha256.empty()) {
          put->BindNull(1);
        } else {
          put->Bind(1, token_sha256);
        }
        put->BindBlob(2, SerializeDeterministic(*updated)).Bind(3, name);
        return put->Run();
      },
      [updated, done = std::move(done)](absl::Status status) mutable {
        if (status.ok()) {
          std::move(done)(*updated);
        } else {
          std::move(done)(std::move(status));
        }
      }));
}

absl::StatusOr<std::vector<v1::User>> SqliteStore::LoadUsers() {
  return WithReader([&](Db& db) -> absl::StatusOr<std::vector<v1::User>> {
    DROVER_ASSIGN_OR_RETURN(auto select, db.Prepare("SELECT user FROM users ORDER BY name"));
    std::vector<v1::User> users;
    while (true) {
      DROVER_ASSIGN_OR_RETURN(bool row, select->Step());
      if (!row) break;
      absl::string_view bytes = select->ColumnBlob(0);
      v1::User user;
      if (!user.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
        return absl::DataLossError("a stored user is unreadable");
      }
      users.push_back(std::move(user));
    }
    return users;
  });
}

absl::StatusOr<v1::User> SqliteStore::FindUserByToken(absl::string_view token_sha256) {
  return WithReader([&](Db& db) -> absl::StatusOr<v1::User> {
    DROVER_ASSIGN_OR_RETURN(auto select,
                            db.Prepare("SELECT user FROM users WHERE token_sha256 = ?"));
    select->Bind(1, std::string(token_sha256));
    DROVER_ASSIGN_OR_RETURN(bool found, select->Step());
    if (!found) return absl::NotFoundError("no user has this token");
    absl::string_view bytes = select->ColumnBlob(0);
    v1::User user;
    if (!user.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
      return absl::DataLossError("a stored user is unreadable");
    }
    return user;
  });
}

void SqliteStore::AddBlobUploader(std::string digest, std::string user, int64_t size,
                                  DoneCallback done) {
  Enqueue(std::make_unique<FunctionOp>(
      [digest = std::move(digest), user = std::move(user), size](Writer& w) -> absl::Status {
        // A row an older droverd wrote without its size gets it now.
        DROVER_ASSIGN_OR_RETURN(
            auto put, w.db->Prepare("INSERT INTO blob_uploaders (digest, user, size) "
                                    "VALUES (?, ?, ?) ON CONFLICT (digest, user) DO UPDATE "
                                    "SET size = excluded.size WHERE size < 0"));
        put->Bind(1, digest).Bind(2, user).Bind(3, size);
        return put->Run();
      },
      std::move(done)));
}

absl::StatusOr<BlobHoldings> SqliteStore::BlobHoldingsOf(absl::string_view user) {
  return WithReader([&](Db& db) -> absl::StatusOr<BlobHoldings> {
    DROVER_ASSIGN_OR_RETURN(
        auto select, db.Prepare("SELECT digest, size FROM blob_uploaders WHERE user = ?"));
    select->Bind(1, std::string(user));
    BlobHoldings holdings;
    while (true) {
      DROVER_ASSIGN_OR_RETURN(bool row, select->Step());
      if (!row) break;
      int64_t size = select->ColumnInt(1);
      if (size >= 0) {
        holdings.bytes += size;
      } else {
        holdings.unsized.emplace_back(select->ColumnText(0));
      }
    }
    return holdings;
  });
}

void SqliteStore::ForgetBlobs(std::vector<std::string> digests, DoneCallback done) {
  Enqueue(std::make_unique<FunctionOp>(
      [digests = std::move(digests)](Writer& w) -> absl::Status {
        DROVER_ASSIGN_OR_RETURN(auto forget,
                                w.db->Prepare("DELETE FROM blob_uploaders WHERE digest = ?"));
        for (const std::string& digest : digests) {
          forget->Reset();
          forget->Bind(1, digest);
          if (absl::Status s = forget->Run(); !s.ok()) return s;
        }
        return absl::OkStatus();
      },
      std::move(done)));
}

absl::StatusOr<bool> SqliteStore::IsBlobUploader(absl::string_view digest,
                                                 absl::string_view user) {
  return WithReader([&](Db& db) -> absl::StatusOr<bool> {
    DROVER_ASSIGN_OR_RETURN(
        auto select, db.Prepare("SELECT 1 FROM blob_uploaders WHERE digest = ? AND user = ?"));
    select->Bind(1, std::string(digest)).Bind(2, std::string(user));
    return select->Step();
  });
}

namespace {

constexpr char kAuditColumns[] = "id, time_us, who, who_kind, peer, method, target, code, message";

// `text` with LIKE's wildcards and the escape character escaped by '\'.
std::string EscapeLike(absl::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '%' || c == '_' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

}  // namespace

void SqliteStore::AppendAudit(AuditRecord record, DoneCallback done) {
  Enqueue(std::make_unique<FunctionOp>(
      [record = std::move(record)](Writer& w) -> absl::Status {
        DROVER_ASSIGN_OR_RETURN(
            auto put, w.db->Prepare("INSERT INTO audit (time_us, who, who_kind, peer, method, "
                                    "target, code, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"));
        put->Bind(1, absl::ToUnixMicros(record.time))
            .Bind(2, record.who)
            .Bind(3, record.who_kind)
            .Bind(4, record.peer)
            .Bind(5, record.method)
            .Bind(6, record.target)
            .Bind(7, static_cast<int64_t>(record.code))
            .Bind(8, record.message);
        return put->Run();
      },
      std::move(done)));
}

absl::StatusOr<AuditPage> SqliteStore::ListAudit(const AuditQuery& query) {
  std::string sql = absl::StrCat("SELECT ", kAuditColumns, " FROM audit WHERE 1");
  if (query.before_id > 0) absl::StrAppend(&sql, " AND id < ?");
  if (query.since != absl::InfinitePast()) absl::StrAppend(&sql, " AND time_us >= ?");
  if (query.who.has_value()) absl::StrAppend(&sql, " AND who = ?");
  if (!query.method.empty()) {
    absl::StrAppend(&sql,
                    " AND (method = ? OR method LIKE ? ESCAPE '\\' OR method LIKE ? ESCAPE '\\')");
  }
  absl::StrAppend(&sql, " ORDER BY id DESC LIMIT ?");
  const int limit = std::clamp(query.limit, 1, 1000);
  return WithReader([&](Db& db) -> absl::StatusOr<AuditPage> {
    DROVER_ASSIGN_OR_RETURN(auto select, db.Prepare(sql));
    int index = 1;
    if (query.before_id > 0) select->Bind(index++, query.before_id);
    if (query.since != absl::InfinitePast()) {
      // Far past or future times are clamped rather than overflowing the microseconds.
      select->Bind(index++, query.since < absl::UnixEpoch() ? int64_t{0}
                                                            : absl::ToUnixMicros(query.since));
    }
    if (query.who.has_value()) select->Bind(index++, *query.who);
    if (!query.method.empty()) {
      select->Bind(index++, query.method);
      // "SubmitJob" ends "/drover.v1.JobService/SubmitJob"; "JobService/SubmitJob" too.
      select->Bind(index++, absl::StrCat("%/", EscapeLike(query.method)));
      select->Bind(index++, absl::StrCat("%.", EscapeLike(query.method)));
    }
    select->Bind(index++, static_cast<int64_t>(limit) + 1);
    AuditPage page;
    while (true) {
      DROVER_ASSIGN_OR_RETURN(bool row, select->Step());
      if (!row) break;
      if (static_cast<int>(page.records.size()) == limit) {
        page.next_before_id = page.records.back().id;
        break;
      }
      page.records.push_back({.id = select->ColumnInt(0),
                              .time = absl::FromUnixMicros(select->ColumnInt(1)),
                              .who = select->ColumnText(2),
                              .who_kind = select->ColumnText(3),
                              .peer = select->ColumnText(4),
                              .method = select->ColumnText(5),
                              .target = select->ColumnText(6),
                              .code = static_cast<int>(select->ColumnInt(7)),
                              .message = select->ColumnText(8)});
    }
    return page;
  });
}

void SqliteStore::PruneAudit(absl::Time before, int64_t keep_newest, int64_t max_removed,
                             DoneCallback done) {
  Enqueue(std::make_unique<FunctionOp>(
      [before, keep_newest, max_removed](Writer& w) -> absl::Status {
        // The oldest id to keep: the newest `keep_newest` records, of those only the ones at
        // or after `before`.
        DROVER_ASSIGN_OR_RETURN(
            auto bound, w.db->Prepare("SELECT COALESCE(("
                                      "  SELECT id FROM audit ORDER BY id DESC LIMIT 1 OFFSET ?"
                                      "), 0)"));
        bound->Bind(1, std::max<int64_t>(keep_newest, 0));
        DROVER_ASSIGN_OR_RETURN(bool found, bound->Step());
        const int64_t last_over_count = found ? bound->ColumnInt(0) : 0;
        DROVER_ASSIGN_OR_RETURN(
            auto remove, w.db->Prepare("DELETE FROM audit WHERE id IN ("
                                       "  SELECT id FROM audit WHERE id <= ? OR time_us < ? "
                                       "  ORDER BY id LIMIT ?)"));
        remove->Bind(1, last_over_count)
            .Bind(2, before < absl::UnixEpoch() ? int64_t{0} : absl::ToUnixMicros(before))
            .Bind(3, std::max<int64_t>(max_removed, 0));
        return remove->Run();
      },
      std::move(done)));
}

absl::StatusOr<v1::Job> SqliteStore::GetJob(absl::string_view job_id) {
  DROVER_ASSIGN_OR_RETURN(int64_t seq, ParseJobId(job_id));
  return WithReader([&](Db& db) -> absl::StatusOr<v1::Job> {
    DROVER_ASSIGN_OR_RETURN(
        auto select, db.Prepare(absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE seq = ?")));
    select->Bind(1, seq);
    DROVER_ASSIGN_OR_RETURN(bool found, select->Step());
    if (!found) return absl::NotFoundError(absl::StrCat("job '", job_id, "' does not exist"));
    return JobFromRow(*select, options_.secrets);
  });
}

absl::StatusOr<ListJobsPage> SqliteStore::ListJobs(const ListJobsQuery& query) {
  std::string sql = absl::StrCat("SELECT ", kJobColumns, " FROM jobs j WHERE 1");
  if (query.before_sequence > 0) absl::StrAppend(&sql, " AND j.seq < ?");
  if (!query.states.empty()) {
    absl::StrAppend(&sql, " AND j.state IN (",
                    absl::StrJoin(std::vector<std::string>(query.states.size(), "?"), ","), ")");
  }
  if (!query.experiment.empty()) absl::StrAppend(&sql, " AND j.experiment = ?");
  if (query.owner.has_value()) absl::StrAppend(&sql, " AND j.owner = ?");
  if (!query.tag_key.empty()) {
    absl::StrAppend(&sql, " AND EXISTS (SELECT 1 FROM job_tags t WHERE t.seq = j.seq AND t.key = ?",
                    query.tag_value.has_value() ? " AND t.value = ?" : "", ")");
  }
  absl::StrAppend(&sql, " ORDER BY j.seq DESC LIMIT ?");
  int page_size = query.page_size > 0 ? query.page_size : 100;
  return WithReader([&](Db& db) -> absl::StatusOr<ListJobsPage> {
    DROVER_ASSIGN_OR_RETURN(auto select, db.Prepare(sql));
    int index = 1;
    if (query.before_sequence > 0) select->Bind(index++, query.before_sequence);
    for (v1::JobStatus::State state : query.states) {
      select->Bind(index++, static_cast<int64_t>(state));
    }
    if (!query.experiment.empty()) select->Bind(index++, query.experiment);
    if (query.owner.has_value()) select->Bind(index++, *query.owner);
    if (!query.tag_key.empty()) {
      select->Bind(index++, query.tag_key);
      if (query.tag_value.has_value()) select->Bind(index++, *query.tag_value);
    }
    select->Bind(index++, static_cast<int64_t>(page_size) + 1);
    ListJobsPage page{.next_before_sequence = 0};
    while (true) {
      DROVER_ASSIGN_OR_RETURN(bool row, select->Step());
      if (!row) break;
      if (static_cast<int>(page.jobs.size()) == page_size) {
        page.next_before_sequence = select->ColumnInt(0) + 1;  // this row starts the next page
        break;
      }
      DROVER_ASSIGN_OR_RETURN(v1::Job job, JobFromRow(*select, options_.secrets));
      page.jobs.push_back(std::move(job));
    }
    return page;
  });
}

absl::StatusOr<std::vector<v1::Job>> SqliteStore::LoadUnfinishedJobs() {
  return WithReader([&](Db& db) -> absl::StatusOr<std::vector<v1::Job>> {
    DROVER_ASSIGN_OR_RETURN(
        auto select,
        db.Prepare(absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE state NOT IN (?, ?, ?) ",
                                "ORDER BY seq")));
    select->Bind(1, static_cast<int64_t>(v1::JobStatus::COMPLETED))
        .Bind(2, static_cast<int64_t>(v1::JobStatus::FAILED))
        .Bind(3, static_cast<int64_t>(v1::JobStatus::CANCELED));
    std::vector<v1::Job> jobs;
    while (true) {
      DROVER_ASSIGN_OR_RETURN(bool row, select->Step());
      if (!row) break;
      DROVER_ASSIGN_OR_RETURN(v1::Job job, JobFromRow(*select, options_.secrets));
      jobs.push_back(std::move(job));
    }
    return jobs;
  });
}

}  // namespace drover::storage
