// Attempt, taken over: what a new agent process does with an attempt an earlier one left
// (Resume: its GPUs held again at once, then RunRecovered decides by takeover.h whether to
// watch its processes, start them once, or prepare it again; Adopt gets back what a running
// attempt needs without copying or mounting anything again). See attempt.h.
#include "agent/attempt.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/attempt_record.h"
#include "agent/takeover.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace drover::agent {

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
  facts.processes_left_files = JobLeftFiles(dir_ + "/job/logs");
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
  env_.logs->Watch(assignment_.attempt(), Logs());
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
                    .rclone = {.clock = env_.clock},
                    .stop = [this] { return Interrupted(); },
                    .recovering = true});
  if (!data.ok()) return data.status();
  data_ = *std::move(data);
  return absl::OkStatus();
}

}  // namespace drover::agent
