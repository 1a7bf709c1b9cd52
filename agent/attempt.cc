#include "agent/attempt.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/client_context.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <functional>
#include <filesystem>
#include <optional>
#include <fstream>
#include <random>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "agent/attempt_record.h"
#include "agent/launcher/init_command.h"
#include "agent/takeover.h"
#include "common/archive/safe_extract.h"
#include "common/archive/snapshot.h"
#include "common/failpoint.h"
#include "common/log.h"
#include "common/safe_open.h"
#include "common/status_macros.h"

namespace drover::agent {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kChunkBytes = 1 << 20;
// Where drover-rsh is in MPI job containers (mpirun's plm_rsh_agent).
constexpr const char* kRshPath = "/run/drover-mpi/rsh";
// Where the `drover` Python module is in every container (on PYTHONPATH).
constexpr const char* kPythonModuleDir = "/opt/drover/python";
// Outputs may hold model checkpoints: larger caps than for code snapshots.
constexpr uint64_t kOutputsMaxBytes = uint64_t{1} << 40;

// How many skipped outputs entries are named one by one in the logs.
constexpr size_t kMaxOutputNotes = 20;
// drover-init's exit and result files are a line each.
constexpr size_t kMaxJobFileBytes = 4096;

// A small file drover-init writes in the job folder (`path` below `job_dir`), or "" when it
// is missing or not a regular file: the job may have put a link or a fifo there, which is
// logged and never followed or waited on.
std::string ReadJobFile(const std::string& job_dir, const std::string& path) {
  FileKind kind = FileKind::kMissing;
  absl::StatusOr<std::string> text = ReadSmallFileBeneath(job_dir, path, kMaxJobFileBytes, &kind);
  if (text.ok()) return *std::move(text);
  if (kind != FileKind::kMissing) LogUnsafeFile(absl::StrCat(job_dir, "/", path), kind);
  return "";
}

// The log files of an attempt, in its job folder.
LogShipper::LogFolder LogsOf(const std::string& dir, const v1::AssignAttempt& a) {
  return {.root = dir + "/job",
          .path = "logs",
          .first_rank = a.first_rank(),
          .rank_count = a.spec().process_count_per_node(),
          .node_rank = a.node_rank()};
}

absl::Status WriteTextFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  if (!out.flush()) return absl::UnavailableError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

// The network (a.b.c.d/len) of the local interface that has `address`; empty when none has.
std::string NetworkOf(const std::string& address) {
  in_addr wanted{};
  if (inet_pton(AF_INET, address.c_str(), &wanted) != 1) return "";
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return "";
  std::string network;
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_netmask == nullptr || i->ifa_addr->sa_family != AF_INET) {
      continue;
    }
    in_addr own = reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr;
    if (own.s_addr != wanted.s_addr) continue;
    uint32_t mask = ntohl(reinterpret_cast<sockaddr_in*>(i->ifa_netmask)->sin_addr.s_addr);
    in_addr base{};
    base.s_addr = htonl(ntohl(own.s_addr) & mask);
    char text[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &base, text, sizeof text);
    network = absl::StrCat(text, "/", __builtin_popcount(mask));
    break;
  }
  freeifaddrs(list);
  return network;
}

absl::Status FromGrpc(const grpc::Status& status, absl::string_view what) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat(what, ": ", status.error_message()));
}

}  // namespace

Attempt::Attempt(AttemptEnv env, v1::AssignAttempt assignment)
    : env_(std::move(env)),
      assignment_(std::move(assignment)),
      dir_(Dir(env_.work_dir, assignment_.attempt())),
      container_(ContainerId(env_.work_dir, assignment_.attempt())) {
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

void Attempt::Resume(const v1::AttemptReport& saved, bool start_intended) {
  {
    absl::MutexLock lock(&mu_);
    last_ = saved;  // what the hello says until the thread knows better
    saved_phase_ = saved.phase();
  }
  // The GPUs it held are held again now, before the agent connects and takes new work: an
  // attempt assigned meanwhile must not be given a GPU whose processes may still run.
  if (!saved.gpus().empty()) {
    std::vector<std::string> uuids;
    for (const v1::Gpu& gpu : saved.gpus()) uuids.push_back(gpu.uuid());
    absl::StatusOr<std::vector<NodeGpu>> held =
        env_.gpus != nullptr
            ? env_.gpus->Adopt(GpuOwner(), uuids)
            : absl::FailedPreconditionError("the node offers no GPUs now");
    if (held.ok()) {
      gpus_ = *std::move(held);
    } else {
      gpus_adopted_ = held.status();
    }
  }
  thread_ = std::thread([this, saved, start_intended] { RunRecovered(saved, start_intended); });
}

void Attempt::RestoreEnded(const v1::AttemptReport& final) {
  absl::MutexLock lock(&mu_);
  last_ = final;
  saved_phase_ = final.phase();
}

void Attempt::Detach() {
  absl::MutexLock lock(&mu_);
  detach_ = true;
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
  absl::MutexLock lock(&mu_);
  start_ = true;
}

void Attempt::Stop(v1::JobStatus::Cause cause, absl::Duration grace, const std::string& message) {
  absl::MutexLock lock(&mu_);
  if (stop_) return;
  stop_ = true;
  stop_cause_ = cause;
  stop_grace_ = grace;
  stop_message_ = message;
}

v1::AttemptReport Attempt::LastReport() {
  absl::MutexLock lock(&mu_);
  return last_;
}

bool Attempt::ended() {
  absl::MutexLock lock(&mu_);
  return last_.phase() == v1::AttemptReport::ENDED;
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
  absl::Time preparing = absl::Now();
  absl::Status prepared = Prepare();
  if (env_.metrics != nullptr) {
    env_.metrics->preparation_seconds.With({prepared.ok() ? "ok" : "failed"})
        .Observe(absl::ToDoubleSeconds(absl::Now() - preparing));
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

void Attempt::RunRecovered(const v1::AttemptReport& saved, bool start_intended) {
  const std::string job = assignment_.attempt().job_id();
  recovered_ = true;
  // The real state decides, the record only bounds it (takeover.h).
  TakeOverFacts facts{.phase = saved.phase(), .start_intended = start_intended};
  absl::StatusOr<ContainerState> found = env_.runtime->Inspect(container_);
  if (found.ok()) {
    facts.container = *found == ContainerState::kCreated   ? FoundContainer::kCreated
                      : *found == ContainerState::kRunning ? FoundContainer::kRunning
                                                           : FoundContainer::kStopped;
  } else if (!absl::IsNotFound(found.status())) {
    // Cannot tell whether the processes run: they must not be started again, so the
    // attempt ends here (its container, if any, is deleted).
    created_ = true;
    Finish(v1::JobStatus::NODE_LOST,
           absl::StrCat("drover-agent on ", env_.node_name,
                        " restarted and cannot tell the state of the attempt's container: ",
                        found.status().message()));
    return;
  }
  facts.processes_left_files = ProcessesLeftFiles();
  const TakeOver decision = DecideTakeOver(facts);
  Log(LogLevel::kInfo, "attempt_take_over_decided",
      {{"job", job}, {"epoch", assignment_.attempt().epoch()},
       {"recorded", v1::AttemptReport::Phase_Name(saved.phase())},
       {"start_intended", start_intended},
       {"container", found.ok() ? (*found == ContainerState::kCreated   ? "created"
                                   : *found == ContainerState::kRunning ? "running"
                                                                        : "stopped")
                                : "none"},
       {"decision", TakeOverName(decision)}});
  if (decision == TakeOver::kPrepareAgain) {
    // Nothing of the processes ever ran: prepare again from the start (a READY node whose
    // START droverd already sent is sent START again).
    if (absl::Status s = env_.runtime->Delete(container_); !s.ok()) {
      Finish(v1::JobStatus::NODE_LOST, absl::StrCat("drover-agent on ", env_.node_name,
                                                    " restarted and cannot delete the attempt's "
                                                    "unstarted container: ", s.message()));
      return;
    }
    // Nothing runs on its GPUs: they are taken again while it prepares.
    if (!gpus_.empty()) env_.gpus->Release(GpuOwner());
    gpus_.clear();
    Log(LogLevel::kInfo, "attempt_prepared_again", {{"job", job}, {"epoch", assignment_.attempt().epoch()}});
    Run();
    return;
  }
  created_ = true;  // whatever happens now, Finish deletes the container
  if (absl::Status adopted = Adopt(saved); !adopted.ok()) {
    Log(LogLevel::kWarning, "attempt_not_recovered", {{"job", job}, {"error", adopted.message()}});
    Finish(v1::JobStatus::NODE_LOST,
           absl::StrCat("drover-agent on ", env_.node_name, " restarted: ", adopted.message()));
    return;
  }
  if (decision == TakeOver::kStartAndWatch) {
    // The start was decided and recorded before the earlier agent died; its `runc start`
    // may still have reached the processes meanwhile, which the runtime then says.
    absl::Status started = env_.runtime->Start(container_);
    absl::StatusOr<ContainerState> now = env_.runtime->Inspect(container_);
    if (!started.ok() && !(now.ok() && *now != ContainerState::kCreated)) {
      Log(LogLevel::kWarning, "attempt_launch_failed", {{"job", job}, {"error", started.message()}});
      Finish(v1::JobStatus::LAUNCH_FAILED,
             absl::StrCat("starting the container: ", started.message()));
      return;
    }
  }
  Log(LogLevel::kInfo, "attempt_recovered", {{"job", job}, {"epoch", assignment_.attempt().epoch()},
                                             {"container", container_}});
  env_.logs->Watch(assignment_.attempt(), LogsOf(dir_, assignment_));
  // droverd hears that the processes run (also when the earlier agent died before it could
  // say so); an attempt that was finishing goes on finishing.
  if (saved.phase() != v1::AttemptReport::FINALIZING) Report(v1::AttemptReport::RUNNING);
  absl::Status watched = WatchContainer();
  if (Detached()) return LeaveDetached();
  if (!watched.ok()) {
    Log(LogLevel::kWarning, "attempt_watch_failed", {{"job", job}, {"error", watched.message()}});
    Finish(v1::JobStatus::NODE_LOST, std::string(watched.message()));
    return;
  }
  FinishAsStopped();
}

bool Attempt::ProcessesLeftFiles() const {
  // A `logs` that is no longer a folder was replaced by the job's processes.
  absl::StatusOr<std::vector<BeneathEntry>> entries = ListBeneath(dir_ + "/job", "logs");
  return entries.ok() ? !entries->empty() : absl::IsFailedPrecondition(entries.status());
}

absl::Status Attempt::Adopt(const v1::AttemptReport& saved) {
  const v1::JobSpec& spec = assignment_.spec();
  if (spec.distributed_backend() == v1::JobSpec::MPI && assignment_.node_rank() == 0) {
    // mpirun's daemons on the other nodes run on unfollowed (drover-rsh, exec_relay.h); a
    // later remote launch finds the relay again.
    DROVER_RETURN_IF_ERROR(StartRelay());
  }
  DROVER_RETURN_IF_ERROR(gpus_adopted_);  // held again by Resume()
  if (const std::string& image = spec.environment().image(); image != "host") {
    if (env_.images == nullptr) return absl::FailedPreconditionError("no image cache");
    absl::StatusOr<UnpackedImage> unpacked =
        env_.images->Get(image, assignment_.image_digest(), [](absl::string_view) {});
    if (!unpacked.ok()) return unpacked.status();
    image_ = *std::move(unpacked);
  }
  DROVER_RETURN_IF_ERROR(PrepareEnvironment());
  absl::StatusOr<JobData> data = PrepareJobData(
      assignment_, {.job_dir = dir_ + "/job",
                    .rclone_dir = dir_ + "/rclone",
                    .mount_dir = AttemptMountDir(env_.work_dir, assignment_.attempt()),
                    .record_dir = AttemptRecordDir(env_.work_dir, assignment_.attempt()),
                    .node_name = env_.node_name,
                    .datastore_roots = env_.datastore_roots,
                    .stop = [this] { return Interrupted(); },
                    .recovering = true});
  if (!data.ok()) return data.status();
  data_ = *std::move(data);
  return absl::OkStatus();
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
    if (absl::Status s = FetchSnapshot(spec.source_snapshot(), dir_ + "/job/code"); !s.ok()) {
      return s;
    }
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
  bool has_data = false;
  for (const v1::Argument& argument : spec.arguments()) has_data = has_data || argument.has_data();
  if (has_data) Report(v1::AttemptReport::PREPARING, "PREPARING_DATA");
  absl::StatusOr<JobData> data = PrepareJobData(
      assignment_,
      {.job_dir = dir_ + "/job",
       .rclone_dir = dir_ + "/rclone",
       .mount_dir = AttemptMountDir(env_.work_dir, assignment_.attempt()),
       .record_dir = AttemptRecordDir(env_.work_dir, assignment_.attempt()),
       .node_name = env_.node_name,
       .datastore_roots = env_.datastore_roots,
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
        "environment.pip_packages/conda_packages: this agent has no environment cache");
  }
  EnvironmentRequest request{
      .image = wanted.image(),
      .image_identity = image_.rootfs.empty() ? HostPythonIdentity() : image_.key,
      .image_rootfs = image_.rootfs,
      .image_env = image_.env,
      .pip_packages = {wanted.pip_packages().begin(), wanted.pip_packages().end()},
      .conda_packages = {wanted.conda_packages().begin(), wanted.conda_packages().end()},
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

absl::Status Attempt::FetchSnapshot(const std::string& digest, const std::string& code_dir) {
  std::string hex = digest.substr(digest.find(':') + 1);
  std::string cache_root = env_.work_dir + "/snapshots";
  std::string cached = cache_root + "/" + hex;
  std::error_code error;
  fs::create_directories(cache_root, error);
  if (!fs::exists(cached)) {
    std::random_device random;
    std::string tar = absl::StrCat(cache_root, "/download-", random(), random(), ".tar");
    {
      std::ofstream out(tar, std::ios::binary | std::ios::trunc);
      grpc::ClientContext context;
      v1::DownloadBlobRequest request;
      request.set_digest(digest);
      auto reader = env_.blobs->DownloadBlob(&context, request);
      v1::DownloadBlobResponse chunk;
      while (reader->Read(&chunk)) out.write(chunk.chunk().data(), chunk.chunk().size());
      grpc::Status status = reader->Finish();
      if (!status.ok() || !out.flush()) {
        fs::remove(tar, error);
        return FromGrpc(status.ok() ? grpc::Status(grpc::StatusCode::UNAVAILABLE, "disk write failed")
                                    : status,
                        absl::StrCat("fetching snapshot ", digest));
      }
    }
    absl::StatusOr<archive::ExtractResult> extracted =
        archive::ExtractTar(tar, cached, {.expected_digest = digest, .sync_to_disk = true});
    fs::remove(tar, error);
    if (!extracted.ok() && !absl::IsAlreadyExists(extracted.status())) {
      return absl::Status(extracted.status().code(),
                          absl::StrCat("snapshot ", digest, " refused: ", extracted.status().message()));
    }
  }
  fs::copy(cached, code_dir, fs::copy_options::recursive | fs::copy_options::copy_symlinks |
                                 fs::copy_options::overwrite_existing,
           error);
  if (error) {
    return absl::UnavailableError(absl::StrCat("copying snapshot into the job folder: ", error.message()));
  }
  return absl::OkStatus();
}

ContainerSpec Attempt::BuildContainer() const {
  const v1::AssignAttempt& a = assignment_;
  const v1::JobSpec& spec = a.spec();
  ContainerSpec c;
  c.id = container_;
  c.bundle_dir = dir_ + "/bundle";
  c.job_dir = dir_ + "/job";
  c.cwd = spec.source_snapshot().empty() ? "/job" : "/job/code";
  c.image_rootfs = image_.rootfs;
  c.hostname = env_.node_name;
  c.cpus = spec.resources().cpus();
  c.memory_mib = spec.resources().memory_mib();
  c.shm_mib = spec.resources().shm_mib() > 0 ? spec.resources().shm_mib() : 64;

  int ppn = spec.process_count_per_node();
  // One entry per name; a later setting replaces an earlier one in place.
  auto add = [&c](absl::string_view name, absl::string_view value) {
    std::string entry = absl::StrCat(name, "=", value);
    for (std::string& e : c.env) {
      if (absl::StartsWith(e, absl::StrCat(name, "="))) {
        e = std::move(entry);
        return;
      }
    }
    c.env.push_back(std::move(entry));
  };
  auto has = [&c](absl::string_view name) {
    for (const std::string& e : c.env) {
      if (absl::StartsWith(e, absl::StrCat(name, "="))) return true;
    }
    return false;
  };
  auto get = [&c](absl::string_view name) {
    for (const std::string& e : c.env) {
      if (absl::StartsWith(e, absl::StrCat(name, "="))) return e.substr(name.size() + 1);
    }
    return std::string();
  };
  // The image's own variables (its PATH may lead to its python3), then the job's, the
  // defaults where neither set one, and the contract over everything.
  for (const std::string& entry : image_.env) {
    size_t eq = entry.find('=');
    add(absl::string_view(entry).substr(0, eq), absl::string_view(entry).substr(eq + 1));
  }
  for (const auto& [name, value] : spec.environment().env()) add(name, value);
  if (!has("PATH")) add("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  if (!has("HOME")) add("HOME", "/root");
  if (environment_.lease != nullptr) EnvironmentCache::AddTo(environment_, &c);
  add("PYTHONUNBUFFERED", "1");
  add("DROVER_JOB_ID", a.attempt().job_id());
  add("DROVER_ATTEMPT", absl::StrCat(a.attempt().epoch()));
  add("DROVER_WORLD_SIZE", absl::StrCat(a.world_size()));
  add("DROVER_NODE_RANK", absl::StrCat(a.node_rank()));
  add("DROVER_NODE_COUNT", absl::StrCat(a.node_count()));
  add("DROVER_OUTPUT_DIR", "/job/outputs");
  add("WORLD_SIZE", absl::StrCat(a.world_size()));
  add("NODE_RANK", absl::StrCat(a.node_rank()));
  add("LOCAL_WORLD_SIZE", absl::StrCat(ppn));
  // torch.distributed's rendezvous, also under MPI (a torch script run by mpirun finds them
  // as under the pytorch backend).
  if (spec.distributed_backend() != v1::JobSpec::NONE) {
    add("MASTER_ADDR", a.node_addresses_size() > 0 && !a.node_addresses(0).empty()
                           ? a.node_addresses(0)
                           : "127.0.0.1");
    add("MASTER_PORT", absl::StrCat(a.master_port() > 0 ? a.master_port()
                                                        : 29500 + a.attempt().epoch() % 1000));
  }
  // Every node of the attempt by name and address (hostname lookups, as gloo makes).
  c.mounts.push_back({.source = dir_ + "/hosts", .destination = "/etc/hosts", .read_only = true});

  InitCommand init;
  init.first_rank = a.first_rank();
  init.count = ppn;
  init.log_dir = "/job/logs";
  const std::string& script = spec.entry_script();
  std::string path = spec.source_snapshot().empty() ? "/" + script : script;
  if (absl::EndsWith(script, ".py")) {
    init.program = {"python3", path};
  } else if (absl::EndsWith(script, ".sh")) {
    init.program = {"/bin/sh", path};
  } else {
    init.program = {absl::StrContains(path, "/") ? path : "./" + path};
  }
  init.program.insert(init.program.end(), data_.arguments.begin(), data_.arguments.end());
  c.mounts.insert(c.mounts.end(), data_.mounts.begin(), data_.mounts.end());
  for (const std::string& entry : data_.env) {
    size_t eq = entry.find('=');
    add(entry.substr(0, eq), entry.substr(eq + 1));
  }
  // The `drover` module for run.log(...), after the image's and the job's own modules, and
  // where it writes this node's metrics files (shipped like the logs).
  add("DROVER_METRICS_DIR", "/job/logs");
  if (!env_.python_dir.empty()) {
    c.mounts.push_back(
        {.source = env_.python_dir, .destination = kPythonModuleDir, .read_only = true});
    std::string pythonpath = get("PYTHONPATH");
    add("PYTHONPATH", pythonpath.empty() ? kPythonModuleDir
                                         : absl::StrCat(pythonpath, ":", kPythonModuleDir));
  }
  if (spec.distributed_backend() == v1::JobSpec::MPI) {
    add("OMPI_ALLOW_RUN_AS_ROOT", "1");
    add("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    c.mounts.push_back({.source = dir_ + "/relay", .destination = "/run/drover-mpi/relay",
                        .read_only = false});
    c.mounts.push_back({.source = env_.rsh_binary, .destination = kRshPath, .read_only = true});
    if (a.node_rank() == 0) {
      // PID 1 runs mpirun, which runs every rank (here directly, elsewhere through
      // drover-rsh and that node's agent), each wrapped by drover-init for its files.
      init.program = MpiCommand(init);
      init.launcher = "mpirun";
      init.count = 1;
    } else {
      init.count = 0;  // the ranks come through `runc exec`
      init.program.clear();
    }
  }
  // Last, so that the image's or job's own GPU variables give way to what it holds.
  AddGpusToContainer(env_.gpus != nullptr ? env_.gpus->inventory() : GpuInventory(), gpus_,
                     /*host_image=*/image_.rootfs.empty(), &c);
  c.args = init.ToArgs();
  return c;
}

std::vector<std::string> Attempt::MpiCommand(const InitCommand& init) const {
  const v1::AssignAttempt& a = assignment_;
  std::vector<std::string> command = {
      "mpirun",
      "--hostfile", "/job/hostfile",
      "-np", absl::StrCat(a.world_size()),
      "--map-by", absl::StrCat("ppr:", a.spec().process_count_per_node(), ":node"),
      // Containers have their own cpu limits; binding to cores would fight them.
      "--bind-to", "none",
      "--mca", "plm_rsh_agent", kRshPath,
      // Node rank 0 starts every daemon itself: each remote launch is one request through
      // the agents, never a chain through the other nodes.
      "--mca", "plm_rsh_no_tree_spawn", "1"};
  if (!mpi_network_.empty()) {
    // Only the network the nodes registered on, not docker bridges or other links.
    command.insert(command.end(), {"--mca", "oob_tcp_if_include", mpi_network_, "--mca",
                                   "btl_tcp_if_include", mpi_network_});
  }
  std::vector<std::string> wrapper =
      init.RankWrapperArgs("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK");
  command.insert(command.end(), wrapper.begin(), wrapper.end());
  return command;
}

absl::StatusOr<std::string> Attempt::ExecTarget(const std::string& token) {
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

absl::Status Attempt::WriteNodeFiles() {
  const v1::AssignAttempt& a = assignment_;
  // /etc/hosts of the container: the usual local names, then every node of the attempt.
  std::string hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";
  for (int k = 0; k < a.node_addresses_size(); ++k) {
    if (a.node_addresses(k).empty()) continue;
    std::string name = k < a.node_names_size() ? a.node_names(k) : "";
    absl::StrAppend(&hosts, a.node_addresses(k), "\t", name.empty() ? "" : name, "\n");
  }
  if (a.node_addresses_size() == 0) absl::StrAppend(&hosts, "127.0.1.1\t", env_.node_name, "\n");
  DROVER_RETURN_IF_ERROR(WriteTextFile(dir_ + "/hosts", hosts));
  if (a.spec().distributed_backend() != v1::JobSpec::MPI) return absl::OkStatus();

  // The hostfile mpirun reads, nodes in node rank order (ranks fill node 0 first).
  std::string hostfile;
  for (int k = 0; k < a.node_addresses_size(); ++k) {
    absl::StrAppend(&hostfile, a.node_addresses(k), " slots=", a.spec().process_count_per_node(),
                    "\n");
  }
  DROVER_RETURN_IF_ERROR(WriteTextFile(dir_ + "/job/hostfile", hostfile));
  std::error_code error;
  fs::create_directories(dir_ + "/relay", error);
  if (error) return absl::UnavailableError(absl::StrCat("cannot create ", dir_, "/relay: ", error.message()));
  if (a.node_rank() != 0) return absl::OkStatus();
  return StartRelay();
}

absl::Status Attempt::StartRelay() {
  const v1::AssignAttempt& a = assignment_;
  mpi_network_ = NetworkOf(a.node_addresses_size() > 0 ? a.node_addresses(0) : "");
  std::map<std::string, std::string> peers;
  for (int k = 0; k < a.node_addresses_size() && k < a.node_peer_endpoints_size(); ++k) {
    if (a.node_peer_endpoints(k).empty()) continue;
    peers[a.node_addresses(k)] = a.node_peer_endpoints(k);
    if (k < a.node_names_size() && !a.node_names(k).empty()) {
      peers[a.node_names(k)] = a.node_peer_endpoints(k);
    }
  }
  relay_ = std::make_unique<ExecRelay>(a.attempt(), a.exec_token(), std::move(peers));
  return relay_->Listen(dir_ + "/relay/exec.sock");
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
  env_.logs->Watch(assignment_.attempt(), LogsOf(dir_, assignment_));
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
  absl::Time terminated_at = absl::InfiniteFuture();
  bool killed = false;
  running_since_ = absl::Now();
  while (true) {
    // A stop (cancel, a failed rank elsewhere, mpirun's end) is acted on within 20 ms: a
    // gang's end waits for its slowest node.
    if (absl::Now() - last_sample_ >= env_.metrics_interval) SampleSystemMetrics();
    absl::StatusOr<ContainerExit> exit = env_.runtime->Wait(container_, 20);
    if (!exit.ok() && absl::IsNotFound(exit.status()) && recovered_) {
      // Deleted by an earlier agent process that died before it reported the end: the
      // ranks' exit files still tell how they ended.
      exit = ContainerExit{.exit_code = -1, .signal = SIGKILL};
    }
    if (exit.ok()) {
      exited_ = true;
      ReadExits(*exit);
      return absl::OkStatus();
    }
    if (!absl::IsDeadlineExceeded(exit.status())) {
      return absl::Status(exit.status().code(),
                          absl::StrCat("watching the container: ", exit.status().message()));
    }
    absl::Duration grace;
    bool stop;
    {
      absl::MutexLock lock(&mu_);
      if (detach_) return absl::AbortedError("the agent stops; the processes keep running");
      stop = stop_;
      grace = stop_grace_;
    }
    if (stop && terminated_at == absl::InfiniteFuture()) {
      // drover-init forwards SIGTERM to every rank and kills them after its own grace.
      (void)env_.runtime->Signal(container_, SIGTERM, false);
      terminated_at = absl::Now();
    } else if (stop && !killed && absl::Now() - terminated_at > grace + absl::Seconds(2)) {
      (void)env_.runtime->Signal(container_, SIGKILL, true);
      killed = true;
    }
  }
}

void Attempt::SampleSystemMetrics() {
  absl::Time now = absl::Now();
  absl::StatusOr<ContainerStats> stats = env_.runtime->Stats(container_);
  if (!stats.ok()) {
    last_sample_ = now;  // ended meanwhile, or no cgroup to read: try at the next interval
    return;
  }
  std::string lines;
  double t = absl::ToDoubleSeconds(now - absl::UnixEpoch());
  auto point = [&](absl::string_view name, double value) {
    absl::StrAppend(&lines, "{\"n\":\"", name, "\",\"s\":", samples_, ",\"t\":",
                    absl::StrFormat("%.6f", t), ",\"v\":", absl::StrFormat("%.17g", value), "}\n");
  };
  if (last_cpu_ns_ >= 0 && now > last_sample_) {
    point("cpu_cores", static_cast<double>(stats->cpu_ns - last_cpu_ns_) /
                           absl::ToDoubleNanoseconds(now - last_sample_));
  }
  point("memory_bytes", static_cast<double>(stats->memory_bytes));
  if (stats->memory_peak_bytes >= 0) {
    point("memory_peak_bytes", static_cast<double>(stats->memory_peak_bytes));
  }
  // The GPUs the attempt holds, numbered as CUDA numbers them in the container; a reading
  // taken before the processes started belongs to someone else.
  for (size_t i = 0; i < gpus_.size() && env_.gpu_sampler != nullptr; ++i) {
    std::optional<GpuSample> gpu = env_.gpu_sampler->Latest(gpus_[i].gpu.uuid(), running_since_);
    if (!gpu.has_value()) continue;
    if (gpu->utilization_percent >= 0) {
      point(absl::StrCat("gpu_utilization_percent/", i), gpu->utilization_percent);
    }
    if (gpu->memory_used_bytes >= 0) point(absl::StrCat("gpu_memory_bytes/", i), gpu->memory_used_bytes);
  }
  last_cpu_ns_ = stats->cpu_ns;
  last_sample_ = now;
  ++samples_;
  // The logs folder is the job's: the file is created or appended to only there, never
  // through a link the job put in its place.
  std::string path =
      absl::StrCat("logs/", LogShipper::FileName(assignment_.node_rank(), v1::SYSTEM_METRICS));
  FileKind kind = FileKind::kMissing;
  absl::StatusOr<UniqueFd> fd =
      OpenBeneath(dir_ + "/job", path, O_WRONLY | O_CREAT | O_APPEND, 0644, &kind);
  if (!fd.ok()) {
    if (kind != FileKind::kMissing) LogUnsafeFile(absl::StrCat(dir_, "/job/", path), kind);
    return;
  }
  // One write: the shipper never sees half a sample.
  (void)!::write(fd->get(), lines.data(), lines.size());
}

void Attempt::ReadExits(const ContainerExit& exit) {
  const v1::AssignAttempt& a = assignment_;
  Log(exit.exit_code == 0 ? LogLevel::kDebug : LogLevel::kInfo, "container_exited",
      {{"job", a.attempt().job_id()}, {"exit_code", exit.exit_code}, {"signal", exit.signal},
       {"oom_killed", exit.oom_killed}, {"last_message", exit.last_message}});
  for (int i = 0; i < a.spec().process_count_per_node(); ++i) {
    int rank = a.first_rank() + i;
    v1::RankExit e;
    e.set_rank(rank);
    std::string text = ReadJobFile(dir_ + "/job", absl::StrCat("logs/rank-", rank, ".exit"));
    int code = -1, sig = SIGKILL;
    long long end_ns = 0;
    int fields = std::sscanf(text.c_str(), "exit_code=%d signal=%d end_time_ns=%lld", &code,
                             &sig, &end_ns);
    if (fields < 2) {
      code = -1;  // killed before drover-init could record it (or, under MPI, never started)
      sig = exit.signal != 0 ? exit.signal : SIGKILL;
    }
    e.set_exit_code(code);
    e.set_signal(sig);
    e.set_oom_killed(exit.oom_killed && sig == SIGKILL);
    if (fields == 3 && end_ns > 0) {
      e.mutable_end_time()->set_seconds(end_ns / 1000000000);
      e.mutable_end_time()->set_nanos(static_cast<int32_t>(end_ns % 1000000000));
    }
    exits_.push_back(e);
  }
  // drover-init knows which rank failed first when it started them; under MPI mpirun did,
  // and the rank that failed first is the one that ended first.
  std::string result = ReadJobFile(dir_ + "/job", "logs/init.result");
  int first = -1;
  if (std::sscanf(result.c_str(), "first_failed_rank=%d", &first) == 1 && first >= 0) {
    first_failed_rank_ = first;
  } else {
    const v1::RankExit* earliest = nullptr;
    for (const v1::RankExit& e : exits_) {
      if (e.exit_code() == 0 && e.signal() == 0) continue;
      if (earliest == nullptr ||
          (e.has_end_time() && (!earliest->has_end_time() ||
                                std::make_pair(e.end_time().seconds(), e.end_time().nanos()) <
                                    std::make_pair(earliest->end_time().seconds(),
                                                   earliest->end_time().nanos())))) {
        earliest = &e;
      }
    }
    if (earliest != nullptr) first_failed_rank_ = earliest->rank();
  }
  if (!exit.last_message.empty() && absl::StartsWith(exit.last_message, "drover-init:")) {
    launcher_message_ = absl::StrCat("on ", env_.node_name, ": ", exit.last_message);
  }
  // mpirun failing with no rank of this node failed: say so (a rank elsewhere may have).
  std::string launcher = ReadJobFile(dir_ + "/job", "logs/mpirun.exit");
  int launcher_code = 0, launcher_signal = 0;
  if (std::sscanf(launcher.c_str(), "exit_code=%d signal=%d", &launcher_code,
                  &launcher_signal) == 2 &&
      (launcher_code != 0 || launcher_signal != 0)) {
    launcher_message_ =
        launcher_signal != 0
            ? absl::StrCat("mpirun on ", env_.node_name, " was killed by signal ", launcher_signal)
            : absl::StrCat("mpirun on ", env_.node_name, " exited with code ", launcher_code,
                           "; its messages are in rank ", assignment_.first_rank(), "'s stderr");
  }
}

void Attempt::UploadOutputs() {
  std::string outputs = dir_ + "/job/outputs";
  std::error_code error;
  // The job may have replaced `outputs/` itself by a link (to `/`, say): the folder is found
  // below the job folder without following links, and archived through that descriptor.
  FileKind kind = FileKind::kMissing;
  absl::StatusOr<UniqueFd> folder =
      OpenBeneath(dir_ + "/job", "outputs", O_RDONLY | O_DIRECTORY, 0, &kind);
  if (!folder.ok()) {
    if (kind != FileKind::kMissing) {
      LogUnsafeFile(outputs, kind);
      NoteInJobLog(absl::StrCat("outputs/ is a ", FileKindName(kind),
                                ", not a folder; no outputs were kept"));
    }
    return;
  }
  absl::StatusOr<std::vector<BeneathEntry>> entries = ListBeneath(folder->get(), ".");
  if (!entries.ok() || entries->empty()) return;
  absl::StatusOr<archive::Snapshot> tar = archive::BuildSnapshot(
      outputs, {.output_path = dir_ + "/outputs.tar",
                .use_ignore_files = false,
                .warn_bytes = 0,
                .max_total_bytes = kOutputsMaxBytes,
                .max_file_bytes = kOutputsMaxBytes,
                .source_fd = folder->get()});
  if (!tar.ok()) {
    Log(LogLevel::kWarning, "outputs_failed", {{"job", assignment_.attempt().job_id()}, {"error", tar.status().message()}});
    return;
  }
  // Links that lead out of the folder, fifos, devices and sockets are left out: said in the
  // agent's log and, for the user, in the first rank's stderr.
  for (size_t i = 0; i < tar->warnings.size() && i < kMaxOutputNotes; ++i) {
    Log(LogLevel::kWarning, "outputs_entry_skipped",
        {{"job", assignment_.attempt().job_id()}, {"note", tar->warnings[i]}});
    NoteInJobLog(absl::StrCat("outputs: ", tar->warnings[i]));
  }
  if (tar->warnings.size() > kMaxOutputNotes) {
    NoteInJobLog(absl::StrCat("outputs: ", tar->warnings.size() - kMaxOutputNotes,
                              " more entries were left out"));
  }
  grpc::ClientContext stat_context;
  v1::StatBlobRequest stat;
  stat.set_digest(tar->digest);
  v1::StatBlobResponse present;
  bool have = env_.blobs->StatBlob(&stat_context, stat, &present).ok() && present.present();
  if (!have) {
    grpc::ClientContext context;
    v1::UploadBlobResponse response;
    auto writer = env_.blobs->UploadBlob(&context, &response);
    v1::UploadBlobRequest header;
    header.mutable_header()->set_digest(tar->digest);
    header.mutable_header()->set_size(static_cast<int64_t>(tar->tar_bytes));
    bool ok = writer->Write(header);
    std::ifstream in(tar->tar_path, std::ios::binary);
    std::string buffer(kChunkBytes, '\0');
    while (ok && in) {
      in.read(buffer.data(), kChunkBytes);
      std::streamsize n = in.gcount();
      if (n <= 0) break;
      v1::UploadBlobRequest piece;
      piece.set_chunk(buffer.substr(0, static_cast<size_t>(n)));
      ok = writer->Write(piece);
    }
    writer->WritesDone();
    grpc::Status status = writer->Finish();
    if (!status.ok()) {
      Log(LogLevel::kWarning, "outputs_upload_failed",
          {{"job", assignment_.attempt().job_id()}, {"error", status.error_message()}});
      fs::remove(tar->tar_path, error);
      return;
    }
  }
  fs::remove(tar->tar_path, error);
  outputs_digest_ = tar->digest;
  outputs_size_ = static_cast<int64_t>(tar->tar_bytes);
}

void Attempt::NoteInJobLog(const std::string& note) {
  std::string path =
      absl::StrCat("logs/", LogShipper::FileName(assignment_.first_rank(), v1::STDERR));
  absl::StatusOr<UniqueFd> fd =
      OpenBeneath(dir_ + "/job", path, O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (!fd.ok()) return;  // a link or fifo there: logged where it was found
  std::string line = absl::StrCat("drover-agent on ", env_.node_name, ": ", note, "\n");
  (void)!::write(fd->get(), line.data(), line.size());
}

void Attempt::Finish(v1::JobStatus::Cause cause, std::string message) {
  if (relay_ != nullptr) relay_->Stop();  // the processes that used it have ended
  if (cause == v1::JobStatus::CAUSE_UNSPECIFIED && !launcher_message_.empty()) {
    cause = v1::JobStatus::PROCESS_FAILED;
    message = launcher_message_;
  }
  if (!data_.uploads.empty() && created_) {
    Report(v1::AttemptReport::FINALIZING, "UPLOADING_DATA");
    if (absl::Status s = UploadJobData(data_); !s.ok()) {
      Log(LogLevel::kWarning, "data_upload_failed",
          {{"job", assignment_.attempt().job_id()}, {"error", s.message()}});
      if (cause == v1::JobStatus::CAUSE_UNSPECIFIED) {
        cause = v1::JobStatus::DATA_UPLOAD_FAILED;
        message = absl::StrCat("on ", env_.node_name, ": ", s.message());
      }
    }
  }
  Report(v1::AttemptReport::FINALIZING, "UPLOADING_OUTPUTS");
  Failpoint("attempt.finalizing");
  UploadOutputs();
  Failpoint("attempt.after_outputs");
  // Every byte the processes wrote reaches droverd before the attempt is reported ended
  // (droverd stores nothing of an attempt once it ended). However long droverd cannot take
  // them (unreachable, or its state disk refusing writes), the files wait; only a droverd
  // that takes chunks but never has them all is given up on, after two minutes.
  env_.logs->Watch(assignment_.attempt(), LogsOf(dir_, assignment_));
  constexpr absl::Duration kDrainTimeout = absl::Minutes(2);
  absl::Time deadline = absl::Now() + kDrainTimeout;
  while (absl::Now() < deadline) {
    // The agent stops and leaves its jobs to the next agent process, which ends this one
    // again from its record (FINALIZING): nothing of its output is lost.
    if (created_ && Detached()) return LeaveDetached();
    if (env_.shutting_down()) break;
    env_.logs->Poll();  // ship the tail now rather than at the next round of the shipper
    if (env_.logs->Drained(assignment_.attempt())) break;
    if (env_.logs->Held(assignment_.attempt())) {
      deadline = absl::Now() + kDrainTimeout;
      absl::SleepFor(absl::Milliseconds(50));
    } else {
      absl::SleepFor(absl::Milliseconds(2));
    }
  }
  // Once PID 1 has exited nothing of the container runs and its resources are free: the
  // end is reported first and the container deleted after (runc delete and the bundle's
  // clean-up take several ms), off the path to COMPLETED. A container that may still run is
  // deleted first, so that droverd never hands out resources it still uses; so is one
  // holding GPUs, whose memory is free only once the last process of the container is gone.
  const bool delete_first = created_ && (!exited_ || !gpus_.empty());
  absl::Status deleted = absl::OkStatus();
  auto remove_container = [&] {
    if (!created_) return;  // nothing to delete (and no runc call to pay for)
    deleted = env_.runtime->Delete(container_);
    if (!deleted.ok()) {
      Log(LogLevel::kError, "container_delete_failed",
          {{"container", container_}, {"error", deleted.message()}});
    }
  };
  if (delete_first) remove_container();
  if (!gpus_.empty() && deleted.ok()) {
    // droverd may place the next GPU job here as soon as it hears of the end. A container
    // that could not be deleted may still use them: they stay held.
    env_.gpus->Release(GpuOwner());
  }
  // Nothing of the container uses the mounts any more (deleted, or its PID 1 and with it
  // every process of it has exited).
  if (absl::Status s = ReleaseJobData(data_); !s.ok()) {
    Log(LogLevel::kWarning, "data_release_failed",
        {{"job", assignment_.attempt().job_id()}, {"error", s.message()}});
    if (cause == v1::JobStatus::CAUSE_UNSPECIFIED) {
      cause = v1::JobStatus::DATA_UPLOAD_FAILED;
      message = absl::StrCat("on ", env_.node_name, ": ", s.message());
    }
  }
  v1::AttemptReport report;
  *report.mutable_attempt() = assignment_.attempt();
  report.set_phase(v1::AttemptReport::ENDED);
  report.set_cause(cause);
  report.set_message(message);
  for (const v1::RankExit& e : exits_) *report.add_exits() = e;
  report.set_outputs_digest(outputs_digest_);
  report.set_outputs_size(outputs_size_);
  if (first_failed_rank_ >= 0) report.set_first_failed_rank(first_failed_rank_);
  for (const NodeGpu& gpu : gpus_) *report.add_gpus() = gpu.gpu;
  Record(report);  // kept on disk until droverd surely has it (Agent forgets it)
  env_.report(report);
  Failpoint("attempt.after_end");
  env_.logs->Forget(assignment_.attempt());
  if (!delete_first) remove_container();
  environment_ = {};  // the container is gone: its environment may be collected
  std::error_code error;
  if (deleted.ok()) fs::remove_all(dir_, error);  // a failed delete may leave mounts in it
  if (env_.metrics != nullptr) {
    env_.metrics->attempts_ended
        .With({cause == v1::JobStatus::CAUSE_UNSPECIFIED ? "none" : v1::JobStatus::Cause_Name(cause)})
        .Increment();
  }
  Log(LogLevel::kInfo, "attempt_ended", {{"job", assignment_.attempt().job_id()},
                                         {"epoch", assignment_.attempt().epoch()},
                                         {"cause", v1::JobStatus::Cause_Name(cause)}});
  if (env_.ended) env_.ended(assignment_.attempt());
}

}  // namespace drover::agent
