// SqliteStore: the embedded Store, one SQLite database file in WAL mode with
// `synchronous=FULL`, so a committed transaction survives power loss.
//
// Threads: one writer thread owns the write connection and commits queued writes in
// batches (group commit): while one batch is being made durable, the next one collects, so
// concurrent submits share an fsync. Reads use a small pool of read-only connections and may
// be called from any thread. Public methods are thread-safe.
//
// Disk trouble: when the disk is full or fails a write or an fsync, the batch being
// committed is rolled back and every write in it fails (RESOURCE_EXHAUSTED or UNAVAILABLE,
// naming the database's folder and the fix); the writer goes on with the next batch, so
// writes work again as soon as the disk takes them.
#ifndef DROVER_STORAGE_SQLITE_STORE_H_
#define DROVER_STORAGE_SQLITE_STORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/pki/secret_box.h"
#include "storage/store.h"
#include "storage/write_health.h"
#include "storage/write_queue.h"

namespace drover::storage {

// A SQLite connection (storage/sqlite_db.h); only storage/*.cc see SQLite's own types.
class Db;

struct SqliteStoreOptions {
  // The database file; its folder must exist. "-wal" and "-shm" files go beside it.
  std::string path;
  // Most writes committed in one transaction.
  int max_batch = 1024;
  // Told of every write the disk refused (see WriteHealth).
  WriteErrorObserver on_write_error;
  // Seals secret values at rest (environment values a job marks secret, every rclone option
  // of a datastore) when set; readers get them back opened. Values stored unsealed (before
  // droverd sealed them, or without a box) are read as they are. Must outlive the store.
  const SecretBox* secrets = nullptr;
};

class SqliteStore final : public Store {
 public:
  // Opens or creates the database, applies pending schema migrations and starts the writer.
  // UNAVAILABLE when the file cannot be opened, FAILED_PRECONDITION when it was written by
  // a newer droverd, INTERNAL when a migration fails (the database is left unchanged).
  static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(SqliteStoreOptions options);
  ~SqliteStore() override;

  void CreateJob(v1::Job job, CreateJobCallback done) override;
  void CreateJobs(std::vector<v1::Job> jobs, CreateJobsCallback done) override;
  void UpdateJobStatus(std::string job_id, int64_t expected_version, v1::JobStatus status,
                       Durability durability, UpdateCallback done) override;
  void UpdateJobTags(std::string job_id, JobTagUpdate update, UpdateCallback done) override;
  void Barrier(DoneCallback done) override;
  void PutComputeTarget(v1::ComputeTarget target, DoneCallback done) override;
  void DeleteComputeTarget(std::string name, DoneCallback done) override;
  absl::StatusOr<std::vector<v1::ComputeTarget>> LoadComputeTargets() override;
  void PutImage(v1::Image image, DoneCallback done) override;
  void DeleteImage(std::string name, DoneCallback done) override;
  absl::StatusOr<std::vector<v1::Image>> LoadImages() override;
  void PutDatastore(v1::Datastore datastore, bool replace, DoneCallback done) override;
  void DeleteDatastore(std::string name, DoneCallback done) override;
  absl::StatusOr<std::vector<v1::Datastore>> LoadDatastores() override;
  void PutNodeAdminState(NodeAdminState state, DoneCallback done) override;
  void DeleteNodeAdminState(std::string node, DoneCallback done) override;
  absl::StatusOr<std::vector<NodeAdminState>> LoadNodeAdminStates() override;
  void PutJoinToken(JoinToken token, DoneCallback done) override;
  void UseJoinToken(std::string hash, std::string node, absl::Time now,
                    JoinTokenCallback done) override;
  void RevokeJoinTokens(std::string prefix, DoneCallback done) override;
  absl::StatusOr<std::vector<JoinToken>> LoadJoinTokens() override;
  void PutNodeCertificate(NodeCertificateRecord record, DoneCallback done) override;
  void RevokeNodeCertificates(std::string node, absl::Time now, DoneCallback done) override;
  absl::StatusOr<std::vector<NodeCertificateRecord>> LoadNodeCertificates() override;
  void PutNodeLossPause(std::optional<NodeLossPause> pause, DoneCallback done) override;
  absl::StatusOr<std::optional<NodeLossPause>> LoadNodeLossPause() override;
  void CreateUser(UserRecord record, DoneCallback done) override;
  void SetUserToken(std::string name, std::string token_sha256, UserCallback done) override;
  void SetUserBlobQuota(std::string name, int64_t bytes, UserCallback done) override;
  absl::StatusOr<std::vector<v1::User>> LoadUsers() override;
  absl::StatusOr<v1::User> FindUserByToken(absl::string_view token_sha256) override;
  void AddBlobUploader(std::string digest, std::string user, int64_t size,
                       DoneCallback done) override;
  absl::StatusOr<bool> IsBlobUploader(absl::string_view digest, absl::string_view user) override;
  absl::StatusOr<BlobHoldings> BlobHoldingsOf(absl::string_view user) override;
  void ForgetBlobs(std::vector<std::string> digests, DoneCallback done) override;
  void AppendAudit(AuditRecord record, DoneCallback done) override;
  absl::StatusOr<AuditPage> ListAudit(const AuditQuery& query) override;
  void PruneAudit(absl::Time before, int64_t keep_newest, int64_t max_removed,
                  DoneCallback done) override;
  absl::StatusOr<v1::Job> GetJob(absl::string_view job_id) override;
  absl::StatusOr<ListJobsPage> ListJobs(const ListJobsQuery& query) override;
  absl::StatusOr<std::vector<v1::Job>> LoadUnfinishedJobs() override;
  absl::Status ReadUnfinishedJobs(
      absl::FunctionRef<absl::Status(UnfinishedJobRow&)> each) override;
  void CreateSweep(v1::Sweep sweep, CreateSweepCallback done) override;
  void CreateTrials(std::string sweep_id, std::vector<v1::SweepTrial> trials,
                    std::vector<v1::Job> jobs, CreateJobsCallback done) override;
  void UpdateSweepStatus(std::string sweep_id, v1::SweepStatus status,
                         DoneCallback done) override;
  void PutTrialStop(std::string sweep_id, int64_t index, v1::TrialStop stop,
                    DoneCallback done) override;
  absl::StatusOr<v1::Sweep> GetSweep(absl::string_view sweep_id) override;
  absl::StatusOr<ListSweepsPage> ListSweeps(const ListSweepsQuery& query) override;
  absl::StatusOr<std::vector<v1::Sweep>> LoadUnfinishedSweeps() override;
  void AcquireLeaderLease(std::string holder, std::string address, absl::Time now,
                          absl::Duration ttl, LeaseCallback done) override;
  void RenewLeaderLease(std::string holder, int64_t token, absl::Time now, absl::Duration ttl,
                        LeaseCallback done) override;
  absl::StatusOr<std::optional<LeaderLease>> LoadLeaderLease() override;
  void Close() override;

  // What the writer has committed (on SQLite each commit is one fsync).
  using Stats = WriteStats;
  Stats stats() const;

  // The operations the writer runs, one per queued write (defined in
  // sqlite_store_internal.h).
  class WriteOp;
  struct Writer;

 private:
  SqliteStoreOptions options_;
  explicit SqliteStore(SqliteStoreOptions options);
  absl::Status StartWriter();
  void Enqueue(std::unique_ptr<WriteOp> op);
  void WriterLoop();
  // Runs one batch in one transaction; returns the commit status.
  absl::Status CommitBatch(std::vector<std::unique_ptr<WriteOp>>& batch);

  // Reads borrow a connection from the pool and give it back.
  absl::StatusOr<std::unique_ptr<Db>> AcquireReader();
  void ReleaseReader(std::unique_ptr<Db> db);
  template <typename Fn>
  auto WithReader(Fn&& fn) -> decltype(fn(std::declval<Db&>()));

  WriteHealth health_;
  std::unique_ptr<Writer> writer_;  // used only by the writer thread after Open
  std::thread writer_thread_;
  // The leader lease's token once this store took it; every batch checks it. Writer thread
  // only.
  std::optional<int64_t> fence_token_;

  WriteQueue<WriteOp> queue_;

  absl::Mutex readers_mu_;
  std::vector<std::unique_ptr<Db>> idle_readers_ ABSL_GUARDED_BY(readers_mu_);
};

}  // namespace drover::storage

#endif  // DROVER_STORAGE_SQLITE_STORE_H_
