// Agent: drover-agent's composition root. It keeps one stream to droverd (reconnecting with
// backoff), registers the node, heartbeats, runs the attempts droverd assigns and ships
// their logs. main() builds one from flags and calls Run() until a stop signal.
//
// Threads: the connection thread (connect, hello, read loop), the shipping thread (logs
// and heartbeats), one thread per attempt. Shared state is under `mu_`.
//
// Time: every deadline, timeout and renewal the agent decides on is read from the one
// `Clock` given to the constructor, handed down to the attempts (AttemptEnv::clock), the GPU
// sampler and the node certificate's renewal. Every pause is a wait on a Waiter (waiter.h)
// on that clock, woken by the event it waits for (Stop(), an attempt's STOP); only gRPC
// deadlines and kernel waits (the runtime's, rclone's process) pass in real time.
#ifndef DROVER_AGENT_AGENT_H_
#define DROVER_AGENT_AGENT_H_

#include <grpcpp/channel.h>
#include <grpcpp/server.h>

#include <atomic>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "agent/agent_metrics.h"
#include "agent/attempt.h"
#include "agent/blob_client.h"
#include "agent/environments/environment_cache.h"
#include "agent/exec_relay.h"
#include "agent/gpu_sampler.h"
#include "agent/gpus.h"
#include "agent/images/image_cache.h"
#include "agent/log_shipper.h"
#include "agent/node_certificate.h"
#include "agent/peer_tls.h"
#include "agent/runtime/container_runtime.h"
#include "agent/snapshot_cache.h"
#include "agent/waiter.h"
#include "common/clock.h"
#include "drover/v1/agent_service.grpc.pb.h"
#include "drover/v1/blob.grpc.pb.h"

namespace drover::agent {

struct AgentOptions {
  // droverd's HOST:PORT, or several droverds' "HOST:PORT,HOST:PORT" (one leads, the others
  // stand by): the agent connects to the first, and after a failed connection to the one
  // a standby names as leader when it is one of these, else to the next.
  std::string scheduler;
  std::string ca_pem;     // the CA certificate droverd's TLS certificate is checked against
  // The node certificate the agent presents to droverd (and renews when it is its own).
  NodeCertificateFiles node_certificate;
  std::string work_dir;   // attempts, snapshot and image caches, runc state
  v1::NodeInfo node;      // name, addresses, capacity, labels, version, GPUs
  // HOST:PORT for AgentPeerService (MPI launches from other nodes); port 0: the kernel picks.
  std::string peer_listen;
  // drover-rsh on the node, bound into MPI job containers.
  std::string rsh_binary;
  // The `drover` Python module's folder (holding drover/), bound into every job container;
  // empty: none.
  std::string python_dir;
  // How often the node samples each running container's CPU and memory (system metrics).
  absl::Duration metrics_interval = absl::Seconds(10);
  // The agent's own metrics (owned by the caller); null: none.
  AgentMetrics* metrics = nullptr;
  // The node's GPUs (DiscoverGpus), which attempts are given from.
  GpuInventory gpus;
  absl::Duration min_backoff = absl::Milliseconds(200);
  absl::Duration max_backoff = absl::Seconds(10);
  absl::Duration log_poll = absl::Milliseconds(50);
  // Disk budget of the cached pip/conda environments (<work_dir>/environments).
  int64_t environment_cache_bytes = int64_t{20} << 30;
  // What Stop() does to the attempts: false (the default) leaves their processes running
  // for the next agent process to take over; true stops them (SIGTERM, 2 s, SIGKILL) and
  // cleans up, for a node that is being taken out of service.
  bool stop_jobs_on_exit = false;
  // The folders HOSTPATH datastores may be in (--datastore-root); empty: none may be used.
  std::vector<std::string> datastore_roots;
  // Most processes each job container may have (--pids-limit); 0: no limit.
  int64_t pids_limit = 4096;
  // The job containers' user namespace (--userns-range; the runtime has the same): what
  // FUSE datastore mounts are given to. size 0: none.
  IdRange userns;
};

class Agent {
 public:
  // `clock` (not owned, outlives the agent) is the time every decision of the agent reads.
  Agent(AgentOptions options, ContainerRuntime& runtime, const Clock& clock = RealClock::Get());
  ~Agent();

  // Takes over the attempts an earlier agent process left (their records), cleans up what
  // else it left, connects and serves until Stop(); returns once the attempts were left
  // running or stopped (stop_jobs_on_exit). UNAVAILABLE at once when it cannot listen on
  // peer_listen.
  absl::Status Run();
  // Thread-safe; Run() returns soon after.
  void Stop();

 private:
  // The key of an attempt in attempts_ and ended_: "<job>/<epoch>".
  static std::string Key(const v1::AttemptRef& attempt);
  void ConnectionLoop();
  // The pause between connection attempts: up to `limit`, ended early by a stop.
  void AwaitScheduler(absl::Duration limit);
  void ShippingLoop();
  // Wakes the shipping loop to poll the logs and collect ended attempts (from any thread).
  void WakeShipping();
  void Handle(const v1::SchedulerMessage& message);
  // Sends on the current stream; false when there is none.
  bool Send(const v1::AgentMessage& message);
  // The environment of an attempt this agent runs or takes over.
  AttemptEnv MakeAttemptEnv();
  // Takes over the attempts of the records an earlier agent process left (see Attempt::
  // Resume), after RemoveLeftovers() removed everything else it left.
  void Recover();
  // Unmounts the rclone mounts and deletes the containers, job folders and unfinished
  // environment builds an earlier run of the agent left, except the containers and job
  // folders of the attempts in `keep`.
  void RemoveLeftovers(const std::vector<v1::AttemptRef>& keep);
  // Serves AgentPeerService on options_.peer_listen; sets peer_endpoint_.
  absl::Status StartPeerServer();
  // PeerExecService's lookup: the container of an attempt this agent runs.
  absl::StatusOr<std::string> ExecTarget(const v1::AttemptRef& attempt, const std::string& token,
                                         const std::string& caller);

  const AgentOptions options_;
  ContainerRuntime& runtime_;
  const Clock& clock_;
  // One channel and its stubs per droverd address (options_.scheduler), fixed from the
  // start; `current_` indexes the droverd in use (changed by the connection loop only).
  struct Droverd {
    std::string address;
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<v1::AgentService::Stub> agents;
    std::unique_ptr<v1::BlobService::Stub> blobs;
  };
  static std::vector<Droverd> DroverdChannels(const std::string& scheduler,
                                              const NodeCertificateFiles& files);
  std::vector<std::string> Addresses() const {
    std::vector<std::string> addresses;
    for (const Droverd& d : droverds_) addresses.push_back(d.address);
    return addresses;
  }
  std::vector<Droverd> droverds_;
  std::atomic<size_t> current_{0};
  const Droverd& droverd() const { return droverds_[current_.load()]; }
  BlobClient blob_client_;     // images, snapshots, outputs
  SnapshotCache snapshots_;    // shared by the attempts
  ProcessRunner image_tools_;  // umoci, skopeo
  ImageCache images_;          // shared by the attempts
  GpuAllocator gpus_;          // shared by the attempts
  GpuSampler gpu_sampler_;     // read by the attempts
  EnvironmentCache environments_;  // shared by the attempts
  LogShipper shipper_;
  absl::Notification stopping_;
  Waiter waiter_{clock_};  // the shipping loop's and reconnection's pauses; Stop() wakes them
  std::atomic<bool> ship_{false};  // WakeShipping() was called since the loop last looked
  PeerTls peer_tls_;  // the peer port's and the exec relays' TLS, node certificates
  std::unique_ptr<PeerExecService> peer_service_;
  std::unique_ptr<grpc::Server> peer_server_;
  std::string peer_endpoint_;  // set before the connection thread starts

  absl::Mutex write_mu_;  // one writer at a time on the stream
  grpc::ClientContext* context_ ABSL_GUARDED_BY(write_mu_) = nullptr;
  grpc::ClientReaderWriter<v1::AgentMessage, v1::SchedulerMessage>* stream_
      ABSL_GUARDED_BY(write_mu_) = nullptr;
  absl::Duration heartbeat_ ABSL_GUARDED_BY(write_mu_) = absl::Seconds(2);

  // An attempt that ended on this node, once its thread is done: what remains of it until
  // droverd surely has its end (its last report, for the hello after a reconnect).
  struct Ended {
    std::string report;  // the final v1::AttemptReport, serialized (a quarter of its size)
    absl::Time since;    // when it ended, or the last hello that reported it again
  };
  // Moves the attempts that said they ended (finished_) from attempts_ to ended_ (or, when
  // droverd already stored their end, forgets them); returns them, to be destroyed (their
  // threads joined) without the lock.
  std::vector<std::unique_ptr<Attempt>> CollectFinished() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops the ended attempts droverd has surely had for `keep`, and their records.
  void ForgetEnded(absl::Duration keep) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  // By "<job>/<epoch>": the attempts this agent runs, prepares or watches end.
  std::map<std::string, std::unique_ptr<Attempt>> attempts_ ABSL_GUARDED_BY(mu_);
  // Attempts whose thread reported ENDED and is about to leave, to move to ended_.
  std::vector<std::string> finished_ ABSL_GUARDED_BY(mu_);
  // Attempts droverd said it stored the end of (EndsStored) before they were collected.
  std::set<std::string> stored_ ABSL_GUARDED_BY(mu_);
  // By "<job>/<epoch>": a few hundred bytes per attempt, where a whole Attempt (its spec,
  // buffers and its thread's stack until joined) took tens of kilobytes.
  std::map<std::string, Ended> ended_ ABSL_GUARDED_BY(mu_);
};

// The peer port an earlier agent process listened on, kept in `path` (<work>/peer-port) so
// that a restarted agent binds it again; 0 when there is none to trust (missing, not a
// regular file, not a port number). SavePeerPort() replaces the file atomically.
int SavedPeerPort(const std::string& path);
void SavePeerPort(const std::string& path, int port);

// The node's description from what the machine has: cpus and memory (from the kernel),
// `address` (empty: the local address used to reach `scheduler`), name, labels, and `gpus`
// (listed, and their number as the capacity).
absl::StatusOr<v1::NodeInfo> DescribeNode(const std::string& name, const std::string& address,
                                          const std::string& scheduler, double cpus,
                                          int64_t memory_mib,
                                          const std::map<std::string, std::string>& labels,
                                          const GpuInventory& gpus = {});

}  // namespace drover::agent

#endif  // DROVER_AGENT_AGENT_H_
