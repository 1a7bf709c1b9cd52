#include "tests/testing/fault_injecting_store.h"

#include <utility>

namespace drover::testing {

using storage::Store;

void FaultInjectingStore::FailNext(absl::string_view op, absl::Status status, int count) {
  absl::MutexLock lock(&mu_);
  faults_[std::string(op)] = Fault{std::move(status), count};
}

void FaultInjectingStore::FailAlways(absl::string_view op, absl::Status status) {
  absl::MutexLock lock(&mu_);
  faults_[std::string(op)] = Fault{std::move(status), -1};
}

void FaultInjectingStore::Heal(absl::string_view op) {
  absl::MutexLock lock(&mu_);
  if (auto it = faults_.find(op); it != faults_.end()) faults_.erase(it);
}

int FaultInjectingStore::Calls(absl::string_view op) const {
  absl::MutexLock lock(&mu_);
  auto it = calls_.find(op);
  return it == calls_.end() ? 0 : it->second;
}

int FaultInjectingStore::Failed(absl::string_view op) const {
  absl::MutexLock lock(&mu_);
  auto it = failed_.find(op);
  return it == failed_.end() ? 0 : it->second;
}

std::optional<absl::Status> FaultInjectingStore::Take(absl::string_view op) {
  absl::MutexLock lock(&mu_);
  ++calls_[std::string(op)];
  auto it = faults_.find(op);
  if (it == faults_.end()) return std::nullopt;
  absl::Status status = it->second.status;
  if (it->second.remaining > 0 && --it->second.remaining == 0) faults_.erase(it);
  ++failed_[std::string(op)];
  return status;
}

void FaultInjectingStore::CreateJob(v1::Job job, CreateJobCallback done) {
  Write("CreateJob", std::move(done), [&](CreateJobCallback d) {
    base_->CreateJob(std::move(job), std::move(d));
  });
}

void FaultInjectingStore::CreateJobs(std::vector<v1::Job> jobs, CreateJobsCallback done) {
  Write("CreateJobs", std::move(done), [&](CreateJobsCallback d) {
    base_->CreateJobs(std::move(jobs), std::move(d));
  });
}

void FaultInjectingStore::UpdateJobStatus(std::string job_id, int64_t expected_version,
                                          v1::JobStatus status, Durability durability,
                                          UpdateCallback done) {
  Write("UpdateJobStatus", std::move(done), [&](UpdateCallback d) {
    base_->UpdateJobStatus(std::move(job_id), expected_version, std::move(status), durability,
                           std::move(d));
  });
}

void FaultInjectingStore::UpdateJobTags(std::string job_id, storage::JobTagUpdate update,
                                        UpdateCallback done) {
  Write("UpdateJobTags", std::move(done), [&](UpdateCallback d) {
    base_->UpdateJobTags(std::move(job_id), std::move(update), std::move(d));
  });
}

void FaultInjectingStore::Barrier(DoneCallback done) {
  Write("Barrier", std::move(done), [&](DoneCallback d) { base_->Barrier(std::move(d)); });
}

void FaultInjectingStore::PutComputeTarget(v1::ComputeTarget target, DoneCallback done) {
  Write("PutComputeTarget", std::move(done), [&](DoneCallback d) {
    base_->PutComputeTarget(std::move(target), std::move(d));
  });
}

void FaultInjectingStore::DeleteComputeTarget(std::string name, DoneCallback done) {
  Write("DeleteComputeTarget", std::move(done), [&](DoneCallback d) {
    base_->DeleteComputeTarget(std::move(name), std::move(d));
  });
}

absl::StatusOr<std::vector<v1::ComputeTarget>> FaultInjectingStore::LoadComputeTargets() {
  return Read("LoadComputeTargets", [&] { return base_->LoadComputeTargets(); });
}

void FaultInjectingStore::PutImage(v1::Image image, DoneCallback done) {
  Write("PutImage", std::move(done),
        [&](DoneCallback d) { base_->PutImage(std::move(image), std::move(d)); });
}

void FaultInjectingStore::DeleteImage(std::string name, DoneCallback done) {
  Write("DeleteImage", std::move(done),
        [&](DoneCallback d) { base_->DeleteImage(std::move(name), std::move(d)); });
}

absl::StatusOr<std::vector<v1::Image>> FaultInjectingStore::LoadImages() {
  return Read("LoadImages", [&] { return base_->LoadImages(); });
}

void FaultInjectingStore::PutDatastore(v1::Datastore datastore, bool replace, DoneCallback done) {
  Write("PutDatastore", std::move(done), [&](DoneCallback d) {
    base_->PutDatastore(std::move(datastore), replace, std::move(d));
  });
}

void FaultInjectingStore::DeleteDatastore(std::string name, DoneCallback done) {
  Write("DeleteDatastore", std::move(done),
        [&](DoneCallback d) { base_->DeleteDatastore(std::move(name), std::move(d)); });
}

absl::StatusOr<std::vector<v1::Datastore>> FaultInjectingStore::LoadDatastores() {
  return Read("LoadDatastores", [&] { return base_->LoadDatastores(); });
}

void FaultInjectingStore::PutNodeAdminState(storage::NodeAdminState state, DoneCallback done) {
  Write("PutNodeAdminState", std::move(done),
        [&](DoneCallback d) { base_->PutNodeAdminState(std::move(state), std::move(d)); });
}

void FaultInjectingStore::DeleteNodeAdminState(std::string node, DoneCallback done) {
  Write("DeleteNodeAdminState", std::move(done),
        [&](DoneCallback d) { base_->DeleteNodeAdminState(std::move(node), std::move(d)); });
}

absl::StatusOr<std::vector<storage::NodeAdminState>> FaultInjectingStore::LoadNodeAdminStates() {
  return Read("LoadNodeAdminStates", [&] { return base_->LoadNodeAdminStates(); });
}

void FaultInjectingStore::PutNodeLossPause(std::optional<storage::NodeLossPause> pause,
                                           DoneCallback done) {
  Write("PutNodeLossPause", std::move(done),
        [&](DoneCallback d) { base_->PutNodeLossPause(std::move(pause), std::move(d)); });
}

absl::StatusOr<std::optional<storage::NodeLossPause>> FaultInjectingStore::LoadNodeLossPause() {
  return Read("LoadNodeLossPause", [&] { return base_->LoadNodeLossPause(); });
}

void FaultInjectingStore::CreateUser(storage::UserRecord record, DoneCallback done) {
  Write("CreateUser", std::move(done),
        [&](DoneCallback d) { base_->CreateUser(std::move(record), std::move(d)); });
}

void FaultInjectingStore::SetUserToken(std::string name, std::string token_sha256,
                                       UserCallback done) {
  Write("SetUserToken", std::move(done), [&](UserCallback d) {
    base_->SetUserToken(std::move(name), std::move(token_sha256), std::move(d));
  });
}

void FaultInjectingStore::SetUserBlobQuota(std::string name, int64_t bytes, UserCallback done) {
  Write("SetUserBlobQuota", std::move(done), [&](UserCallback d) {
    base_->SetUserBlobQuota(std::move(name), bytes, std::move(d));
  });
}

absl::StatusOr<std::vector<v1::User>> FaultInjectingStore::LoadUsers() {
  return Read("LoadUsers", [&] { return base_->LoadUsers(); });
}

absl::StatusOr<v1::User> FaultInjectingStore::FindUserByToken(absl::string_view token_sha256) {
  return Read("FindUserByToken", [&] { return base_->FindUserByToken(token_sha256); });
}

void FaultInjectingStore::AddBlobUploader(std::string digest, std::string user, int64_t size,
                                          DoneCallback done) {
  Write("AddBlobUploader", std::move(done), [&](DoneCallback d) {
    base_->AddBlobUploader(std::move(digest), std::move(user), size, std::move(d));
  });
}

absl::StatusOr<bool> FaultInjectingStore::IsBlobUploader(absl::string_view digest,
                                                         absl::string_view user) {
  return Read("IsBlobUploader", [&] { return base_->IsBlobUploader(digest, user); });
}

absl::StatusOr<storage::BlobHoldings> FaultInjectingStore::BlobHoldingsOf(absl::string_view user) {
  return Read("BlobHoldingsOf", [&] { return base_->BlobHoldingsOf(user); });
}

void FaultInjectingStore::ForgetBlobs(std::vector<std::string> digests, DoneCallback done) {
  Write("ForgetBlobs", std::move(done),
        [&](DoneCallback d) { base_->ForgetBlobs(std::move(digests), std::move(d)); });
}

void FaultInjectingStore::PutJoinToken(storage::JoinToken token, DoneCallback done) {
  Write("PutJoinToken", std::move(done),
        [&](DoneCallback d) { base_->PutJoinToken(std::move(token), std::move(d)); });
}

void FaultInjectingStore::UseJoinToken(std::string hash, std::string node, absl::Time now,
                                       JoinTokenCallback done) {
  Write("UseJoinToken", std::move(done), [&](JoinTokenCallback d) {
    base_->UseJoinToken(std::move(hash), std::move(node), now, std::move(d));
  });
}

void FaultInjectingStore::RevokeJoinTokens(std::string prefix, DoneCallback done) {
  Write("RevokeJoinTokens", std::move(done),
        [&](DoneCallback d) { base_->RevokeJoinTokens(std::move(prefix), std::move(d)); });
}

absl::StatusOr<std::vector<storage::JoinToken>> FaultInjectingStore::LoadJoinTokens() {
  return Read("LoadJoinTokens", [&] { return base_->LoadJoinTokens(); });
}

void FaultInjectingStore::PutNodeCertificate(storage::NodeCertificateRecord record,
                                             DoneCallback done) {
  Write("PutNodeCertificate", std::move(done),
        [&](DoneCallback d) { base_->PutNodeCertificate(std::move(record), std::move(d)); });
}

void FaultInjectingStore::RevokeNodeCertificates(std::string node, absl::Time now,
                                                 DoneCallback done) {
  Write("RevokeNodeCertificates", std::move(done), [&](DoneCallback d) {
    base_->RevokeNodeCertificates(std::move(node), now, std::move(d));
  });
}

absl::StatusOr<std::vector<storage::NodeCertificateRecord>>
FaultInjectingStore::LoadNodeCertificates() {
  return Read("LoadNodeCertificates", [&] { return base_->LoadNodeCertificates(); });
}

void FaultInjectingStore::AppendAudit(storage::AuditRecord record, DoneCallback done) {
  Write("AppendAudit", std::move(done),
        [&](DoneCallback d) { base_->AppendAudit(std::move(record), std::move(d)); });
}

absl::StatusOr<storage::AuditPage> FaultInjectingStore::ListAudit(
    const storage::AuditQuery& query) {
  return Read("ListAudit", [&] { return base_->ListAudit(query); });
}

void FaultInjectingStore::PruneAudit(absl::Time before, int64_t keep_newest, int64_t max_removed,
                                     DoneCallback done) {
  Write("PruneAudit", std::move(done), [&](DoneCallback d) {
    base_->PruneAudit(before, keep_newest, max_removed, std::move(d));
  });
}

absl::StatusOr<v1::Job> FaultInjectingStore::GetJob(absl::string_view job_id) {
  return Read("GetJob", [&] { return base_->GetJob(job_id); });
}

absl::StatusOr<storage::ListJobsPage> FaultInjectingStore::ListJobs(
    const storage::ListJobsQuery& query) {
  return Read("ListJobs", [&] { return base_->ListJobs(query); });
}

absl::StatusOr<std::vector<v1::Job>> FaultInjectingStore::LoadUnfinishedJobs() {
  return Read("LoadUnfinishedJobs", [&] { return base_->LoadUnfinishedJobs(); });
}

void FaultInjectingStore::CreateSweep(v1::Sweep sweep, CreateSweepCallback done) {
  Write("CreateSweep", std::move(done), [&](CreateSweepCallback d) {
    base_->CreateSweep(std::move(sweep), std::move(d));
  });
}

void FaultInjectingStore::CreateTrials(std::string sweep_id, std::vector<v1::SweepTrial> trials,
                                       std::vector<v1::Job> jobs, CreateJobsCallback done) {
  Write("CreateTrials", std::move(done), [&](CreateJobsCallback d) {
    base_->CreateTrials(std::move(sweep_id), std::move(trials), std::move(jobs), std::move(d));
  });
}

void FaultInjectingStore::UpdateSweepStatus(std::string sweep_id, v1::SweepStatus status,
                                            DoneCallback done) {
  Write("UpdateSweepStatus", std::move(done), [&](DoneCallback d) {
    base_->UpdateSweepStatus(std::move(sweep_id), std::move(status), std::move(d));
  });
}

void FaultInjectingStore::PutTrialStop(std::string sweep_id, int64_t index, v1::TrialStop stop,
                                       DoneCallback done) {
  Write("PutTrialStop", std::move(done), [&](DoneCallback d) {
    base_->PutTrialStop(std::move(sweep_id), index, std::move(stop), std::move(d));
  });
}

absl::StatusOr<v1::Sweep> FaultInjectingStore::GetSweep(absl::string_view sweep_id) {
  return Read("GetSweep", [&] { return base_->GetSweep(sweep_id); });
}

absl::StatusOr<storage::ListSweepsPage> FaultInjectingStore::ListSweeps(
    const storage::ListSweepsQuery& query) {
  return Read("ListSweeps", [&] { return base_->ListSweeps(query); });
}

absl::StatusOr<std::vector<v1::Sweep>> FaultInjectingStore::LoadUnfinishedSweeps() {
  return Read("LoadUnfinishedSweeps", [&] { return base_->LoadUnfinishedSweeps(); });
}

void FaultInjectingStore::AcquireLeaderLease(std::string holder, std::string address,
                                             absl::Time now, absl::Duration ttl,
                                             LeaseCallback done) {
  Write("AcquireLeaderLease", std::move(done), [&](LeaseCallback d) {
    base_->AcquireLeaderLease(std::move(holder), std::move(address), now, ttl, std::move(d));
  });
}

void FaultInjectingStore::RenewLeaderLease(std::string holder, int64_t token, absl::Time now,
                                           absl::Duration ttl, LeaseCallback done) {
  Write("RenewLeaderLease", std::move(done), [&](LeaseCallback d) {
    base_->RenewLeaderLease(std::move(holder), token, now, ttl, std::move(d));
  });
}

absl::StatusOr<std::optional<storage::LeaderLease>> FaultInjectingStore::LoadLeaderLease() {
  return Read("LoadLeaderLease", [&] { return base_->LoadLeaderLease(); });
}

}  // namespace drover::testing
