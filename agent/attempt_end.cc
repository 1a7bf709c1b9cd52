// Attempt, its end: how the ranks ended (ReadExits: ReadRankExits, from drover-init's and
// mpirun's files), the outputs' upload (BlobClient), and Finish: data uploads, every log
// byte to droverd, the container and mounts released, the final report recorded before it
// is sent. See attempt.h.
#include "agent/attempt.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/attempt_record.h"
#include "agent/rank_exits.h"
#include "common/archive/snapshot.h"
#include "common/failpoint.h"
#include "common/log.h"
#include "common/safe_open.h"

namespace drover::agent {
namespace {

namespace fs = std::filesystem;

// Outputs may hold model checkpoints: larger caps than for code snapshots.
constexpr uint64_t kOutputsMaxBytes = uint64_t{1} << 40;

// How many skipped outputs entries are named one by one in the logs.
constexpr size_t kMaxOutputNotes = 20;

}  // namespace

void Attempt::ReadExits(const ContainerExit& exit) {
  const v1::AssignAttempt& a = assignment_;
  Log(exit.exit_code == 0 ? LogLevel::kDebug : LogLevel::kInfo, "container_exited",
      {{"job", a.attempt().job_id()}, {"exit_code", exit.exit_code}, {"signal", exit.signal},
       {"oom_killed", exit.oom_killed}, {"last_message", exit.last_message}});
  RankExits ended = ReadRankExits(dir_ + "/job", a, env_.node_name, exit);
  exits_.insert(exits_.end(), ended.exits.begin(), ended.exits.end());
  if (ended.first_failed_rank >= 0) first_failed_rank_ = ended.first_failed_rank;
  if (!ended.launcher_message.empty()) launcher_message_ = std::move(ended.launcher_message);
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
  // droverd may be restarting (or out of reach) right when the job ends: the outputs wait
  // for it, like the logs do, rather than being lost. A stopping agent leaves them to the
  // next agent process, which finishes the attempt again from its record.
  constexpr absl::Duration kPatience = absl::Minutes(2);
  absl::Time give_up = env_.clock->Now() + kPatience;
  absl::Status sent;
  while (true) {
    AwaitDroverd(give_up, [this] { return Detached(); });
    sent = env_.blobs->Upload(tar->tar_path, tar->digest, tar->tar_bytes,
                              assignment_.attempt().job_id());
    if (sent.ok() || sent.code() != absl::StatusCode::kUnavailable ||
        env_.shutting_down() || Detached() || env_.clock->Now() >= give_up) {
      break;
    }
    Log(LogLevel::kInfo, "outputs_upload_retried",
        {{"job", assignment_.attempt().job_id()}, {"error", sent.message()}});
    waiter_.WaitFor(absl::Milliseconds(200),
                    [this] { return Detached() || env_.shutting_down(); });
  }
  fs::remove(tar->tar_path, error);
  if (!sent.ok()) {
    // Detached: the next agent process uploads them when it finishes the attempt.
    Log(Detached() ? LogLevel::kInfo : LogLevel::kWarning,
        Detached() ? "outputs_upload_deferred" : "outputs_upload_failed",
        {{"job", assignment_.attempt().job_id()}, {"error", sent.message()}});
    // The user sees why there are no outputs (a blob quota, for example).
    if (!Detached()) NoteInJobLog(absl::StrCat("outputs not uploaded: ", sent.message()));
    return;
  }
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
  env_.logs->Watch(assignment_.attempt(), Logs());
  constexpr absl::Duration kDrainTimeout = absl::Minutes(2);
  absl::Time deadline = env_.clock->Now() + kDrainTimeout;
  while (env_.clock->Now() < deadline) {
    // The agent stops and leaves its jobs to the next agent process, which ends this one
    // again from its record (FINALIZING): nothing of its output is lost.
    if (created_ && Detached()) return LeaveDetached();
    if (env_.shutting_down()) break;
    env_.logs->Poll();  // ship the tail now rather than at the next round of the shipper
    if (env_.logs->Drained(assignment_.attempt())) break;
    // The shipper's progress is not notified: looked at again after a pause, longer while
    // droverd holds the chunks back. Detach() ends the pause.
    const bool held = env_.logs->Held(assignment_.attempt());
    if (held) deadline = env_.clock->Now() + kDrainTimeout;
    waiter_.WaitFor(held ? absl::Milliseconds(50) : absl::Milliseconds(2),
                    [this] { return Detached(); });
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
  if (usage_.has_value()) *report.mutable_usage() = *usage_;
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
