// A storage::Store that forwards to another and fails the operations a test picks, in the
// spirit of leveldb's fault-injection Env: a write picked to fail never reaches the store
// below, and its callback gets the error on the store's writer thread, in order with the
// writes around it (it rides on a Barrier), as a failed commit would; a read picked to fail
// answers the error. Everything else is forwarded unchanged. Install it in an in-process
// droverd with DroverdOptions::wrap_store. Thread-safe.
#ifndef DROVER_TESTS_TESTING_FAULT_INJECTING_STORE_H_
#define DROVER_TESTS_TESTING_FAULT_INJECTING_STORE_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "storage/store.h"

namespace drover::testing {

class FaultInjectingStore final : public storage::Store {
 public:
  explicit FaultInjectingStore(std::unique_ptr<storage::Store> base) : base_(std::move(base)) {}

  // The next `count` calls of operation `op` (a Store method's name: "CreateJob",
  // "UpdateJobStatus", "GetJob", ...) fail with `status` instead of reaching the store below.
  void FailNext(absl::string_view op, absl::Status status, int count = 1);
  // Every call of `op` fails with `status` until Heal(op).
  void FailAlways(absl::string_view op, absl::Status status);
  void Heal(absl::string_view op);
  // Calls of `op` so far (failed ones included).
  int Calls(absl::string_view op) const;
  // Calls of `op` that failed so far.
  int Failed(absl::string_view op) const;

  void CreateJob(v1::Job job, CreateJobCallback done) override;
  void CreateJobs(std::vector<v1::Job> jobs, CreateJobsCallback done) override;
  void UpdateJobStatus(std::string job_id, int64_t expected_version, v1::JobStatus status,
                       Durability durability, UpdateCallback done) override;
  void UpdateJobTags(std::string job_id, storage::JobTagUpdate update,
                     UpdateCallback done) override;
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
  void PutNodeAdminState(storage::NodeAdminState state, DoneCallback done) override;
  void DeleteNodeAdminState(std::string node, DoneCallback done) override;
  absl::StatusOr<std::vector<storage::NodeAdminState>> LoadNodeAdminStates() override;
  void PutNodeLossPause(std::optional<storage::NodeLossPause> pause, DoneCallback done) override;
  absl::StatusOr<std::optional<storage::NodeLossPause>> LoadNodeLossPause() override;
  void CreateUser(storage::UserRecord record, DoneCallback done) override;
  void SetUserToken(std::string name, std::string token_sha256, UserCallback done) override;
  void SetUserBlobQuota(std::string name, int64_t bytes, UserCallback done) override;
  absl::StatusOr<std::vector<v1::User>> LoadUsers() override;
  absl::StatusOr<v1::User> FindUserByToken(absl::string_view token_sha256) override;
  void AddBlobUploader(std::string digest, std::string user, int64_t size,
                       DoneCallback done) override;
  absl::StatusOr<bool> IsBlobUploader(absl::string_view digest, absl::string_view user) override;
  absl::StatusOr<storage::BlobHoldings> BlobHoldingsOf(absl::string_view user) override;
  void ForgetBlobs(std::vector<std::string> digests, DoneCallback done) override;
  void PutJoinToken(storage::JoinToken token, DoneCallback done) override;
  void UseJoinToken(std::string hash, std::string node, absl::Time now,
                    JoinTokenCallback done) override;
  void RevokeJoinTokens(std::string prefix, DoneCallback done) override;
  absl::StatusOr<std::vector<storage::JoinToken>> LoadJoinTokens() override;
  void PutNodeCertificate(storage::NodeCertificateRecord record, DoneCallback done) override;
  void RevokeNodeCertificates(std::string node, absl::Time now, DoneCallback done) override;
  absl::StatusOr<std::vector<storage::NodeCertificateRecord>> LoadNodeCertificates() override;
  void AppendAudit(storage::AuditRecord record, DoneCallback done) override;
  absl::StatusOr<storage::AuditPage> ListAudit(const storage::AuditQuery& query) override;
  void PruneAudit(absl::Time before, int64_t keep_newest, int64_t max_removed,
                  DoneCallback done) override;
  absl::StatusOr<v1::Job> GetJob(absl::string_view job_id) override;
  absl::StatusOr<storage::ListJobsPage> ListJobs(const storage::ListJobsQuery& query) override;
  absl::StatusOr<std::vector<v1::Job>> LoadUnfinishedJobs() override;
  void CreateSweep(v1::Sweep sweep, CreateSweepCallback done) override;
  void CreateTrials(std::string sweep_id, std::vector<v1::SweepTrial> trials,
                    std::vector<v1::Job> jobs, CreateJobsCallback done) override;
  void UpdateSweepStatus(std::string sweep_id, v1::SweepStatus status,
                         DoneCallback done) override;
  void PutTrialStop(std::string sweep_id, int64_t index, v1::TrialStop stop,
                    DoneCallback done) override;
  absl::StatusOr<v1::Sweep> GetSweep(absl::string_view sweep_id) override;
  absl::StatusOr<storage::ListSweepsPage> ListSweeps(const storage::ListSweepsQuery& query) override;
  absl::StatusOr<std::vector<v1::Sweep>> LoadUnfinishedSweeps() override;
  void AcquireLeaderLease(std::string holder, std::string address, absl::Time now,
                          absl::Duration ttl, LeaseCallback done) override;
  void RenewLeaderLease(std::string holder, int64_t token, absl::Time now, absl::Duration ttl,
                        LeaseCallback done) override;
  absl::StatusOr<std::optional<storage::LeaderLease>> LoadLeaderLease() override;
  void Close() override { base_->Close(); }

 private:
  struct Fault {
    absl::Status status;
    int remaining = 0;  // -1: until healed
  };

  // Counts a call of `op`; the error it is to fail with, if any.
  std::optional<absl::Status> Take(absl::string_view op);

  // A write: forwarded by `forward(done)`, or failed through a Barrier of the store below.
  template <typename Done, typename Forward>
  void Write(absl::string_view op, Done done, Forward forward) {
    if (std::optional<absl::Status> fault = Take(op)) {
      base_->Barrier([done = std::move(done), status = *fault](absl::Status) mutable {
        std::move(done)(status);
      });
      return;
    }
    forward(std::move(done));
  }

  // A read: answered by `forward()`, or the fault.
  template <typename Forward>
  auto Read(absl::string_view op, Forward forward) -> decltype(forward()) {
    if (std::optional<absl::Status> fault = Take(op)) return *fault;
    return forward();
  }

  std::unique_ptr<storage::Store> base_;
  mutable absl::Mutex mu_;
  std::map<std::string, Fault, std::less<>> faults_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int, std::less<>> calls_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int, std::less<>> failed_ ABSL_GUARDED_BY(mu_);
};

}  // namespace drover::testing

#endif  // DROVER_TESTS_TESTING_FAULT_INJECTING_STORE_H_
