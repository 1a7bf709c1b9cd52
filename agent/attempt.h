// Attempt: this node's part of one attempt of a job, from assignment to cleanup, run on its
// own thread: prepare the job folder, code snapshot, image and environment (through the
// agent's shared SnapshotCache, ImageCache and EnvironmentCache), create the container,
// report READY, wait for START, start the container, collect every rank's exit status,
// upload outputs, wait until droverd has every log byte, report ENDED, delete the container.
// An assignment marked `start_when_ready` (one-node attempts: no launch barrier to wait for)
// skips the wait for START and creates and starts the container in one runtime call. Stop()
// may come at any point.
//
// The class is defined in five files, one responsibility each: attempt.cc (the lifecycle:
// prepare, create, start, watch), attempt_container.cc (the container environment contract:
// what the container is, its /etc/hosts), attempt_mpi.cc (MPI: mpirun's command line, the
// hostfile and the relay), attempt_end.cc (how the ranks ended, outputs, Finish) and
// attempt_takeover.cc (an attempt taken over after an agent restart). Its parts with rules
// of their own are classes apart, tested alone: SnapshotCache (snapshot_cache.h), BlobClient
// (blob_client.h), SystemSampler (system_sampler.h), StopEscalation (stop_escalation.h),
// ReadRankExits (rank_exits.h).
//
// Time and waiting: every deadline is read from AttemptEnv::clock, and every pause (a retry,
// the logs' drain) is a wait on the attempt's Waiter, which Stop() and Detach() wake.
#ifndef DROVER_AGENT_ATTEMPT_H_
#define DROVER_AGENT_ATTEMPT_H_

#include <functional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/agent_metrics.h"
#include "agent/blob_client.h"
#include "agent/environments/environment_cache.h"
#include "agent/exec_relay.h"
#include "agent/gpu_sampler.h"
#include "agent/gpus.h"
#include "agent/images/image_cache.h"
#include "agent/job_data.h"
#include "agent/launcher/init_command.h"
#include "agent/log_shipper.h"
#include "agent/runtime/container_runtime.h"
#include "agent/snapshot_cache.h"
#include "agent/system_sampler.h"
#include "agent/waiter.h"
#include "common/clock.h"
#include "common/safe_open.h"
#include "drover/v1/agent.pb.h"

namespace drover::agent {

struct AttemptEnv {
  std::string node_name;
  std::string work_dir;  // the agent's work folder: attempts/, snapshots/, images/ live under it
  // The agent's clock: the attempt's deadlines and patience (waiting for droverd, the
  // outputs' upload, the logs' drain, the stop's grace) and its metrics' times.
  const Clock* clock = &RealClock::Get();
  ContainerRuntime* runtime = nullptr;
  LogShipper* logs = nullptr;
  // droverd's blobs (the outputs' upload).
  const BlobClient* blobs = nullptr;
  // Code snapshots on the node, shared by every attempt of the agent.
  const SnapshotCache* snapshots = nullptr;
  // Unpacked OCI images, shared by every attempt of the agent.
  ImageCache* images = nullptr;
  // The node's GPUs: an attempt of a job with `resources.gpus` takes its own here while it
  // prepares and gives them back once its container is gone. nullptr: the node has none.
  GpuAllocator* gpus = nullptr;
  // The node's GPU readings, for the system metrics of attempts that hold GPUs; may be null.
  const GpuSampler* gpu_sampler = nullptr;
  // Built pip/conda environments, shared by every attempt of the agent.
  EnvironmentCache* environments = nullptr;
  // drover-rsh on the node (bound into MPI containers).
  std::string rsh_binary;
  // The `drover` Python module's folder, bound at kPythonModuleDir; empty: none.
  std::string python_dir;
  // How often the container's CPU, memory and GPUs are sampled (SYSTEM_METRICS).
  absl::Duration metrics_interval = absl::Seconds(10);
  // The agent's own metrics; null: none.
  AgentMetrics* metrics = nullptr;
  // The folders HOSTPATH datastores may be in (--datastore-root) and the agent's own, which
  // none may touch; see JobDataContext.
  DatastoreRoots datastore_roots;
  // Most processes the job container may have; 0: no limit.
  int64_t pids_limit = 4096;
  // The container's user namespace (size 0: none): its root is host id userns.host_id.
  IdRange userns;
  // Sends a report to droverd (dropped while disconnected; the last one is also in hello).
  std::function<void(const v1::AttemptReport&)> report;
  // Whether the agent is going down (then nothing waits for droverd any more).
  std::function<bool()> shutting_down;
  // Waits up to the given time for the connection to droverd to be up and says whether it
  // is (it drives a reconnection meanwhile); null: calls are made without waiting.
  std::function<bool(absl::Duration)> await_droverd;
  // Called on the attempt's thread after it reported ENDED.
  std::function<void(const v1::AttemptRef&)> ended;
  // The exec relay's channels to the peer port of a node (PeerTls::Channel).
  ExecRelay::Connect connect_peer;
};

class Attempt {
 public:
  Attempt(AttemptEnv env, v1::AssignAttempt assignment);
  // Joins the thread; Stop() first if it still runs.
  ~Attempt();

  // The container id and the job folder of `attempt` on an agent with `work_dir`.
  static std::string ContainerId(const std::string& work_dir, const v1::AttemptRef& attempt);
  static std::string Dir(const std::string& work_dir, const v1::AttemptRef& attempt);

  void Begin();  // starts the thread
  // Takes over an attempt an earlier agent process ran (from its record: `saved` its last
  // report, `start_intended` whether it set out to start the processes): starts the thread,
  // which asks the runtime where the container is and decides by DecideTakeOver
  // (takeover.h): it adopts the container whose processes started (or reads how they
  // ended, when they ended while no agent watched), starts a created one whose start was
  // decided, or prepares the attempt again when nothing of it ever ran. An attempt that
  // cannot be adopted (its GPUs, image or data are gone: an rclone mount whose rclone ended
  // meanwhile) is ended: its container is deleted and it ends NODE_LOST.
  void Resume(const v1::AttemptReport& saved, bool start_intended);
  // droverd's START: every node is ready.
  void StartProcesses();
  // droverd's STOP: SIGTERM, `grace`, SIGKILL, clean up, report ENDED with `cause`.
  void Stop(v1::JobStatus::Cause cause, absl::Duration grace, const std::string& message);
  // The agent stops and leaves the processes running: the thread leaves at the next point
  // where it can (an attempt that is finishing completes its end first), without touching
  // the container or reporting; the next agent process takes the attempt over (Resume).
  void Detach();

  const v1::AttemptRef& ref() const { return assignment_.attempt(); }
  // The last report, for the hello after a reconnect.
  v1::AttemptReport LastReport();
  // For PeerExecService: the container, when node `caller` is a node of the attempt,
  // `token` is its secret and its processes run (see PeerExecService::Lookup for the
  // errors).
  absl::StatusOr<std::string> ExecTarget(const std::string& token, const std::string& caller);

 private:
  void Run();
  // Resume()'s thread.
  void RunRecovered(const v1::AttemptReport& saved, bool start_intended);
  // What an adopted attempt needs again: its GPUs, image, environment and data (nothing
  // copied or mounted again). FAILED_PRECONDITION when it cannot be adopted.
  absl::Status Adopt(const v1::AttemptReport& saved);
  // Whether Detach() was called.
  bool Detached();
  // Whether a STOP or Detach() asks the preparation to end.
  bool Interrupted();
  // Waits until the connection to droverd is up (droverd restarting, the network back),
  // until `give_up`, or until `stop` or the agent's shutdown; whether it is up.
  bool AwaitDroverd(absl::Time give_up, const std::function<bool()>& stop);
  void Report(v1::AttemptReport::Phase phase, const std::string& reason = "");
  // Makes `report` the last one, and keeps it in the attempt's record when its phase changed.
  void Record(const v1::AttemptReport& report);
  // Logs that the attempt was left to the next agent process (Detach()).
  void LeaveDetached();
  absl::Status Prepare();
  // Takes the GPUs the job needs from the node's (RESOURCE_EXHAUSTED when not enough are
  // free); sets gpus_.
  absl::Status TakeGpus();
  // Who holds the attempt's GPUs in the allocator: "<job>/<epoch>".
  std::string GpuOwner() const;
  // Builds or reuses the job's environment (after the image); its log is the PREPARE stream.
  absl::Status PrepareEnvironment();
  ContainerSpec BuildContainer() const;
  // The container's /etc/hosts; for MPI also WriteMpiFiles().
  absl::Status WriteNodeFiles();
  // MPI: the hostfile, the relay folder, and on node rank 0 the relay itself.
  absl::Status WriteMpiFiles();
  // Writes `text` to the file `path` of the attempt's folder (created or truncated).
  static absl::Status WriteTextFile(const std::string& path, const std::string& text);
  // Node rank 0 of an MPI attempt: serves drover-rsh on <dir>/relay/exec.sock.
  absl::Status StartRelay();
  // Where drover-rsh is in MPI job containers (mpirun's plm_rsh_agent).
  static constexpr char kRshPath[] = "/run/drover-mpi/rsh";
  // mpirun's argv on node rank 0, the ranks wrapped by drover-init as `init` describes.
  std::vector<std::string> MpiCommand(const InitCommand& init) const;
  // Starts the container (created before READY, or with `create` created now too) and runs
  // it until its processes end; fills exits_.
  absl::Status RunContainer(bool create);
  // Watches the running container until its processes end (fills exits_) or, on Detach(),
  // until the agent leaves (ABORTED). Acts on STOP.
  absl::Status WatchContainer();
  // Keeps how the ranks ended (ReadRankExits) once the container's PID 1 ended as `exit`.
  void ReadExits(const ContainerExit& exit);
  // Appends one reading of the container's CPU, memory and GPUs to the node's system
  // metrics file (SystemSampler).
  void SampleSystemMetrics();
  void UploadOutputs();
  // Appends a line for the user to the first rank's stderr (when it is a regular file).
  void NoteInJobLog(const std::string& note);
  // The attempt's log files, in its job folder, for the log shipper.
  LogShipper::LogFolder Logs() const;
  void Finish(v1::JobStatus::Cause cause, std::string message);
  // Finish with the cause and message of the STOP (none when no STOP came).
  void FinishAsStopped();

  const AttemptEnv env_;
  const v1::AssignAttempt assignment_;
  const std::string dir_;        // <work>/attempts/<job>-<epoch>
  const std::string container_;  // container id
  std::thread thread_;
  // The attempt's pauses; StartProcesses(), Stop() and Detach() wake them.
  Waiter waiter_;
  // An eventfd that Stop() and Detach() write to: the watch loop sleeps in the runtime's wait
  // for PID 1 (ContainerRuntime::WaitOrWake) until the processes end or this wakes it.
  UniqueFd watch_wake_;
  // Wakes the watch loop (WatchContainer).
  void WakeWatch();

  absl::Mutex mu_;
  bool start_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool detach_ ABSL_GUARDED_BY(mu_) = false;
  v1::JobStatus::Cause stop_cause_ ABSL_GUARDED_BY(mu_) = v1::JobStatus::CAUSE_UNSPECIFIED;
  std::string stop_message_ ABSL_GUARDED_BY(mu_);
  absl::Duration stop_grace_ ABSL_GUARDED_BY(mu_) = absl::Seconds(10);
  v1::AttemptReport last_ ABSL_GUARDED_BY(mu_);
  // The phase of the report last kept in the attempt's record.
  v1::AttemptReport::Phase saved_phase_ ABSL_GUARDED_BY(mu_) = v1::AttemptReport::PHASE_UNSPECIFIED;

  // Only on the attempt's thread.
  UnpackedImage image_;  // empty rootfs: the host image
  EnvironmentCache::Prepared environment_;  // no lease: the job needs no environment
  JobData data_;                       // datastores: arguments, mounts, uploads
  std::vector<NodeGpu> gpus_;          // the GPUs the attempt holds (in every report)
  absl::Status gpus_adopted_;          // Resume(): why its GPUs could not be held again
  std::unique_ptr<ExecRelay> relay_;  // node rank 0 of an MPI attempt (StartRelay)
  std::string mpi_network_;           // a.b.c.d/len of the nodes' network, for mpirun
  bool recovered_ = false;  // taken over from an earlier agent process (Resume)
  bool created_ = false;  // the runtime has the container
  bool exited_ = false;   // its PID 1 has exited (so nothing of it runs any more)
  std::vector<v1::RankExit> exits_;
  std::string outputs_digest_;
  int64_t outputs_size_ = 0;
  int first_failed_rank_ = -1;
  SystemSampler sampler_;               // the system metrics of the running container
  std::optional<v1::AttemptUsage> usage_;  // what the container used, once it ended
  absl::Time running_since_ = absl::InfiniteFuture();  // GPU readings older than this are not ours
  std::string launcher_message_;  // why mpirun failed, when it did
};

}  // namespace drover::agent

#endif  // DROVER_AGENT_ATTEMPT_H_
