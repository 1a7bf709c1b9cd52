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
namespace {

using google::protobuf::util::TimeUtil;
using v1::JobStatus;

google::protobuf::Duration ToProtoDuration(absl::Duration d) {
  return TimeUtil::MillisecondsToDuration(absl::ToInt64Milliseconds(d));
}

bool IsPlaced(JobStatus::State s) {
  return s == JobStatus::PREPARING || s == JobStatus::STARTING || s == JobStatus::RUNNING ||
         s == JobStatus::FINALIZING || s == JobStatus::CANCEL_REQUESTED;
}

bool Failed(const v1::RankExit& e) { return e.exit_code() != 0 || e.signal() != 0; }

// Whether `e` is a failure that ended before `first` (the failure known so far): by the
// nodes' clocks when both tell. A rank with no end time was killed before it could record
// one (mpirun kills its ranks' wrappers), so it was stopped, not the cause: a failure with
// a time goes first; between two without, the one known first stays first.
bool FailedFirst(const v1::RankExit& e, const std::optional<v1::RankExit>& first) {
  if (!Failed(e)) return false;
  if (!first.has_value()) return true;
  if (e.has_end_time() != first->has_end_time()) return e.has_end_time();
  if (!e.has_end_time()) return false;
  return std::make_pair(e.end_time().seconds(), e.end_time().nanos()) <
         std::make_pair(first->end_time().seconds(), first->end_time().nanos());
}

std::string DescribeExit(const v1::RankExit& e) {
  if (e.oom_killed()) {
    return absl::StrCat("rank ", e.rank(), " on ", e.node(), " ran out of memory");
  }
  if (e.signal() != 0) {
    return absl::StrCat("rank ", e.rank(), " on ", e.node(), " was killed by signal ", e.signal());
  }
  return absl::StrCat("rank ", e.rank(), " on ", e.node(), " exited with code ", e.exit_code());
}

bool IsImageTagChar(char c) {
  return absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-';
}

bool IsImagePathChar(char c) {
  return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '.' || c == '_' || c == '-';
}

constexpr size_t kMaxRcloneOptionKeyChars = 64;
constexpr size_t kMaxRcloneOptionValueBytes = 32 * 1024;
constexpr absl::string_view kMasked = "***";

bool IsRcloneOptionKeyChar(char c) {
  return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '_';
}

absl::Status InvalidField(absl::string_view field, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", problem));
}

// A HOSTPATH folder: absolute and clean (no empty, "." or ".." components, no trailing
// '/'), so that what the admin registered is exactly what gets bound into containers, and
// below an allowed root.
absl::Status CheckHostPath(absl::string_view path, const DatastoreRoots& roots) {
  constexpr absl::string_view kField = "datastore.path";
  if (path.empty()) {
    return InvalidField(kField,
                        "required for type HOSTPATH; give the folder that exists at the same "
                        "path on every node, such as /srv/data/imagenet");
  }
  if (path == "/") {
    return InvalidField(kField,
                        "'/' is the nodes' whole file system; give the folder that holds the "
                        "data, such as /srv/data/imagenet");
  }
  if (absl::Status s = CheckCleanAbsolutePath(kField, path); !s.ok()) return s;
  return CheckHostPathUnderRoots(kField, path, roots);
}

absl::Status CheckRcloneOptions(const v1::Datastore& datastore) {
  constexpr absl::string_view kField = "datastore.rclone_options";
  const auto& options = datastore.rclone_options();
  auto type = options.find("type");
  if (type == options.end() || type->second.empty()) {
    return InvalidField("datastore.rclone_options['type']",
                        "required for type RCLONE; give the rclone backend, such as type=s3, "
                        "type=azureblob or type=sftp");
  }
  // Sorted, so that the first problem reported is the same every time.
  std::map<std::string, std::string> sorted(options.begin(), options.end());
  for (const auto& [key, value] : sorted) {
    const std::string field =
        absl::StrCat("datastore.rclone_options['", absl::CHexEscape(key), "']");
    if (key.empty() || key.size() > kMaxRcloneOptionKeyChars ||
        !absl::c_all_of(key, IsRcloneOptionKeyChar)) {
      return InvalidField(field, absl::StrCat("the key must be 1-", kMaxRcloneOptionKeyChars,
                                              " characters of [a-z0-9_]; write option names as "
                                              "rclone's config files do, such as "
                                              "access_key_id"));
    }
    if (value.size() > kMaxRcloneOptionValueBytes) {
      return InvalidField(field, absl::StrCat("the value is ", value.size(),
                                              " bytes, too long; use at most ",
                                              kMaxRcloneOptionValueBytes, " bytes"));
    }
    if (absl::c_any_of(value, [](char c) { return c == '\0' || c == '\r' || c == '\n'; })) {
      return InvalidField(field,
                          "the value has a line break or NUL byte; write it on one line (JSON "
                          "credentials can be minified)");
    }
  }
  return CheckRcloneRemote(kField, sorted, datastore.allow_write());
}

// `options` with a random exec_token_key when it has none.
CoreOptions WithExecTokenKey(CoreOptions options) {
  if (options.exec_token_key.empty()) {
    std::random_device random;
    for (int i = 0; i < 8; ++i) {
      absl::StrAppend(&options.exec_token_key, absl::Hex(random(), absl::kZeroPad8));
    }
  }
  return options;
}

}  // namespace

absl::Status CheckDatastore(const v1::Datastore& datastore, const DatastoreRoots& roots) {
  if (absl::Status s = scheduler::CheckDatastoreName("datastore.name", datastore.name());
      !s.ok()) {
    return s;
  }
  switch (datastore.type()) {
    case v1::Datastore::HOSTPATH:
      if (!datastore.rclone_options().empty()) {
        return InvalidField("datastore.rclone_options",
                            "apply to type RCLONE only; remove them for a HOSTPATH datastore");
      }
      if (absl::Status s = CheckHostPath(datastore.path(), roots); !s.ok()) return s;
      break;
    case v1::Datastore::RCLONE:
      if (absl::Status s = CheckRcloneOptions(datastore); !s.ok()) return s;
      if (absl::Status s = scheduler::CheckDatastorePath("datastore.path", datastore.path());
          !s.ok()) {
        return s;
      }
      break;
    case v1::Datastore::TYPE_UNSPECIFIED:
      return InvalidField("datastore.type",
                          "required; use HOSTPATH (a folder on every node) or RCLONE (an "
                          "rclone remote)");
    default:
      return InvalidField("datastore.type",
                          absl::StrCat(static_cast<int>(datastore.type()),
                                       " is not a type; use HOSTPATH or RCLONE"));
  }
  for (int i = 0; i < datastore.secret_keys_size(); ++i) {
    const std::string& key = datastore.secret_keys(i);
    if (!datastore.rclone_options().contains(key)) {
      return InvalidField(absl::StrCat("datastore.secret_keys[", i, "]"),
                          absl::StrCat("'", absl::CHexEscape(key),
                                       "' is not a key of rclone_options; list only options "
                                       "that are set"));
    }
  }
  return absl::OkStatus();
}

bool IsCredentialKey(const v1::Datastore& datastore, absl::string_view key) {
  if (absl::c_linear_search(datastore.secret_keys(), key)) return true;
  const std::string lower = absl::AsciiStrToLower(key);
  for (absl::string_view marker : {"key", "secret", "pass", "token", "sas"}) {
    if (absl::StrContains(lower, marker)) return true;
  }
  return false;
}

v1::Datastore MaskCredentials(v1::Datastore datastore) {
  for (auto& [key, value] : *datastore.mutable_rclone_options()) {
    if (IsCredentialKey(datastore, key)) value = std::string(kMasked);
  }
  return datastore;
}

absl::Status CheckImageName(absl::string_view field, absl::string_view name) {
  auto invalid = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": '", name, "' ", why));
  };
  constexpr absl::string_view kFix =
      "; use lowercase path components such as 'busybox' or 'team/train:1.0'";
  if (name.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": required; give the image a name such as 'team/train:1.0'"));
  }
  if (name.size() > 255) return invalid(absl::StrCat("is longer than 255 characters", kFix));
  if (name == "host") return invalid("is reserved for the node's own OS; choose another name");
  if (absl::StrContains(name, "://")) {
    return invalid(
        "looks like a registry reference; imported images have plain names, and jobs use "
        "'docker://...' references directly without an import");
  }
  absl::string_view path = name;
  size_t colon = name.rfind(':');
  if (colon != absl::string_view::npos) {
    absl::string_view tag = name.substr(colon + 1);
    path = name.substr(0, colon);
    if (tag.empty() || tag.size() > 128 || tag[0] == '.' || tag[0] == '-' ||
        !absl::c_all_of(tag, IsImageTagChar)) {
      return invalid("has a malformed tag; use 1-128 characters of [A-Za-z0-9._-] after ':'");
    }
  }
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part.empty() || !absl::c_all_of(part, IsImagePathChar) ||
        !absl::ascii_isalnum(part.front()) || !absl::ascii_isalnum(part.back())) {
      return invalid(absl::StrCat("has the path component '", part, "'", kFix));
    }
  }
  return absl::OkStatus();
}

bool IsBuiltInImage(absl::string_view image) {
  return image == "host" || absl::StartsWith(image, "docker://");
}

Core::Core(storage::Store& store, storage::LogStore& logs, JobEventHub& events, CoreLoop& loop,
           const Clock& clock, CoreOptions options)
    : store_(store), logs_(logs), events_(events), loop_(loop), clock_(clock),
      options_(WithExecTokenKey(std::move(options))) {
  RefreshTargetNames();
}

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
    datastores.push_back(MaskCredentials(datastore));
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

void Core::Restore(const std::vector<v1::Job>& unfinished,
                   const std::vector<v1::ComputeTarget>& targets,
                   const std::vector<v1::Image>& images,
                   const std::vector<v1::Datastore>& datastores,
                   const std::vector<storage::NodeAdminState>& node_states,
                   const std::optional<storage::NodeLossPause>& loss_pause) {
  // Nodes first: a node that says hello after the restart is cordoned from its first
  // message, and the pause's nodes keep their last_seen (Expect below leaves them).
  for (const storage::NodeAdminState& state : node_states) nodes_.RestoreAdmin(state);
  if (loss_pause.has_value()) nodes_.RestoreLossPause(*loss_pause, clock_.Now());
  saved_pause_ = PauseKey(loss_pause);
  {
    absl::MutexLock lock(&images_mu_);
    for (const v1::Image& image : images) images_[image.name()] = image;
  }
  {
    absl::MutexLock lock(&datastores_mu_);
    for (const v1::Datastore& datastore : datastores) datastores_[datastore.name()] = datastore;
  }
  for (const v1::ComputeTarget& target : targets) {
    if (absl::Status s = nodes_.PutTarget(target); !s.ok()) {
      Log(LogLevel::kWarning, "target_not_restored", {{"target", target.name()}, {"error", s.message()}});
    }
  }
  RefreshTargetNames();
  for (const v1::Job& job : unfinished) {
    jobs_.Update(job);
    const JobStatus& status = job.status();
    if (IsPlaced(status.state()) && status.nodes_size() > 0) {
      Attempt& attempt = attempts_[job.id()];
      attempt.epoch = status.attempt();
      attempt.nodes.assign(status.nodes().begin(), status.nodes().end());
      attempt.exec_token = ExecToken(job.id(), attempt.epoch);
      attempt.master_port = status.master_port();
      // Not stored with the attempt: what the name has now (a re-import while droverd was
      // down reaches an agent that has to prepare the attempt again).
      attempt.image_digest = ImageDigestOf(job.spec());
      attempt.started = status.state() != JobStatus::PREPARING;
      if (status.state() == JobStatus::CANCEL_REQUESTED) {
        // Its agents are told to stop when they say hello (again).
        attempt.stopping = true;
        attempt.cause = JobStatus::CANCELED_BY_USER;
        attempt.message = status.message();
      }
      // The time limit counts from the restart: the true start is in start_time, but a
      // restart should not kill a job at once.
      if (status.state() == JobStatus::RUNNING) attempt.running_since = clock_.Now();
      // Its nodes' leases run from now: one that never comes back is lost like any other.
      // What it holds there counts from now too (a draining node stays DRAINING).
      for (const std::string& node : attempt.nodes) {
        nodes_.Expect(node, clock_.Now());
        nodes_.Allocate(node, job.id(), scheduler::PerNodeDemand(job.spec()));
      }
      UpdateFence(job.id());
    }
  }
  if (loss_pause.has_value()) {
    Log(LogLevel::kWarning, "node_loss_pause_restored",
        {{"since", absl::FormatTime(absl::RFC3339_sec, loss_pause->paused_since,
                                    absl::UTCTimeZone())},
         {"nodes", loss_pause->nodes.size()}});
    // Listed as paused from the first call on; CheckLeases logs only a change from here.
    lease_check_.paused = true;
    CheckLeases(clock_.Now());  // stores the pause again only if it changed
  }
}

void Core::JobCreated(const v1::Job& job) {
  if (options_.metrics != nullptr) options_.metrics->jobs_submitted.With({}).Increment();
  jobs_.Update(job);
  RequestSchedule();
}

void Core::RequestSchedule() {
  // Submits come in bursts: one placement round after the burst, not one per job.
  if (schedule_requested_) return;
  schedule_requested_ = true;
  loop_.Post([this] {
    schedule_requested_ = false;
    Schedule();
  });
}

namespace {

// The store refused a write because of the disk (full, or an I/O error): the write can go
// through later, unlike a refused version or a malformed record.
bool IsDiskError(const absl::Status& status) {
  return absl::IsResourceExhausted(status) || absl::IsUnavailable(status);
}

}  // namespace

void Core::CommitStatus(const v1::Job& current, JobStatus next, JobCallback done) {
  // `current` may be the queue's own copy, which the Update below replaces: read it first.
  const std::string job_id = current.id();
  if (auto it = unsaved_.find(job_id); it != unsaved_.end() && done != nullptr) {
    // A placement waits until what happened before it is stored.
    loop_.Post([error = it->second.error, done = std::move(done)]() mutable {
      std::move(done)(error);
    });
    return;
  }
  const int64_t expected_version = current.status().version();
  v1::Job updated = current;
  *updated.mutable_status() = next;
  jobs_.Update(updated);
  if (auto it = unsaved_.find(job_id); it != unsaved_.end()) {
    // Written after the earlier changes, by SaveUnsaved().
    it->second.status = std::move(next);
    it->second.changes += 1;
    return;
  }
  const bool decision = done != nullptr;
  store_.UpdateJobStatus(
      job_id, expected_version, next,
      [this, job_id, decision, written = next, done = std::move(done)](
          absl::StatusOr<v1::Job> committed) mutable {
        loop_.Post([this, job_id, decision, written = std::move(written),
                    committed = std::move(committed), done = std::move(done)]() mutable {
          if (committed.ok()) {
            Committed(*committed);
          } else {
            committed = StatusWriteFailed(job_id, decision, std::move(written), committed.status());
          }
          if (done) std::move(done)(std::move(committed));
        });
      });
}

void Core::Committed(const v1::Job& job) {
  events_.Publish(job);
  if (options_.metrics != nullptr && scheduler::IsTerminal(job.status().state())) {
    options_.metrics->jobs_finished.With({v1::JobStatus::State_Name(job.status().state())})
        .Increment();
  }
}

absl::Status Core::StatusWriteFailed(const std::string& job_id, bool decision,
                                     JobStatus written, const absl::Status& error) {
  if (decision && IsDiskError(error)) {
    // A placement the disk refused: try again in a moment rather than at every round.
    placement_paused_until_ = clock_.Now() + absl::Seconds(1);
  }
  auto it = unsaved_.find(job_id);
  if (it == unsaved_.end() && !decision && (IsDiskError(error) || absl::IsAborted(error))) {
    // What the agents reported happened all the same: keep it and store it later (after a
    // refused write, or over a cancel stored meanwhile).
    it = unsaved_.emplace(job_id, Unsaved{}).first;
    Log(LogLevel::kWarning, "job_status_unsaved",
        {{"job", job_id}, {"state", scheduler::StateName(written.state())},
         {"error", error.message()}});
  }
  if (it != unsaved_.end()) {
    // A write that failed because an earlier one of the job did (a version conflict) fails
    // for the earlier one's reason.
    if (IsDiskError(error) || it->second.error.ok()) it->second.error = error;
    if (!decision) {
      // Later changes failed after this one (version conflict): the last one is the newest.
      it->second.status = std::move(written);
      it->second.changes += 1;
    } else if (const v1::Job* job = jobs_.Find(job_id); job != nullptr) {
      // The decision did not happen: back to the newest change still to be stored.
      v1::Job back = *job;
      *back.mutable_status() = it->second.status;
      jobs_.Reset(back);
    }
    return it->second.error;
  }
  if (!IsDiskError(error)) {
    Log(LogLevel::kError, "job_status_write_failed",
        {{"job", job_id}, {"error", error.ToString()}});
  }
  // The in-memory job ran ahead of the store; take the stored one back.
  if (absl::StatusOr<v1::Job> stored = store_.GetJob(job_id); stored.ok()) {
    jobs_.Reset(*stored);
  }
  return error;
}

void Core::SaveUnsaved() {
  for (auto next = unsaved_.begin(); next != unsaved_.end();) {
    auto entry = next++;
    const std::string& job_id = entry->first;
    Unsaved& unsaved = entry->second;
    if (unsaved.writing) continue;
    absl::StatusOr<v1::Job> stored = store_.GetJob(job_id);
    if (!stored.ok()) continue;  // the next tick tries again
    JobStatus::State stored_state = stored->status().state();
    if (scheduler::IsTerminal(stored_state) ||
        (stored_state == JobStatus::CANCEL_REQUESTED &&
         !scheduler::IsTerminal(unsaved.status.state()))) {
      // A cancel stored meanwhile wins over what was kept, unless that is the job's end.
      jobs_.Reset(*stored);
      unsaved_.erase(entry);
      continue;
    }
    JobStatus status = unsaved.status;
    status.set_version(stored->status().version() + 1);
    unsaved.writing = true;
    store_.UpdateJobStatus(
        job_id, stored->status().version(), std::move(status),
        [this, job_id = job_id, changes = unsaved.changes](absl::StatusOr<v1::Job> committed) {
          loop_.Post([this, job_id, changes, committed = std::move(committed)]() mutable {
            auto it = unsaved_.find(job_id);
            if (it == unsaved_.end()) return;
            it->second.writing = false;
            if (!committed.ok()) {
              it->second.error = committed.status();
              return;
            }
            Committed(*committed);
            if (it->second.changes != changes) return;  // changed meanwhile: store that too
            unsaved_.erase(it);
            // The in-memory job takes the stored version, so that later changes follow it.
            if (jobs_.Find(job_id) != nullptr) jobs_.Update(*committed);
            Log(LogLevel::kInfo, "job_status_saved",
                {{"job", job_id}, {"state", scheduler::StateName(committed->status().state())}});
            RequestSchedule();
          });
        });
  }
}

void Core::Schedule() {
  absl::Time now = clock_.Now();
  // While the state disk refuses writes, a placement could not be stored either.
  if (!unsaved_.empty() || now < placement_paused_until_) return;
  scheduler::PlacementRound round =
      scheduler::PlaceQueuedJobs(jobs_, nodes_, RunningAttempts(), now);
  for (const scheduler::Placement& placement : round.placed) {
    Assign(placement);
    // The launch timeout counts from here.
    if (auto it = attempts_.find(placement.job_id); it != attempts_.end()) {
      it->second.assigned_at = now;
    }
  }
  for (const auto& [job_id, reason] : round.waiting) {
    const v1::Job* job = jobs_.Find(job_id);
    if (job == nullptr || job->status().reason() == reason) continue;
    absl::StatusOr<JobStatus> next =
        scheduler::Transition(job->status(), JobStatus::QUEUED, reason, clock_.Now());
    if (next.ok()) CommitStatus(*job, *std::move(next));
  }
}

std::map<std::string, scheduler::RunningAttempt> Core::RunningAttempts() const {
  std::map<std::string, scheduler::RunningAttempt> running;
  for (const auto& [job_id, attempt] : attempts_) {
    const v1::Job* job = jobs_.Find(job_id);
    if (job == nullptr) continue;  // unknown: placement takes its nodes' end as unknown
    scheduler::RunningAttempt& r = running[job_id];
    // running_since is when the time limit counts from (after a restart: the restart).
    if (attempt.running_since != absl::InfinitePast()) r.running_since = attempt.running_since;
    r.max_run_duration = scheduler::MaxRunDuration(job->spec());
    r.per_node = scheduler::PerNodeDemand(job->spec());
  }
  return running;
}

void Core::Assign(const scheduler::Placement& placement) {
  v1::Job job = *jobs_.Find(placement.job_id);
  int64_t epoch = job.status().attempt() + 1;
  absl::StatusOr<JobStatus> next = scheduler::Transition(
      job.status(), JobStatus::PREPARING,
      absl::StrCat("ASSIGNED nodes=", absl::StrJoin(placement.nodes, ",")), clock_.Now());
  if (!next.ok()) return;
  next->set_attempt(static_cast<int32_t>(epoch));
  next->clear_nodes();
  for (const std::string& node : placement.nodes) next->add_nodes(node);
  next->clear_exits();
  next->clear_cause();
  next->clear_message();
  next->clear_start_time();
  next->clear_gpus();
  for (const std::string& node : placement.nodes) {
    nodes_.Allocate(node, job.id(), placement.per_node);
  }
  Attempt& attempt = attempts_[job.id()];
  attempt = Attempt{};
  attempt.epoch = epoch;
  attempt.nodes = placement.nodes;
  attempt.exec_token = ExecToken(job.id(), epoch);
  attempt.master_port = FreeMasterPort(placement.nodes.front());
  // The digest the name has now: a re-import reaches the next attempt, not this one (nor
  // an assignment sent to it again).
  attempt.image_digest = ImageDigestOf(job.spec());
  next->set_master_port(attempt.master_port);
  UpdateFence(job.id());
  if (options_.metrics != nullptr) options_.metrics->attempts_placed.With({}).Increment();
  Log(LogLevel::kInfo, "job_placed",
      {{"job", job.id()}, {"attempt", epoch}, {"nodes", absl::StrJoin(placement.nodes, ",")}});
  // The attempt and its layout are durable before any agent hears of it.
  CommitStatus(job, *std::move(next), [this, job_id = job.id(), epoch](absl::StatusOr<v1::Job> committed) {
    auto it = attempts_.find(job_id);
    if (it == attempts_.end() || it->second.epoch != epoch) return;
    if (!committed.ok()) {
      for (const std::string& node : it->second.nodes) nodes_.Release(node, job_id);
      attempts_.erase(it);
      UpdateFence(job_id);
      return;
    }
    SendAssignments(*committed, it->second);
  });
}

std::string Core::ImageDigestOf(const v1::JobSpec& spec) const {
  if (IsBuiltInImage(spec.environment().image())) return "";
  absl::MutexLock lock(&images_mu_);
  auto image = images_.find(spec.environment().image());
  return image != images_.end() ? image->second.digest() : "";
}

std::string Core::ExecToken(const std::string& job_id, int64_t epoch) const {
  // 128 bits of SHA-256 over the secret key and the attempt; only its agents ever see it.
  std::string digest =
      archive::Sha256Digest(absl::StrCat(options_.exec_token_key, "\n", job_id, "\n", epoch));
  return digest.substr(digest.find(':') + 1, 32);
}

int32_t Core::FreeMasterPort(const std::string& node) {
  // The next port of the range, after the last one handed out on this node, that no other
  // live attempt with the same first node uses: a rank of an earlier attempt still trying
  // to rendezvous (a stale one on a lost node) does not find a later attempt there.
  std::set<int32_t> used;
  for (const auto& [id, other] : attempts_) {
    if (!other.nodes.empty() && other.nodes.front() == node) used.insert(other.master_port);
  }
  int32_t& next = next_master_port_[node];
  for (int32_t i = 0; i < kMasterPorts; ++i) {
    int32_t port = options_.master_port_base + (next + i) % kMasterPorts;
    if (!used.contains(port)) {
      next = (next + i + 1) % kMasterPorts;
      return port;
    }
  }
  int32_t port = options_.master_port_base + kMasterPorts;  // every one taken: past the range
  while (used.contains(port)) ++port;
  return port;
}

bool Core::StartsWhenReady(const Attempt& attempt) {
  // One node: no launch barrier to wait for, so no START round trip either.
  return attempt.nodes.size() == 1;
}

void Core::SendAssignments(const v1::Job& job, const Attempt& attempt,
                           const std::string& only_node) {
  const v1::JobSpec& spec = job.spec();
  // The datastores as registered now, credentials included: a change reaches the next
  // attempt, not this one. One deleted since the submit is left out; the agent then fails
  // the attempt naming it.
  std::map<std::string, v1::Datastore> datastores;
  {
    absl::MutexLock lock(&datastores_mu_);
    auto add = [&](const std::string& name) ABSL_SHARED_LOCKS_REQUIRED(datastores_mu_) {
      auto it = datastores_.find(name);
      if (it != datastores_.end()) datastores.emplace(it->first, it->second);
    };
    for (const v1::Argument& argument : spec.arguments()) {
      if (argument.has_data()) add(argument.data().datastore());
    }
    for (const v1::OutputTarget& output : spec.outputs()) add(output.datastore());
  }
  int ppn = spec.process_count_per_node();
  for (size_t rank = 0; rank < attempt.nodes.size(); ++rank) {
    if (!only_node.empty() && attempt.nodes[rank] != only_node) continue;
    v1::SchedulerMessage message;
    v1::AssignAttempt* assign = message.mutable_assign();
    assign->mutable_attempt()->set_job_id(job.id());
    assign->mutable_attempt()->set_epoch(attempt.epoch);
    *assign->mutable_spec() = spec;
    assign->set_node_rank(static_cast<int32_t>(rank));
    assign->set_node_count(static_cast<int32_t>(attempt.nodes.size()));
    assign->set_first_rank(static_cast<int32_t>(rank) * ppn);
    assign->set_world_size(static_cast<int32_t>(attempt.nodes.size()) * ppn);
    assign->set_start_when_ready(StartsWhenReady(attempt));
    assign->set_exec_token(attempt.exec_token);
    assign->set_master_port(attempt.master_port);
    for (const std::string& name : attempt.nodes) {
      const v1::Node* node = nodes_.Find(name);
      assign->add_node_addresses(node != nullptr && node->addresses_size() > 0 ? node->addresses(0)
                                                                                : std::string());
      assign->add_node_names(name);
      assign->add_node_peer_endpoints(node != nullptr ? node->peer_endpoint() : std::string());
    }
    assign->set_image_digest(attempt.image_digest);
    for (const auto& [name, datastore] : datastores) *assign->add_datastores() = datastore;
    if (!spec.environment().pip_packages().empty() || !spec.environment().conda_packages().empty()) {
      *assign->mutable_pip() = options_.pip;
    }
    SendTo(attempt.nodes[rank], std::move(message));
  }
}

void Core::SendTo(const std::string& node, v1::SchedulerMessage message) {
  auto it = links_.find(node);
  if (it != links_.end()) it->second->Send(std::move(message));
}

void Core::Cancel(const std::string& job_id, const std::string& reason, JobCallback done) {
  const v1::Job* live = jobs_.Find(job_id);
  if (live == nullptr) {
    // Not live: finished or unknown. Its last write may still be on its way to disk; the
    // store keeps order, so answer from the store after what is queued.
    store_.Barrier([this, job_id, reason, done = std::move(done)](absl::Status) mutable {
      // On the loop, where a write of the job that failed meanwhile is known (unsaved_).
      loop_.Post([this, job_id, reason, done = std::move(done)]() mutable {
        if (auto it = unsaved_.find(job_id); it != unsaved_.end()) {
          std::move(done)(it->second.error);
          return;
        }
        absl::StatusOr<v1::Job> stored = store_.GetJob(job_id);
        if (!stored.ok()) {
          std::move(done)(stored.status());
          return;
        }
        absl::StatusOr<std::optional<JobStatus>> plan =
            scheduler::PlanCancel(job_id, stored->status(), reason, clock_.Now());
        if (!plan.ok()) {
          std::move(done)(plan.status());
        } else if (plan->has_value()) {
          std::move(done)(absl::InternalError(absl::StrCat(
              "job '", job_id, "' is unfinished in the store but unknown to the scheduler")));
        } else {
          std::move(done)(*std::move(stored));
        }
      });
    });
    return;
  }
  v1::Job current = *live;
  absl::StatusOr<std::optional<JobStatus>> plan =
      scheduler::PlanCancel(job_id, current.status(), reason, clock_.Now());
  if (!plan.ok()) {
    std::move(done)(plan.status());
    return;
  }
  if (!plan->has_value()) {
    // Already canceling: answer with the committed job, after the writes in flight.
    store_.Barrier([this, job_id, done = std::move(done)](absl::Status) mutable {
      std::move(done)(store_.GetJob(job_id));
    });
    return;
  }
  if (auto it = unsaved_.find(job_id); it != unsaved_.end()) {
    std::move(done)(it->second.error);  // its earlier changes wait for the disk
    return;
  }
  if (auto it = cancels_.find(job_id); it != cancels_.end()) {
    it->second.push_back(std::move(done));  // answered with the cancel being stored
    return;
  }
  cancels_[job_id].push_back(std::move(done));
  bool stop = (*plan)->state() == JobStatus::CANCEL_REQUESTED;
  std::string message = (*plan)->message();
  // Unlike other changes, a cancel takes effect only once stored: a cancel the client was
  // told failed (the disk refused it) changes nothing, not even how the job's end is read.
  // What agents report meanwhile is decided without it; when such a change is stored
  // first, the cancel fails as a conflict (ABORTED: read again and retry).
  const int64_t expected = current.status().version();
  store_.UpdateJobStatus(
      job_id, expected, **std::move(plan),
      [this, job_id, expected, stop, message](absl::StatusOr<v1::Job> committed) {
        loop_.Post([this, job_id, expected, stop, message,
                    committed = std::move(committed)]() mutable {
          if (committed.ok()) {
            Committed(*committed);
            // A report that came meanwhile was written after it and wins.
            if (const v1::Job* live = jobs_.Find(job_id);
                live != nullptr && live->status().version() == expected) {
              jobs_.Update(*committed);
            }
            Log(LogLevel::kInfo, "job_cancel", {{"job", job_id}, {"stop_processes", stop}});
            if (stop) StopAttempt(job_id, JobStatus::CANCELED_BY_USER, message);
          } else if (auto it = unsaved_.find(job_id); it != unsaved_.end()) {
            committed = it->second.error;
          }
          std::vector<JobCallback> waiting = std::move(cancels_[job_id]);
          cancels_.erase(job_id);
          for (JobCallback& done : waiting) std::move(done)(committed);
        });
      });
}

void Core::StopAttempt(const std::string& job_id, JobStatus::Cause cause,
                       const std::string& message) {
  auto it = attempts_.find(job_id);
  if (it == attempts_.end()) return;
  Attempt& attempt = it->second;
  attempt.stopping = true;
  if (attempt.cause == JobStatus::CAUSE_UNSPECIFIED) {
    attempt.cause = cause;
    attempt.message = message;
  }
  for (const std::string& node : attempt.nodes) {
    if (!attempt.ended.contains(node)) SendStop(job_id, attempt.epoch, node, cause, message);
  }
}

void Core::SendStop(const std::string& job_id, int64_t epoch, const std::string& node,
                    JobStatus::Cause cause, const std::string& message) {
  v1::SchedulerMessage stop;
  stop.mutable_stop()->mutable_attempt()->set_job_id(job_id);
  stop.mutable_stop()->mutable_attempt()->set_epoch(epoch);
  stop.mutable_stop()->set_cause(cause);
  *stop.mutable_stop()->mutable_grace() = ToProtoDuration(options_.stop_grace);
  stop.mutable_stop()->set_message(message);
  SendTo(node, std::move(stop));
}

absl::StatusOr<std::string> Core::AgentHello(std::shared_ptr<AgentLink> link,
                                             const v1::AgentHello& hello) {
  absl::StatusOr<v1::Node> node = nodes_.Register(hello.node(), clock_.Now());
  if (!node.ok()) return node.status();
  const std::string& name = node->name();
  if (auto old = links_.find(name); old != links_.end() && old->second != link) {
    // One live stream per node: the newer one wins (the agent restarted, or its old
    // connection is dead without either side knowing yet). The old one is told why.
    Log(LogLevel::kWarning, "agent_stream_replaced",
        {{"node", name}, {"reason", "a newer stream of the same node said hello"}});
    old->second->Close(absl::AbortedError(absl::StrCat(
        "a newer connection of node '", name,
        "' replaced this one (two agents with one node certificate fight like this)")));
  }
  links_[name] = link;
  Log(LogLevel::kInfo, "agent_connected",
      {{"node", name}, {"attempts", hello.attempts_size()}, {"version", hello.node().agent_version()}});

  v1::SchedulerMessage welcome;
  v1::AgentWelcome* w = welcome.mutable_welcome();
  *w->mutable_heartbeat_interval() = ToProtoDuration(options_.heartbeat_interval);
  *w->mutable_lease() = ToProtoDuration(options_.lease);
  for (const v1::AttemptReport& held : hello.attempts()) {
    for (const storage::LogStreamInfo& stream :
         logs_.Streams(held.attempt().job_id(), held.attempt().epoch())) {
      v1::LogAck* ack = w->add_log_offsets();
      *ack->mutable_attempt() = held.attempt();
      ack->set_rank(stream.rank);
      ack->set_stream(stream.stream);
      ack->set_offset(stream.received);
    }
  }
  link->Send(std::move(welcome));

  // Reconcile what the agent holds with what droverd knows.
  std::map<std::string, int64_t> held_jobs;  // job -> epoch
  for (const v1::AttemptReport& held : hello.attempts()) {
    held_jobs[held.attempt().job_id()] = held.attempt().epoch();
    HandleReport(name, held);
  }
  for (auto& [job_id, attempt] : attempts_) {
    if (std::find(attempt.nodes.begin(), attempt.nodes.end(), name) == attempt.nodes.end()) {
      continue;
    }
    const v1::Job* job = jobs_.Find(job_id);
    if (job != nullptr) {
      nodes_.Allocate(name, job_id, scheduler::PerNodeDemand(job->spec()));
    }
  }
  for (auto& [job_id, attempt] : attempts_) {
    if (attempt.ended.contains(name) ||
        std::find(attempt.nodes.begin(), attempt.nodes.end(), name) == attempt.nodes.end()) {
      continue;
    }
    if (auto held = held_jobs.find(job_id); held != held_jobs.end()) {
      // A stop sent while the agent was away (a cancel, a time limit) was lost with the
      // link, and a restarted agent forgot one it had: it goes again.
      if (attempt.stopping && held->second == attempt.epoch) {
        SendStop(job_id, attempt.epoch, name, attempt.cause, attempt.message);
      }
      continue;
    }
    // The agent does not have an attempt it was given: the assignment was lost on the way,
    // or the node lost the attempt.
    const v1::Job* job = jobs_.Find(job_id);
    if (!attempt.started && !attempt.stopping && job != nullptr &&
        job->status().attempt() == attempt.epoch) {
      // The assignment was sent while the agent was away: send it again.
      Log(LogLevel::kInfo, "attempt_reassigned", {{"job", job_id}, {"node", name}});
      SendAssignments(*job, attempt, name);
      continue;
    } else {
      attempt.ended.insert(name);
      if (attempt.cause == JobStatus::CAUSE_UNSPECIFIED) {
        attempt.cause = JobStatus::NODE_LOST;
        attempt.message = absl::StrCat("the agent on ", name, " no longer has the attempt");
      }
    }
    StopAttempt(job_id, attempt.cause, attempt.message);
    if (attempt.ended.size() == attempt.nodes.size()) {
      loop_.Post([this, job_id = job_id] { FinishAttempt(job_id); });
    }
  }
  Schedule();
  return name;
}

void Core::AgentGone(const std::string& node, const AgentLink* link) {
  auto it = links_.find(node);
  if (it != links_.end() && it->second.get() == link) {
    links_.erase(it);
    Log(LogLevel::kInfo, "agent_disconnected", {{"node", node}});
  }
}

void Core::AgentMessage(const std::string& node, const v1::AgentMessage& message) {
  if (!NodeSeen(node)) return;
  if (message.has_report()) HandleReport(node, message.report());
}

void Core::HandleReport(const std::string& node, const v1::AttemptReport& report) {
  const std::string& job_id = report.attempt().job_id();
  const v1::Job* job = jobs_.Find(job_id);
  auto it = attempts_.find(job_id);
  bool current = job != nullptr && it != attempts_.end() &&
                 it->second.epoch == report.attempt().epoch() &&
                 std::find(it->second.nodes.begin(), it->second.nodes.end(), node) !=
                     it->second.nodes.end();
  // A node whose part ended may only repeat that (a lost node that came back may not).
  bool ended_here = current && it->second.ended.contains(node);
  if (!current || (ended_here && report.phase() != v1::AttemptReport::ENDED)) {
    // A finished job, an old epoch, a node that is not part of the attempt, or a lost one:
    // fence it off. A report on the current attempt from a node that was never in it is
    // logged: a node may speak only of its own attempts.
    if (it != attempts_.end() && it->second.epoch == report.attempt().epoch() &&
        std::find(it->second.nodes.begin(), it->second.nodes.end(), node) ==
            it->second.nodes.end()) {
      Log(LogLevel::kWarning, "agent_report_refused",
          {{"node", node}, {"job", job_id}, {"epoch", report.attempt().epoch()},
           {"phase", v1::AttemptReport::Phase_Name(report.phase())},
           {"reason", "attempt_not_on_this_node"}});
    }
    if (report.phase() != v1::AttemptReport::ENDED) {
      Log(LogLevel::kInfo, "stale_attempt_stopped",
          {{"job", job_id}, {"epoch", report.attempt().epoch()}, {"node", node}});
      v1::SchedulerMessage stop;
      *stop.mutable_stop()->mutable_attempt() = report.attempt();
      *stop.mutable_stop()->mutable_grace() = ToProtoDuration(options_.stop_grace);
      stop.mutable_stop()->set_message("droverd does not know this attempt");
      SendTo(node, std::move(stop));
    }
    return;
  }
  Attempt& attempt = it->second;
  JobStatus::State state = job->status().state();
  absl::Time now = clock_.Now();
  if (report.gpus_size() > 0 && !attempt.gpus.contains(node)) {
    v1::NodeGpus& held = attempt.gpus[node];
    held.set_node(node);
    *held.mutable_gpus() = report.gpus();
  }
  switch (report.phase()) {
    case v1::AttemptReport::PREPARING: {
      attempt.last_preparing[node] = report.reason().empty() ? "PREPARING" : report.reason();
      if (state != JobStatus::PREPARING) break;
      std::string reason = absl::StrCat(report.reason().empty() ? "PREPARING" : report.reason(),
                                        " node=", node);
      if (reason == job->status().reason()) break;
      if (auto next = scheduler::Transition(job->status(), JobStatus::PREPARING, reason, now);
          next.ok()) {
        CommitStatus(*job, *std::move(next));
      }
      break;
    }
    case v1::AttemptReport::READY: {
      attempt.ready.insert(node);
      if (attempt.started && !attempt.stopping && !StartsWhenReady(attempt)) {
        // A node prepared the attempt again after its agent restarted before it had the
        // START (sent while it was away): it is sent again.
        SendStart(job_id, attempt.epoch, node);
        break;
      }
      if (attempt.started || attempt.stopping || attempt.ready.size() < attempt.nodes.size()) {
        break;
      }
      PassLaunchBarrier(job_id, attempt);
      break;
    }
    case v1::AttemptReport::RUNNING:
    case v1::AttemptReport::FINALIZING: {
      if (!attempt.started) {
        // The node's processes run, so the launch barrier was passed: droverd restarted after
        // it sent START and before STARTING was stored. The other nodes are sent START again
        // (one whose processes run already ignores it; one that prepared again needs it).
        if (attempt.stopping) break;
        Log(LogLevel::kInfo, "launch_barrier_passed_before_restart", {{"job", job_id}, {"node", node}});
        attempt.ready.insert(node);
        PassLaunchBarrier(job_id, attempt);
        job = jobs_.Find(job_id);
        state = job->status().state();
      }
      if (state == JobStatus::STARTING) {
        auto next = scheduler::Transition(job->status(), JobStatus::RUNNING, "", now);
        if (!next.ok()) break;
        *next->mutable_start_time() = TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(now));
        attempt.running_since = now;
        CommitStatus(*job, *std::move(next));
        Log(LogLevel::kInfo, "job_running", {{"job", job_id}, {"attempt", attempt.epoch}});
        job = jobs_.Find(job_id);
        state = job->status().state();
      }
      if (report.phase() != v1::AttemptReport::FINALIZING || state != JobStatus::RUNNING) break;
      if (auto next =
              scheduler::Transition(job->status(), JobStatus::FINALIZING, "UPLOADING_OUTPUTS", now);
          next.ok()) {
        CommitStatus(*job, *std::move(next));
      }
      break;
    }
    case v1::AttemptReport::ENDED: {
      if (attempt.ended.contains(node)) break;
      attempt.ended.insert(node);
      for (v1::RankExit exit : report.exits()) {
        exit.set_node(node);
        attempt.exits.push_back(exit);
        if (FailedFirst(exit, attempt.first_failure)) attempt.first_failure = exit;
      }
      if (!report.outputs_digest().empty()) {
        attempt.outputs_digest = report.outputs_digest();
        attempt.outputs_size = report.outputs_size();
      }
      bool failed = report.cause() != JobStatus::CAUSE_UNSPECIFIED;
      for (const v1::RankExit& e : report.exits()) {
        failed = failed || e.exit_code() != 0 || e.signal() != 0;
      }
      if (failed && attempt.cause == JobStatus::CAUSE_UNSPECIFIED) {
        attempt.cause = report.cause() != JobStatus::CAUSE_UNSPECIFIED ? report.cause()
                                                                       : JobStatus::PROCESS_FAILED;
        attempt.message = report.message();
        for (const v1::RankExit& e : report.exits()) {
          if (e.oom_killed()) attempt.cause = JobStatus::OUT_OF_MEMORY;
          if (attempt.message.empty() && report.has_first_failed_rank() &&
              e.rank() == report.first_failed_rank()) {
            v1::RankExit named = e;
            named.set_node(node);
            attempt.message = DescribeExit(named);
          }
        }
      }
      if (attempt.ended.size() == attempt.nodes.size()) {
        FinishAttempt(job_id);
      } else if (failed) {
        StopAttempt(job_id, attempt.cause, attempt.message);  // the gang ends together
      } else if (job->spec().distributed_backend() == v1::JobSpec::MPI &&
                 node == attempt.nodes.front()) {
        // mpirun, on node rank 0, has ended with every rank: the other nodes' containers
        // only kept them; they end now, without a cause of their own.
        StopAttempt(job_id, JobStatus::CAUSE_UNSPECIFIED, "mpirun ended");
      }
      break;
    }
    default:
      break;
  }
}

void Core::SendStart(const std::string& job_id, int64_t epoch, const std::string& node) {
  v1::SchedulerMessage start;
  start.mutable_start()->mutable_attempt()->set_job_id(job_id);
  start.mutable_start()->mutable_attempt()->set_epoch(epoch);
  SendTo(node, std::move(start));
}

void Core::PassLaunchBarrier(const std::string& job_id, Attempt& attempt) {
  attempt.started = true;
  // A one-node attempt starts without being told (start_when_ready).
  for (size_t k = 0; k < attempt.nodes.size() && !StartsWhenReady(attempt); ++k) {
    SendStart(job_id, attempt.epoch, attempt.nodes[k]);
  }
  const v1::Job* job = jobs_.Find(job_id);
  if (job == nullptr) return;
  if (auto next = scheduler::Transition(job->status(), JobStatus::STARTING, "STARTING", clock_.Now());
      next.ok()) {
    // Every node has said which GPUs it gave the attempt by its READY.
    for (const std::string& name : attempt.nodes) {
      if (auto held = attempt.gpus.find(name); held != attempt.gpus.end()) {
        *next->add_gpus() = held->second;
      }
    }
    CommitStatus(*job, *std::move(next));
  }
}

void Core::FinishAttempt(const std::string& job_id) {
  auto it = attempts_.find(job_id);
  const v1::Job* job = jobs_.Find(job_id);
  if (it == attempts_.end()) return;
  Attempt attempt = std::move(it->second);
  attempts_.erase(it);
  UpdateFence(job_id);
  // Its logs are all in (an agent reports its end once droverd stored them): close them.
  logs_.EndAttempt(job_id, attempt.epoch);
  for (const std::string& node : attempt.nodes) nodes_.Release(node, job_id);
  if (job == nullptr) return;

  std::sort(attempt.exits.begin(), attempt.exits.end(),
            [](const v1::RankExit& a, const v1::RankExit& b) { return a.rank() < b.rank(); });
  bool all_ok = attempt.cause == JobStatus::CAUSE_UNSPECIFIED;
  const v1::RankExit* first_failure = nullptr;
  for (const v1::RankExit& e : attempt.exits) {
    if (e.exit_code() != 0 || e.signal() != 0) {
      all_ok = false;
      if (first_failure == nullptr) first_failure = &e;
    }
  }
  JobStatus::State end;
  JobStatus::Cause cause = attempt.cause;
  std::string message = attempt.message;
  if (job->status().state() == JobStatus::CANCEL_REQUESTED ||
      cause == JobStatus::CANCELED_BY_USER) {
    end = JobStatus::CANCELED;
    cause = JobStatus::CANCELED_BY_USER;
    message = job->status().message().empty() ? "canceled by user" : job->status().message();
  } else if (all_ok) {
    end = JobStatus::COMPLETED;
  } else {
    end = JobStatus::FAILED;
    if (cause == JobStatus::CAUSE_UNSPECIFIED) cause = JobStatus::PROCESS_FAILED;
    // The rank that failed first names the failure: the others were mostly stopped because
    // of it (under MPI the first report may only say that mpirun failed).
    if (cause == JobStatus::PROCESS_FAILED && attempt.first_failure.has_value()) {
      message = DescribeExit(*attempt.first_failure);
    }
    if (message.empty() && first_failure != nullptr) message = DescribeExit(*first_failure);
    if (cause == JobStatus::TIMEOUT && message.empty()) message = "max_run_duration exceeded";
  }
  absl::Time now = clock_.Now();
  if (end == JobStatus::COMPLETED) {
    // Reports that were not seen (the agent reconnected, or droverd restarted, meanwhile):
    // the job passes through their states, so the recorded history stays a valid one.
    for (auto [step, step_reason] : {std::pair{JobStatus::STARTING, "STARTING"},
                                     std::pair{JobStatus::RUNNING, ""},
                                     std::pair{JobStatus::FINALIZING, "UPLOADING_OUTPUTS"}}) {
      if (job->status().state() == JobStatus::FINALIZING) break;
      if (job->status().state() == step) continue;  // not again with a new version
      absl::StatusOr<JobStatus> next = scheduler::Transition(job->status(), step, step_reason, now);
      if (!next.ok()) continue;
      if (step == JobStatus::RUNNING && !next->has_start_time()) {
        *next->mutable_start_time() = TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(now));
      }
      CommitStatus(*job, *std::move(next));
      job = jobs_.Find(job_id);
    }
  }
  std::string reason = scheduler::StateName(end);
  bool retry = end == JobStatus::FAILED && job->status().attempt() <= job->spec().max_retries();
  absl::StatusOr<JobStatus> next =
      retry ? scheduler::Transition(job->status(), JobStatus::QUEUED,
                                    absl::StrCat("RETRYING after attempt ", job->status().attempt()),
                                    now)
            : scheduler::Transition(job->status(), end, reason, now);
  if (!next.ok()) {
    Log(LogLevel::kError, "attempt_end_refused", {{"job", job_id}, {"error", next.status().message()}});
    return;
  }
  next->set_cause(retry ? JobStatus::CAUSE_UNSPECIFIED : cause);
  next->set_message(message);
  next->clear_exits();
  for (const v1::RankExit& e : attempt.exits) *next->add_exits() = e;
  next->set_outputs_digest(attempt.outputs_digest);
  next->set_outputs_size(attempt.outputs_size);
  Log(LogLevel::kInfo, retry ? "job_retried" : "job_ended",
      {{"job", job_id}, {"attempt", attempt.epoch}, {"state", scheduler::StateName(end)},
       {"cause", JobStatus::Cause_Name(cause)}, {"message", message}});
  CommitStatus(*job, *std::move(next));
  Schedule();
}

void Core::Tick() {
  absl::Time now = clock_.Now();
  if (options_.metrics != nullptr && now - metrics_updated_ >= absl::Seconds(1)) {
    metrics_updated_ = now;
    options_.metrics->SetJobStates(jobs_.CountByState());
    std::map<v1::Node::State, int> nodes;
    for (const v1::Node& node : nodes_.List()) ++nodes[node.state()];
    options_.metrics->SetNodeStates(nodes);
  }
  SaveUnsaved();
  CheckLeases(now);
  StopLateLaunches(now);
  for (auto& [job_id, attempt] : attempts_) {
    const v1::Job* job = jobs_.Find(job_id);
    if (job == nullptr || attempt.stopping || attempt.running_since == absl::InfinitePast()) {
      continue;
    }
    absl::Duration max = scheduler::MaxRunDuration(job->spec());
    if (max > absl::ZeroDuration() && now - attempt.running_since > max) {
      StopAttempt(job_id, JobStatus::TIMEOUT,
                  absl::StrCat("max_run_duration ", absl::FormatDuration(max), " exceeded"));
    }
  }
  Schedule();
}

void Core::StopLateLaunches(absl::Time now) {
  if (options_.launch_timeout <= absl::ZeroDuration()) return;
  for (auto& [job_id, attempt] : attempts_) {
    if (attempt.started || attempt.stopping) continue;
    if (attempt.assigned_at == absl::InfinitePast()) {
      attempt.assigned_at = now;  // restored at start: its nodes get the full time again
      continue;
    }
    if (now - attempt.assigned_at <= options_.launch_timeout) continue;
    std::string message = NotReadyMessage(attempt, options_.launch_timeout);
    Log(LogLevel::kWarning, "launch_timeout", {{"job", job_id}, {"attempt", attempt.epoch},
                                                {"message", message}});
    StopAttempt(job_id, JobStatus::LAUNCH_FAILED, message);
  }
}

std::string Core::NotReadyMessage(const Attempt& attempt, absl::Duration waited) {
  std::vector<std::pair<std::string, std::string>> late;  // node, its last PREPARING reason
  for (const std::string& node : attempt.nodes) {
    if (attempt.ready.contains(node)) continue;
    auto last = attempt.last_preparing.find(node);
    late.emplace_back(node, last == attempt.last_preparing.end() ? "no report" : last->second);
  }
  std::string within = absl::StrCat(" not ready within ", absl::FormatDuration(waited));
  if (late.size() == 1) {
    return absl::StrCat("node ", late[0].first, within, " (last: ", late[0].second, ")");
  }
  return absl::StrCat("nodes ",
                      absl::StrJoin(late, ", ",
                                    [](std::string* out, const auto& l) {
                                      absl::StrAppend(out, l.first, " (last: ", l.second, ")");
                                    }),
                      within);
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
  if (absl::Status valid = CheckImageName("image.name", image.name()); !valid.ok()) {
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
  if (absl::Status valid = CheckDatastore(request, options_.datastore_roots); !valid.ok()) {
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
                          std::move(done)(MaskCredentials(datastore));
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
