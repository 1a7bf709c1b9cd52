// Attempt, its lifecycle: the thread's course from assignment to end (prepare, create,
// READY, START, run, watch, finish), STOP and Detach, the reports and their record, and the
// watch loop over the running container (its stop escalation and system metrics). See
// attempt.h.
#include "agent/attempt.h"

#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <filesystem>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/attempt_record.h"
#include "agent/launcher/init_command.h"
#include "agent/stop_escalation.h"
#include "common/failpoint.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace drover::agent {
namespace {

namespace fs = std::filesystem;

}  // namespace

Attempt::Attempt(AttemptEnv env, v1::AssignAttempt assignment)
    : env_(std::move(env)),
      assignment_(std::move(assignment)),
      dir_(Dir(env_.work_dir, assignment_.attempt())),
      container_(ContainerId(env_.work_dir, assignment_.attempt())),
      waiter_(*env_.clock),
      // Without one (EMFILE) the watch loop looks every 20 ms (WaitOrWake's timeout).
      watch_wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      sampler_(env_.metrics_interval) {
  absl::MutexLock lock(&mu_);
  *last_.mutable_attempt() = assignment_.attempt();
  last_.set_phase(v1::AttemptReport::PREPARING);
  saved_phase_ = v1::AttemptReport::PREPARING;  // a record without a report says so
}

std::string Attempt::ContainerId(const std::string& work_dir, const v1::AttemptRef& attempt) {
  // Container ids (and so cgroup paths) are unique per machine, not only per agent: several
  // agents (test hosts) may share a machine, and job ids repeat across clusters.
  return absl::StrCat("drover-", attempt.job_id(), "-", attempt.epoch(), "-",
                      absl::Hex(std::hash<std::string>()(work_dir) & 0xffffffff, absl::kZeroPad8));
}

std::string Attempt::Dir(const std::string& work_dir, const v1::AttemptRef& attempt) {
  return absl::StrCat(work_dir, "/attempts/", attempt.job_id(), "-", attempt.epoch());
}

Attempt::~Attempt() {
  Stop(v1::JobStatus::CAUSE_UNSPECIFIED, absl::Seconds(1), "agent stopping");
  if (thread_.joinable()) thread_.join();
}

void Attempt::Begin() { thread_ = std::thread([this] { Run(); }); }

void Attempt::WakeWatch() {
  if (!watch_wake_.valid()) return;
  const uint64_t one = 1;
  (void)!::write(watch_wake_.get(), &one, sizeof one);
}

void Attempt::Detach() {
  {
    absl::MutexLock lock(&mu_);
    detach_ = true;
  }
  waiter_.Notify();
  WakeWatch();
}

bool Attempt::Detached() {
  absl::MutexLock lock(&mu_);
  return detach_;
}

bool Attempt::Interrupted() {
  absl::MutexLock lock(&mu_);
  return stop_ || detach_;
}

void Attempt::StartProcesses() {
  {
    absl::MutexLock lock(&mu_);
    start_ = true;
  }
  waiter_.Notify();
}

void Attempt::Stop(v1::JobStatus::Cause cause, absl::Duration grace, const std::string& message) {
  {
    absl::MutexLock lock(&mu_);
    if (stop_) return;
    stop_ = true;
    stop_cause_ = cause;
    stop_grace_ = grace;
    stop_message_ = message;
  }
  waiter_.Notify();
  WakeWatch();
}

v1::AttemptReport Attempt::LastReport() {
  absl::MutexLock lock(&mu_);
  return last_;
}

void Attempt::Report(v1::AttemptReport::Phase phase, const std::string& reason) {
  v1::AttemptReport report;
  *report.mutable_attempt() = assignment_.attempt();
  report.set_phase(phase);
  report.set_reason(reason);
  for (const NodeGpu& gpu : gpus_) *report.add_gpus() = gpu.gpu;
  Record(report);
  env_.report(report);
}

void Attempt::Record(const v1::AttemptReport& report) {
  bool changed;
  {
    absl::MutexLock lock(&mu_);
    last_ = report;
    changed = report.phase() != saved_phase_;
    saved_phase_ = report.phase();
  }
  // Only phase changes are kept on disk: what a later agent needs to take the attempt over.
  if (!changed) return;
  if (absl::Status s = SaveReport(env_.work_dir, report); !s.ok()) {
    Log(LogLevel::kWarning, "attempt_record_failed",
        {{"job", report.attempt().job_id()}, {"error", s.message()}});
  }
}

void Attempt::Run() {
  const std::string job = assignment_.attempt().job_id();
  // A measurement for operators (a histogram), on the agent's clock like every other time.
  absl::Time preparing = env_.clock->Now();
  absl::Status prepared = Prepare();
  if (env_.metrics != nullptr) {
    env_.metrics->preparation_seconds.With({prepared.ok() ? "ok" : "failed"})
        .Observe(absl::ToDoubleSeconds(env_.clock->Now() - preparing));
  }
  if (!prepared.ok() && Detached()) return LeaveDetached();
  if (!prepared.ok()) {
    Log(LogLevel::kWarning, "attempt_prepare_failed", {{"job", job}, {"error", prepared.message()}});
    if (absl::IsCancelled(prepared)) {  // a STOP ended a mount or copy: end as it asked
      FinishAsStopped();
      return;
    }
    Finish(v1::JobStatus::LAUNCH_FAILED, std::string(prepared.message()));
    return;
  }
  const bool at_once = assignment_.start_when_ready();
  if (!at_once) {
    // The container is created (runc create) before READY, so that START costs only
    // `runc start` and creating it overlaps with the other nodes of the launch barrier.
    Report(v1::AttemptReport::PREPARING, "CREATING_CONTAINER");
    absl::Status s = env_.runtime->Create(BuildContainer());
    if (absl::IsAlreadyExists(s) && recovered_) {
      // A `runc create` of the agent process this one took over from, still on its way when
      // the container was looked at: nothing of it started (no start was intended).
      Log(LogLevel::kInfo, "stale_container_removed", {{"container", container_}});
      if (absl::Status deleted = env_.runtime->Delete(container_); deleted.ok()) {
        s = env_.runtime->Create(BuildContainer());
      }
    }
    if (!s.ok()) {
      std::string message = absl::StrCat("creating the container: ", s.message());
      Log(LogLevel::kWarning, "attempt_launch_failed", {{"job", job}, {"error", message}});
      Finish(v1::JobStatus::LAUNCH_FAILED, message);
      return;
    }
    created_ = true;
    Failpoint("attempt.after_create");
  }
  Report(v1::AttemptReport::READY);
  {
    absl::MutexLock lock(&mu_);
    if (!at_once) {
      mu_.Await(absl::Condition(
          +[](Attempt* a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(a->mu_) {
            return a->start_ || a->stop_ || a->detach_;
          },
          this));
    }
    if (detach_) {
      mu_.Unlock();
      LeaveDetached();
      mu_.Lock();
      return;
    }
    if (stop_) {
      v1::JobStatus::Cause cause = stop_cause_;
      std::string message = stop_message_;
      mu_.Unlock();
      Finish(cause, message);
      mu_.Lock();
      return;
    }
  }
  absl::Status ran = RunContainer(/*create=*/at_once);
  if (Detached()) return LeaveDetached();
  if (!ran.ok()) {
    Log(LogLevel::kWarning, "attempt_launch_failed", {{"job", job}, {"error", ran.message()}});
    Finish(v1::JobStatus::LAUNCH_FAILED, std::string(ran.message()));
    return;
  }
  FinishAsStopped();
}

void Attempt::LeaveDetached() {
  LeaveJobData(data_);  // rclone mounts go on serving the job
  Log(LogLevel::kInfo, "attempt_detached",
      {{"job", assignment_.attempt().job_id()}, {"epoch", assignment_.attempt().epoch()},
       {"container", created_ ? container_ : ""}});
}

void Attempt::FinishAsStopped() {
  v1::JobStatus::Cause cause;
  std::string message;
  {
    absl::MutexLock lock(&mu_);
    cause = stop_cause_;
    message = stop_message_;
  }
  Finish(cause, message);
}

absl::Status Attempt::Prepare() {
  const v1::JobSpec& spec = assignment_.spec();
  Report(v1::AttemptReport::PREPARING, "CREATING_JOB_FOLDER");
  std::error_code error;
  fs::remove_all(dir_, error);  // leftovers of an earlier agent run of the same attempt
  for (const char* sub : {"/job/code", "/job/outputs", "/job/logs", "/bundle"}) {
    fs::create_directories(dir_ + sub, error);
    if (error) {
      return absl::UnavailableError(
          absl::StrCat("cannot create ", dir_, sub, " on ", env_.node_name, ": ", error.message()));
    }
  }
  DROVER_RETURN_IF_ERROR(WriteNodeFiles());
  DROVER_RETURN_IF_ERROR(TakeGpus());
  if (!spec.source_snapshot().empty()) {
    Report(v1::AttemptReport::PREPARING, "FETCHING_SNAPSHOT");
    if (env_.snapshots == nullptr) {
      return absl::FailedPreconditionError("source_snapshot: this agent has no snapshot cache");
    }
    // droverd may be restarting: the download waits for it rather than fail the attempt.
    DROVER_RETURN_IF_ERROR(env_.snapshots->CopyInto(
        spec.source_snapshot(), assignment_.attempt().job_id(), dir_ + "/job/code",
        {.waiter = &waiter_,
         .stopped = [this] { return Interrupted(); },
         .await_droverd =
             [this](absl::Time give_up) {
               AwaitDroverd(give_up, [this] { return Interrupted(); });
             }}));
  }
  if (const std::string& image = spec.environment().image(); image != "host") {
    if (env_.images == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          "environment.image '", image, "': this agent has no image cache; use image 'host'"));
    }
    // Reports PULLING_IMAGE / UNPACKING_IMAGE only when there is such work (or a wait).
    absl::StatusOr<UnpackedImage> unpacked = env_.images->Get(
        image, assignment_.image_digest(), [this](absl::string_view reason) {
          Report(v1::AttemptReport::PREPARING, std::string(reason));
        });
    if (!unpacked.ok()) return unpacked.status();
    image_ = *std::move(unpacked);
  }
  DROVER_RETURN_IF_ERROR(PrepareEnvironment());
  bool has_data = spec.inputs_size() > 0;
  for (const v1::Argument& argument : spec.arguments()) has_data = has_data || argument.has_data();
  if (has_data) Report(v1::AttemptReport::PREPARING, "PREPARING_DATA");
  absl::StatusOr<JobData> data = PrepareJobData(
      assignment_,
      {.job_dir = dir_ + "/job",
       .rclone_dir = dir_ + "/rclone",
       .mount_dir = AttemptMountDir(env_.work_dir, assignment_.attempt()),
       .record_dir = AttemptRecordDir(env_.work_dir, assignment_.attempt()),
       .node_name = env_.node_name,
       .container_root = env_.userns.size > 0 ? int64_t{env_.userns.host_id} : -1,
       .datastore_roots = env_.datastore_roots,
       .rclone = {.clock = env_.clock},
       .stop = [this] { return Interrupted(); },
       .report =
           [this](const std::string& reason) { Report(v1::AttemptReport::PREPARING, reason); }});
  if (!data.ok()) return data.status();
  data_ = *std::move(data);
  return absl::OkStatus();
}

absl::Status Attempt::TakeGpus() {
  const int want = assignment_.spec().resources().gpus();
  if (want <= 0) return absl::OkStatus();
  // droverd places a job only where enough GPUs are free, so this fails only when droverd
  // and this agent disagree (an attempt droverd gave up still ending here).
  absl::StatusOr<std::vector<NodeGpu>> held =
      env_.gpus != nullptr
          ? env_.gpus->Allocate(GpuOwner(), want)
          : absl::ResourceExhaustedError(absl::StrCat("needs ", want, " GPUs but has none"));
  if (!held.ok()) {
    return absl::ResourceExhaustedError(absl::StrCat("resources.gpus: node ", env_.node_name,
                                                     " cannot give the job its GPUs: the job ",
                                                     held.status().message()));
  }
  gpus_ = *std::move(held);
  Log(LogLevel::kInfo, "attempt_gpus",
      {{"job", assignment_.attempt().job_id()}, {"gpus", DescribeGpus(gpus_)}});
  return absl::OkStatus();
}

std::string Attempt::GpuOwner() const {
  return absl::StrCat(assignment_.attempt().job_id(), "/", assignment_.attempt().epoch());
}

absl::Status Attempt::PrepareEnvironment() {
  const v1::Environment& wanted = assignment_.spec().environment();
  if (!NeedsEnvironment(wanted)) return absl::OkStatus();
  if (env_.environments == nullptr) {
    return absl::FailedPreconditionError(
        "environment.pip_packages/conda_packages/horovod: this agent has no environment cache");
  }
  EnvironmentRequest request{
      .image = wanted.image(),
      // An environment's files belong to the user namespace's range it was built under (an
      // image's key already names its range): another range builds its own.
      .image_identity = image_.rootfs.empty()
                            ? absl::StrCat(HostPythonIdentity(), "userns=", env_.userns.host_id,
                                           ":", env_.userns.size, "\n")
                            : image_.key,
      .image_rootfs = image_.rootfs,
      .image_env = image_.env,
      .pip_packages = {wanted.pip_packages().begin(), wanted.pip_packages().end()},
      .conda_packages = {wanted.conda_packages().begin(), wanted.conda_packages().end()},
      .horovod = wanted.horovod(),
      .pip = assignment_.pip()};
  const std::string log_dir = dir_ + "/prepare";
  env_.logs->WatchFile(assignment_.attempt(), assignment_.node_rank(), v1::PREPARE,
                       EnvironmentCache::LogPath(log_dir));
  absl::StatusOr<EnvironmentCache::Prepared> prepared = env_.environments->Get(
      request, {.job_id = assignment_.attempt().job_id(),
                .node_name = env_.node_name,
                .log_dir = log_dir,
                .building = [this] { Report(v1::AttemptReport::PREPARING, "BUILDING_ENVIRONMENT"); },
                .stopped = [this] { return Interrupted(); }});
  if (!prepared.ok()) return prepared.status();
  environment_ = *std::move(prepared);
  return absl::OkStatus();
}

bool Attempt::AwaitDroverd(absl::Time give_up, const std::function<bool()>& stop) {
  if (env_.await_droverd == nullptr) return true;
  while (!env_.await_droverd(absl::Seconds(1))) {
    if (stop() || env_.shutting_down() || env_.clock->Now() >= give_up) return false;
  }
  return true;
}

absl::StatusOr<std::string> Attempt::ExecTarget(const std::string& token,
                                                const std::string& caller) {
  if (absl::Status s = CheckCallerOfAttempt(assignment_, caller); !s.ok()) return s;
  if (assignment_.exec_token().empty() || token != assignment_.exec_token()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "wrong secret for job ", assignment_.attempt().job_id(), " attempt ",
        assignment_.attempt().epoch()));
  }
  absl::MutexLock lock(&mu_);
  switch (last_.phase()) {
    case v1::AttemptReport::RUNNING:
      return container_;
    case v1::AttemptReport::PREPARING:
    case v1::AttemptReport::READY:
      return absl::FailedPreconditionError("the attempt's processes have not started yet");
    default:
      return absl::NotFoundError("the attempt's processes have ended on this node");
  }
}

absl::Status Attempt::RunContainer(bool create) {
  // Intent first: a later agent process must know that these processes may have started,
  // even if this one dies before `runc start` returns (takeover.h). Nothing starts when it
  // cannot be recorded.
  if (absl::Status s = SaveStartIntent(env_.work_dir, assignment_.attempt()); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("recording the start on ", env_.node_name,
                                                " (nothing was started): ", s.message()));
  }
  // Finish() deletes the container whatever happens here.
  absl::Status started =
      create ? env_.runtime->Run(BuildContainer()) : env_.runtime->Start(container_);
  if (!started.ok()) {
    return absl::Status(started.code(),
                        absl::StrCat("starting the container: ", started.message()));
  }
  created_ = true;
  Failpoint("attempt.after_start");
  env_.logs->Watch(assignment_.attempt(), Logs());
  Report(v1::AttemptReport::RUNNING);
  Log(LogLevel::kInfo, "attempt_running", {{"job", assignment_.attempt().job_id()}, {"container", container_}});
  return WatchContainer();
}

absl::Status Attempt::WatchContainer() {
  // Counted while this loop watches the container, whichever way it leaves.
  struct Running {
    Gauge* gauge;
    explicit Running(Gauge* g) : gauge(g) {
      if (gauge != nullptr) gauge->Add(1);
    }
    ~Running() {
      if (gauge != nullptr) gauge->Add(-1);
    }
  } running(env_.metrics != nullptr ? &env_.metrics->containers_running.With({}) : nullptr);
  StopEscalation escalation;
  running_since_ = env_.clock->Now();
  // The stop's grace, once a STOP came (the escalation's next signal is due after it).
  absl::Duration grace = absl::ZeroDuration();
  while (true) {
    if (sampler_.Due(env_.clock->Now())) SampleSystemMetrics();
    // The loop sleeps in the runtime's wait for the container's end (a kernel wait on PID 1's
    // pidfd and watch_wake_) until PID 1 exits, a STOP or Detach() writes to watch_wake_
    // (acted on at once: a stop of a gang, since its end waits for its slowest node), the
    // next system sample or the escalation's SIGKILL is due, or at most a second passes.
    constexpr absl::Duration kLongestWait = absl::Seconds(1);
    const absl::Time now = env_.clock->Now();
    const absl::Time next =
        std::min({sampler_.NextDue(), escalation.NextAt(grace), now + kLongestWait});
    const int wait_ms = static_cast<int>(std::clamp<int64_t>(
        absl::ToInt64Milliseconds(absl::Ceil(next - now, absl::Milliseconds(1))), 1,
        absl::ToInt64Milliseconds(kLongestWait)));
    absl::StatusOr<ContainerExit> exit =
        env_.runtime->WaitOrWake(container_, wait_ms, watch_wake_.get());
    if (!exit.ok() && absl::IsNotFound(exit.status()) && recovered_) {
      // Deleted by an earlier agent process that died before it reported the end: the
      // ranks' exit files still tell how they ended.
      exit = ContainerExit{.exit_code = -1, .signal = SIGKILL};
    }
    if (exit.ok()) {
      exited_ = true;
      // The last system sample, read before the container (and its cgroup) is deleted: a
      // job shorter than the sampling interval still shows its memory peak.
      usage_ = sampler_.End(env_.clock->Now(), exit->usage);
      ReadExits(*exit);
      return absl::OkStatus();
    }
    if (!absl::IsDeadlineExceeded(exit.status())) {
      return absl::Status(exit.status().code(),
                          absl::StrCat("watching the container: ", exit.status().message()));
    }
    if (watch_wake_.valid()) {
      // Drained before the flags are read: a Stop() after this read writes again.
      uint64_t count = 0;
      (void)!::read(watch_wake_.get(), &count, sizeof count);
    }
    bool stop;
    {
      absl::MutexLock lock(&mu_);
      if (detach_) return absl::AbortedError("the agent stops; the processes keep running");
      stop = stop_;
      grace = stop_grace_;
    }
    switch (escalation.Next(env_.clock->Now(), stop, grace)) {
      case StopEscalation::Signal::kTerminate:
        // drover-init forwards SIGTERM to every rank and kills them after its own grace.
        (void)env_.runtime->Signal(container_, SIGTERM, false);
        break;
      case StopEscalation::Signal::kKill:
        (void)env_.runtime->Signal(container_, SIGKILL, true);
        break;
      case StopEscalation::Signal::kNone:
        break;
    }
  }
}

void Attempt::SampleSystemMetrics() {
  // One reading for the interval (when the next is due, the CPU rate) and the points' time.
  const absl::Time now = env_.clock->Now();
  absl::StatusOr<ContainerStats> stats = env_.runtime->Stats(container_);
  if (!stats.ok()) {
    sampler_.Missed(now);  // ended meanwhile, or no cgroup to read: try at the next interval
    return;
  }
  // The GPUs the attempt holds; a reading taken before the processes started belongs to
  // someone else.
  std::vector<std::optional<GpuSample>> gpus;
  for (size_t i = 0; i < gpus_.size() && env_.gpu_sampler != nullptr; ++i) {
    gpus.push_back(env_.gpu_sampler->Latest(gpus_[i].gpu.uuid(), running_since_));
  }
  // The logs folder is the job's: the file is created or appended to only there, never
  // through a link the job put in its place.
  AppendToJobFile(
      dir_ + "/job",
      absl::StrCat("logs/", LogShipper::FileName(assignment_.node_rank(), v1::SYSTEM_METRICS)),
      sampler_.Take(now, *stats, gpus));
}

LogShipper::LogFolder Attempt::Logs() const {
  return {.root = dir_ + "/job",
          .path = "logs",
          .first_rank = assignment_.first_rank(),
          .rank_count = assignment_.spec().process_count_per_node(),
          .node_rank = assignment_.node_rank()};
}

}  // namespace drover::agent
