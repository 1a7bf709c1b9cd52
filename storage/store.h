// Store: durable state of droverd (jobs, compute targets, images, datastores, what
// administrators set on nodes, the pause of node-loss handling, users, node identity, the
// audit of changing calls).
// SqliteStore is the embedded implementation; the interface is kept free of SQLite so that
// another database can take its place.
//
// Writes are asynchronous: they are queued, committed in batches by one writer (group
// commit) and their callbacks run on the writer thread only after the batch is durable, so
// whoever acknowledges a write to a client does it from the callback. Callbacks must not
// block; they may post elsewhere. Reads are synchronous, see only committed data and may be
// called from any thread.
#ifndef DROVER_STORAGE_STORE_H_
#define DROVER_STORAGE_STORE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "drover/v1/datastore.pb.h"
#include "drover/v1/image.pb.h"
#include "drover/v1/job.pb.h"
#include "drover/v1/node.pb.h"
#include "drover/v1/sweep.pb.h"
#include "drover/v1/user.pb.h"
#include "google/protobuf/map.h"

namespace drover::storage {

struct CreateJobResult {
  v1::Job job;   // the stored job, with its id
  bool created;  // false: the idempotency key matched an earlier job, which is `job`
};

// A change of a job's tags (Store::UpdateJobTags).
struct JobTagUpdate {
  std::map<std::string, std::string> set;  // added, or replacing the value held
  std::vector<std::string> remove;         // removed when held (a key not held is no error)
  // Called inside the write with the tags as they would be after the change; its error
  // fails the write and nothing is written. Null: every result is accepted.
  absl::AnyInvocable<absl::Status(const google::protobuf::Map<std::string, std::string>&) const>
      check;
};

struct ListJobsQuery {
  std::vector<v1::JobStatus::State> states;  // empty: every state
  std::string experiment;                    // empty: every experiment
  std::string tag_key;                       // empty: no tag filter
  std::optional<std::string> tag_value;      // with tag_key: only this value
  std::optional<std::string> owner;          // only jobs of this owner
  int page_size = 100;
  int64_t before_sequence = 0;  // only jobs older than this sequence; 0: from the newest
};

struct ListJobsPage {
  std::vector<v1::Job> jobs;       // newest first
  int64_t next_before_sequence;    // 0 when there is no further page
};

struct CreateSweepResult {
  v1::Sweep sweep;  // the stored sweep, with its trials when it was found by its key
  bool created;     // false: the idempotency key matched an earlier sweep, which is `sweep`
};

struct ListSweepsQuery {
  std::vector<v1::SweepStatus::State> states;  // empty: every state
  std::optional<std::string> owner;            // only sweeps of this owner
  int page_size = 100;
  int64_t before_sequence = 0;  // only sweeps older than this sequence; 0: from the newest
};

struct ListSweepsPage {
  std::vector<v1::Sweep> sweeps;  // newest first, without trials (trial_count set)
  int64_t next_before_sequence;   // 0 when there is no further page
};

// What an administrator set on a node (`drover node cordon|drain`), kept so that a
// restarted droverd gives the node no new work when its agent says hello again.
struct NodeAdminState {
  std::string node;
  bool draining = false;  // false: cordoned
  std::string reason;     // the administrator's text; may be empty
  absl::Time set_time = absl::UnixEpoch();
};

// The pause of node-loss handling (scheduler::NodeRegistry::CheckLeases) as of its last
// change: when it began and every node it counts, so that a restarted droverd stays paused
// with the same nodes counted, waiting and given up.
struct NodeLossPause {
  enum class Role {
    kCounted = 0,       // heard from when stored (it is expected back)
    kWaiting = 1,       // DOWN, its loss waits for the pause to end
    kDeclaredLost = 2,  // declared lost by an administrator during the pause
    kSilent = 3,        // counted as silent, not DOWN yet (its last_seen is kept)
  };
  struct Member {
    std::string name;
    Role role = Role::kCounted;
    // Listed by `drover nodes` (false: expected back since a restart, never seen since).
    bool listed = true;
    absl::Time last_seen = absl::UnixEpoch();
    absl::Time lost_at = absl::UnixEpoch();  // kDeclaredLost: when
    v1::Node node;  // kWaiting, kDeclaredLost: as listed (DOWN, with its reason)
  };
  absl::Time paused_since = absl::UnixEpoch();
  std::vector<Member> nodes;  // by name
};

// A user as stored: the public record and the SHA-256 of their token (droverd never keeps
// a token itself).
struct UserRecord {
  v1::User user;
  std::string token_sha256;  // "sha256:<hex>"; empty when the token was revoked
};

// A join token as droverd keeps it: never the token itself, only its SHA-256.
struct JoinToken {
  std::string hash;  // SHA-256 of the token, lowercase hex; its first 12 characters name it
  std::string node;  // the node name it is bound to; empty: any name
  absl::Time create_time = absl::UnixEpoch();
  absl::Time expire_time = absl::UnixEpoch();
  absl::Time used_time = absl::UnixEpoch();  // UnixEpoch: unused
  std::string used_by;                       // the node that joined with it
  bool revoked = false;
};

// A node certificate droverd issued or that a node connected with.
struct NodeCertificateRecord {
  std::string fingerprint;  // SHA-256 of the DER certificate, lowercase hex
  std::string node;
  absl::Time not_after = absl::UnixEpoch();
  absl::Time recorded = absl::UnixEpoch();
  absl::Time revoked = absl::UnixEpoch();  // UnixEpoch: not revoked
};

// One audited call (docs/security.md): who did what, from where, with which result. Never a
// secret: the server layer puts names and ids here, never tokens or credential values.
struct AuditRecord {
  int64_t id = 0;                 // set by the store: increases with every record
  absl::Time time = absl::UnixEpoch();
  std::string who;                // user or node name, "local-socket"; empty: anonymous
  std::string who_kind;           // "user", "node", "local", "anonymous"
  std::string peer;               // the caller's address ("ipv4:10.0.0.5:41234"), "unix"
  std::string method;             // full gRPC name, "/drover.v1.JobService/SubmitJob"
  std::string target;             // what it acted on (job id, object name); may be empty
  int code = 0;                   // gRPC status code of the answer (0: OK)
  std::string message;            // the answer's error message, shortened; empty when OK
};

struct AuditQuery {
  absl::Time since = absl::InfinitePast();  // only records at or after this time
  std::optional<std::string> who;           // only this caller
  // Only this method: its full name, or its last part ("SubmitJob", "JobService/SubmitJob").
  std::string method;
  int limit = 100;          // at most this many (1..1000; others are clamped)
  int64_t before_id = 0;    // only records older than this id; 0: from the newest
};

struct AuditPage {
  std::vector<AuditRecord> records;  // newest first
  int64_t next_before_id = 0;        // 0 when there is no further page
};

// What a user holds in the blob store (Store::BlobHoldingsOf).
struct BlobHoldings {
  int64_t bytes = 0;                  // of the blobs whose size is recorded
  std::vector<std::string> unsized;   // digests held whose size is not recorded
};

// The lease of the droverd that leads when several share one database (Store's leader
// lease): who holds it, where clients and agents reach it, its fencing token (larger on
// every takeover, never reused) and when it runs out.
struct LeaderLease {
  std::string holder;
  std::string address;
  int64_t token = 0;
  absl::Time expire_time;
};

// One unfinished job as Store::ReadUnfinishedJobs hands it over.
struct UnfinishedJobRow {
  std::string id;
  // At least what scheduler::JobQueue::Pack reads: the spec's compute_target, node_count,
  // priority, resources, max_run_duration and array_task, and the status's state and
  // version (the engines read no more of them; the whole job is in `wire`).
  v1::JobSpec spec;
  v1::JobStatus status;
  // The whole job in wire form (v1::Job: id, spec with its secret values opened as GetJob
  // shows them to droverd, status, create_time, owner).
  std::string wire;
};

class Store {
 public:
  using CreateJobCallback = absl::AnyInvocable<void(absl::StatusOr<CreateJobResult>) &&>;
  using UpdateCallback = absl::AnyInvocable<void(absl::StatusOr<v1::Job>) &&>;
  using JoinTokenCallback = absl::AnyInvocable<void(absl::StatusOr<JoinToken>) &&>;

  virtual ~Store() = default;

  // Stores a new job: assigns its id ("j-<sequence>"), writes `job` (spec, status, owner,
  // create_time as given) and calls `done` once committed. When the spec carries an
  // idempotency key that an earlier job used, nothing is written and `done` gets that job
  // with `created` false; if that job's spec (its tags aside, which may have changed since)
  // or owner differs, ALREADY_EXISTS.
  // Errors: RESOURCE_EXHAUSTED (disk full), UNAVAILABLE (I/O error or store closed),
  // INTERNAL.
  virtual void CreateJob(v1::Job job, CreateJobCallback done) = 0;

  using CreateJobsCallback =
      absl::AnyInvocable<void(absl::StatusOr<std::vector<CreateJobResult>>) &&>;
  // Stores the jobs of one submit (the tasks of a job array) as one write: each as
  // CreateJob stores it (ids in order, idempotency keys honoured), and `done` gets their
  // results in the order given once all are committed. All or none: when one of them fails
  // (a key held by another spec: ALREADY_EXISTS), nothing of the call is written and `done`
  // gets that error. Errors as for CreateJob.
  virtual void CreateJobs(std::vector<v1::Job> jobs, CreateJobsCallback done) = 0;

  // How durable a write is when its callback runs.
  enum class Durability {
    // On disk: it survives a power cut (the default of every write).
    kFlushed,
    // Committed, so it survives droverd's crash (it is in the kernel's page cache), but
    // flushed only with the next flushed write or the engine's own background flush
    // (SQLite: the next checkpoint; PostgreSQL: the WAL writer, within 3 x
    // wal_writer_delay); a power cut may lose it. Only for facts that whoever reported them
    // reports again after a restart (an agent's phase reports: its hello), never for what
    // droverd acknowledged or acted on (a submit, a placement, an end).
    kCommitted,
  };

  // Replaces the status of job `job_id` if its stored version is `expected_version`
  // (compare-and-set), and calls `done` with the whole updated job once committed (and,
  // for kFlushed, flushed). Errors: NOT_FOUND, ABORTED (the version moved: re-read and
  // retry), plus those of CreateJob.
  virtual void UpdateJobStatus(std::string job_id, int64_t expected_version,
                               v1::JobStatus status, Durability durability,
                               UpdateCallback done) = 0;

  // Changes the tags of job `job_id` (`spec.tags` and what ListJobs filters by): removes
  // `update.remove`, then sets `update.set`, in one write that reads the tags it changes, so
  // two tag updates never lose each other's keys. The status and its version are left alone:
  // a tag update never conflicts with a status write. `done` gets the whole job once
  // committed. Errors: NOT_FOUND, INVALID_ARGUMENT for a malformed id, the error of
  // `update.check` (nothing written), plus those of CreateJob.
  virtual void UpdateJobTags(std::string job_id, JobTagUpdate update, UpdateCallback done) = 0;

  using DoneCallback = absl::AnyInvocable<void(absl::Status) &&>;

  // Calls `done` once every write queued before it has committed (or failed).
  virtual void Barrier(DoneCallback done) = 0;

  // Stores a compute target (replacing one with the same name) / removes one; `done` runs
  // after the commit. Errors as for CreateJob.
  virtual void PutComputeTarget(v1::ComputeTarget target, DoneCallback done) = 0;
  virtual void DeleteComputeTarget(std::string name, DoneCallback done) = 0;
  // Every stored compute target, by name.
  virtual absl::StatusOr<std::vector<v1::ComputeTarget>> LoadComputeTargets() = 0;

  // Stores an image registration (replacing one with the same name) / removes one; `done`
  // runs after the commit. Errors as for CreateJob.
  virtual void PutImage(v1::Image image, DoneCallback done) = 0;
  virtual void DeleteImage(std::string name, DoneCallback done) = 0;
  // Every stored image registration, by name. DATA_LOSS when one is unreadable.
  virtual absl::StatusOr<std::vector<v1::Image>> LoadImages() = 0;

  // Stores a datastore registration; `done` runs after the commit. With `replace` false, a
  // datastore of the same name already stored fails the write with ALREADY_EXISTS and
  // leaves the stored one unchanged; with `replace` true it is replaced. DeleteDatastore
  // removes one (nothing to remove is not an error). Other errors as for CreateJob.
  virtual void PutDatastore(v1::Datastore datastore, bool replace, DoneCallback done) = 0;
  virtual void DeleteDatastore(std::string name, DoneCallback done) = 0;
  // Every stored datastore, by name, credentials included. DATA_LOSS when one is
  // unreadable.
  virtual absl::StatusOr<std::vector<v1::Datastore>> LoadDatastores() = 0;

  // Stores what an administrator set on a node (replacing what was stored for it) /
  // removes it (nothing stored is not an error); `done` runs after the commit. Errors as
  // for CreateJob.
  virtual void PutNodeAdminState(NodeAdminState state, DoneCallback done) = 0;
  virtual void DeleteNodeAdminState(std::string node, DoneCallback done) = 0;
  // Every stored node state, by node name.
  virtual absl::StatusOr<std::vector<NodeAdminState>> LoadNodeAdminStates() = 0;

  // Replaces the stored pause of node-loss handling with `pause`, or removes it when
  // `pause` is empty (the pause ended); `done` runs after the commit. Errors as for
  // CreateJob.
  virtual void PutNodeLossPause(std::optional<NodeLossPause> pause, DoneCallback done) = 0;
  // The stored pause; empty when there is none. DATA_LOSS when a node's record is
  // unreadable.
  virtual absl::StatusOr<std::optional<NodeLossPause>> LoadNodeLossPause() = 0;

  using UserCallback = absl::AnyInvocable<void(absl::StatusOr<v1::User>) &&>;

  // Stores a new user; `done` runs after the commit. ALREADY_EXISTS when the name is taken
  // (nothing changes), otherwise errors as for CreateJob.
  virtual void CreateUser(UserRecord record, DoneCallback done) = 0;
  // Replaces the token hash of user `name` (`token_sha256` empty: revoked) and calls `done`
  // with the updated user after the commit. NOT_FOUND when there is no such user.
  virtual void SetUserToken(std::string name, std::string token_sha256, UserCallback done) = 0;
  // Sets user `name`'s own blob quota (v1::User.blob_quota_bytes) and calls `done` with the
  // updated user after the commit. NOT_FOUND when there is no such user.
  virtual void SetUserBlobQuota(std::string name, int64_t bytes, UserCallback done) = 0;
  // Every user, by name.
  virtual absl::StatusOr<std::vector<v1::User>> LoadUsers() = 0;
  // The user whose token has this hash; NOT_FOUND when none has (also once revoked).
  virtual absl::StatusOr<v1::User> FindUserByToken(absl::string_view token_sha256) = 0;

  // Records that `user` holds blob `digest` of `size` bytes: they uploaded it, or it is
  // their job's outputs. What a user holds counts against their blob quota, and they may
  // download it. Once is enough; repeating is not an error. Errors as for CreateJob.
  virtual void AddBlobUploader(std::string digest, std::string user, int64_t size,
                               DoneCallback done) = 0;
  // Whether `user` holds blob `digest`.
  virtual absl::StatusOr<bool> IsBlobUploader(absl::string_view digest, absl::string_view user) = 0;
  // What `user` holds: the bytes of the blobs whose size was recorded, and the digests of
  // those whose size was not (recorded by a droverd before schema 9).
  virtual absl::StatusOr<BlobHoldings> BlobHoldingsOf(absl::string_view user) = 0;
  // Forgets every holder of these blobs (garbage collection removed them). Errors as for
  // CreateJob.
  virtual void ForgetBlobs(std::vector<std::string> digests, DoneCallback done) = 0;

  // Stores a new join token; `done` runs after the commit. ALREADY_EXISTS for a hash
  // already stored; other errors as for CreateJob.
  virtual void PutJoinToken(JoinToken token, DoneCallback done) = 0;
  // Uses the token with `hash` for node `node` at `now`, in one write: `done` gets the token
  // as it was before. NOT_FOUND when no token has that hash; FAILED_PRECONDITION (nothing
  // written) when it was used, revoked, expired at `now` or bound to another node name.
  virtual void UseJoinToken(std::string hash, std::string node, absl::Time now,
                            JoinTokenCallback done) = 0;
  // Revokes every unused token whose hash starts with `prefix` (at least 8 characters);
  // `done` gets how many were revoked through NOT_FOUND when none matched.
  virtual void RevokeJoinTokens(std::string prefix, DoneCallback done) = 0;
  // Every stored join token, newest first.
  virtual absl::StatusOr<std::vector<JoinToken>> LoadJoinTokens() = 0;

  // Records a node certificate (kept as it was when already recorded); `done` runs after
  // the commit. Errors as for CreateJob.
  virtual void PutNodeCertificate(NodeCertificateRecord record, DoneCallback done) = 0;
  // Marks every recorded certificate of `node` revoked at `now`; `done` runs after the
  // commit. Errors as for CreateJob.
  virtual void RevokeNodeCertificates(std::string node, absl::Time now, DoneCallback done) = 0;
  // Every recorded node certificate.
  virtual absl::StatusOr<std::vector<NodeCertificateRecord>> LoadNodeCertificates() = 0;

  // Appends an audit record (its `id` is assigned); `done` runs after the commit. Errors as
  // for CreateJob.
  virtual void AppendAudit(AuditRecord record, DoneCallback done) = 0;
  // A page of audit records matching `query`, newest first.
  virtual absl::StatusOr<AuditPage> ListAudit(const AuditQuery& query) = 0;
  // Retention: removes the records older than `before` and all but the newest
  // `keep_newest`, at most `max_removed` in this one write (the rest at the next call, so
  // that one prune never holds the writer long). `done` runs after the commit. Errors as
  // for CreateJob.
  virtual void PruneAudit(absl::Time before, int64_t keep_newest, int64_t max_removed,
                          DoneCallback done) = 0;

  // One job. NOT_FOUND when there is none with that id; INVALID_ARGUMENT for a malformed id.
  virtual absl::StatusOr<v1::Job> GetJob(absl::string_view job_id) = 0;

  // A page of jobs matching `query`, newest first.
  virtual absl::StatusOr<ListJobsPage> ListJobs(const ListJobsQuery& query) = 0;

  // Every job not in a terminal state, oldest first: what droverd resumes with at start.
  virtual absl::StatusOr<std::vector<v1::Job>> LoadUnfinishedJobs() = 0;

  // The jobs of LoadUnfinishedJobs, in the same order, handed to `each` one at a time
  // without building a v1::Job for each (droverd's start with a million queued jobs,
  // issue 21): `row` is refilled for every job, and `each` may move `id` and `wire` out.
  // Stops at the first error, of the read or of `each`, and returns it. This default reads
  // LoadUnfinishedJobs; the engines read their rows directly.
  virtual absl::Status ReadUnfinishedJobs(
      absl::FunctionRef<absl::Status(UnfinishedJobRow& row)> each) {
    absl::StatusOr<std::vector<v1::Job>> jobs = LoadUnfinishedJobs();
    if (!jobs.ok()) return jobs.status();
    UnfinishedJobRow row;
    for (v1::Job& job : *jobs) {
      row.id = job.id();
      row.spec = job.spec();
      row.status = job.status();
      row.wire = job.SerializeAsString();
      if (absl::Status s = each(row); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  // Sweeps (sweep.proto, docs/sweeps.md). A stored sweep is its v1::Sweep without the
  // fields droverd computes when it shows one (trial job states, results, the best trial),
  // and its trials: index, job id, parameters, create_time and the early stop, if any.
  using CreateSweepCallback = absl::AnyInvocable<void(absl::StatusOr<CreateSweepResult>) &&>;
  // Stores a new sweep with the id it carries ("s-..."), its trial template's secret values
  // sealed as a job's, and calls `done` once committed. When the spec carries an idempotency
  // key that an earlier sweep of the same owner used, nothing is written and `done` gets
  // that sweep (with its trials) and `created` false; ALREADY_EXISTS if its spec differs.
  // ALREADY_EXISTS also for an id already stored. Errors otherwise as for CreateJob.
  virtual void CreateSweep(v1::Sweep sweep, CreateSweepCallback done) = 0;
  // Starts trials of sweep `sweep_id` in one write: each of `trials[i]` is stored with
  // `jobs[i]` (each job as CreateJob stores it, its id set in the trial's job_id), so that a
  // trial is never stored without its job nor a trial job without its trial. All or none:
  // ALREADY_EXISTS naming the index when one is stored already (an index is started at most
  // once), FAILED_PRECONDITION when the sweep ended, NOT_FOUND when there is no such sweep,
  // INVALID_ARGUMENT when the sizes differ or a job's spec.sweep_trial does not name this
  // sweep and its trial's index. A QUEUED sweep becomes RUNNING in the same write. `done`
  // gets the jobs' results in the order given. Errors otherwise as for CreateJob.
  virtual void CreateTrials(std::string sweep_id, std::vector<v1::SweepTrial> trials,
                            std::vector<v1::Job> jobs, CreateJobsCallback done) = 0;
  // Replaces the status of sweep `sweep_id`. A sweep that reached a terminal state
  // (COMPLETED, CANCELED, FAILED) keeps it: FAILED_PRECONDITION, nothing written.
  // NOT_FOUND when there is no such sweep. Errors otherwise as for CreateJob.
  virtual void UpdateSweepStatus(std::string sweep_id, v1::SweepStatus status,
                                 DoneCallback done) = 0;
  // Records that the early-termination policy stopped trial `index` of sweep `sweep_id`.
  // A trial keeps its first stop (a second is not an error and changes nothing). NOT_FOUND
  // when there is no such trial. Errors otherwise as for CreateJob.
  virtual void PutTrialStop(std::string sweep_id, int64_t index, v1::TrialStop stop,
                            DoneCallback done) = 0;
  // One sweep with its trials, by index. NOT_FOUND when there is none with that id.
  virtual absl::StatusOr<v1::Sweep> GetSweep(absl::string_view sweep_id) = 0;
  // A page of sweeps matching `query`, newest first, without their trials.
  virtual absl::StatusOr<ListSweepsPage> ListSweeps(const ListSweepsQuery& query) = 0;
  // Every sweep not in a terminal state with its trials, oldest first: what droverd goes on
  // with at start.
  virtual absl::StatusOr<std::vector<v1::Sweep>> LoadUnfinishedSweeps() = 0;

  // The leader lease, for several droverds on one database of which one leads. Once this
  // store has taken or renewed the lease, every batch it writes first checks, inside its
  // transaction, that the stored lease still has this store's token; when another holder
  // has taken it since, every write of the batch but the lease's own fails UNAVAILABLE
  // naming the new holder, and none is committed (a deposed leader writes nothing). A store
  // that never took the lease writes unchecked, as a lone droverd does.
  using LeaseCallback = absl::AnyInvocable<void(absl::StatusOr<LeaderLease>) &&>;
  // Takes the lease for `holder`, reachable at `address`, until `now + ttl` when nobody
  // holds it, when it ran out (its expire_time <= `now`) or when `holder` holds it. Taken
  // from another holder or from nobody it gets the next token; `holder`'s own lease keeps
  // its token. `done` gets the lease after the commit. FAILED_PRECONDITION naming the holder
  // and until when while another holds it; INVALID_ARGUMENT for an empty `holder` or a `ttl`
  // that is not positive; errors as for CreateJob.
  virtual void AcquireLeaderLease(std::string holder, std::string address, absl::Time now,
                                  absl::Duration ttl, LeaseCallback done) = 0;
  // Extends the lease `holder` holds under `token` to `now + ttl`. FAILED_PRECONDITION
  // (deposed) when the stored lease has another holder or token, or there is none: one
  // whose lease ran out and was taken must take it again with AcquireLeaderLease, under a
  // new token. Errors otherwise as for AcquireLeaderLease.
  virtual void RenewLeaderLease(std::string holder, int64_t token, absl::Time now,
                                absl::Duration ttl, LeaseCallback done) = 0;
  // The stored lease, run out or not; empty when nobody ever took it.
  virtual absl::StatusOr<std::optional<LeaderLease>> LoadLeaderLease() = 0;

  // Stops taking writes (later ones fail with UNAVAILABLE), commits those already queued,
  // runs their callbacks and returns. Idempotent.
  virtual void Close() = 0;
};

}  // namespace drover::storage

#endif  // DROVER_STORAGE_STORE_H_
