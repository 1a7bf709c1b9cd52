#include "bench/sim_cluster_bench.h"

#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <deque>
#include <fstream>
#include <functional>
#include <memory>
#include <queue>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "bench/bench_node.h"
#include "bench/channel.h"
#include "common/grpc_status.h"
#include "drover/v1/admin_service.grpc.pb.h"
#include "drover/v1/agent_service.grpc.pb.h"
#include "drover/v1/job_service.grpc.pb.h"

namespace drover::bench {
namespace {

using SteadyClock = std::chrono::steady_clock;
// The label that puts a run's nodes in its compute targets (value: the run, or the run
// and "-probe"). While the queue fills, the run's target selects the value "RUN-parked",
// which no node has.
constexpr char kSimLabel[] = "drover-sim";
constexpr int64_t kMaxNodes = 20000;
constexpr int64_t kMaxJobs = 1000000;
constexpr int32_t kMultiProcesses = 4;
constexpr int32_t kProbePriority = 1000;
constexpr absl::Duration kWelcomeTimeout = absl::Minutes(1);

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  in >> one >> five >> fifteen;
  return absl::StrCat(one, " ", five, " ", fifteen);
}

// VmRSS of `pid` in KiB; 0 when it cannot be read.
int64_t RssKib(pid_t pid) {
  if (pid <= 0) return 0;
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      std::istringstream fields(line.substr(6));
      int64_t kib = 0;
      fields >> kib;
      return kib;
    }
  }
  return 0;
}

// User + system CPU seconds of `pid` (/proc/PID/stat fields 14 and 15); 0 when unreadable.
double CpuSeconds(pid_t pid) {
  if (pid <= 0) return 0;
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t paren = text.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream fields(text.substr(paren + 2));
  std::string field;
  double ticks = 0;
  // After the name: state is field 3; utime 14 and stime 15.
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i >= 14) ticks += std::stod(field);
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double SelfCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

// Every node's stream and the bench's channels need a descriptor each.
void RaiseFileLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

class SimNode;

// What a node's attempt knows: its ranks and how long it runs.
struct HeldAttempt {
  int64_t epoch = 0;
  int32_t first_rank = 0;
  int32_t processes = 0;
  // Node rank 0 of a multi-node attempt runs `mpirun`, which exits after the other nodes'
  // ranks: it ends a little later than they do (droverd stops the others once it ended).
  bool launcher = false;
  bool running = false;
};

// What the run saw of one job, over all its nodes.
struct JobSeen {
  int64_t epoch = 0;
  int32_t node_count = 0;
  std::vector<bool> ranks_assigned;
  int32_t ranks_ended = 0;
  bool probe = false;
  SteadyClock::time_point assigned;
};

// The run's shared state: what every node saw, and the timer thread that ends attempts and
// sends heartbeats.
class Sim {
 public:
  explicit Sim(const SimClusterOptions& o) : options_(o) {}

  // Called by a node's reactor for each message droverd sends it.
  void Handle(SimNode& node, const v1::SchedulerMessage& message);
  void NodeDone();
  void StreamBroken();

  // The attempt of `job_id` on `node` ends at `at` (timer thread).
  void EndAt(SimNode* node, std::string job_id, int64_t epoch, SteadyClock::time_point at);
  void StartTimers(std::vector<std::unique_ptr<SimNode>>* nodes);
  void StopTimers();

  // How long an attempt of `job_id` runs: the same on every node of a gang, but for its
  // launcher's.
  absl::Duration RunTime(const std::string& job_id, bool launcher) const {
    const uint64_t h = absl::HashOf(job_id, options_.seed);
    const double span = absl::ToDoubleSeconds(options_.max_run - options_.min_run);
    return options_.min_run + absl::Seconds(span * static_cast<double>(h % 1000001) / 1e6) +
           (launcher ? absl::Milliseconds(20) : absl::ZeroDuration());
  }
  // The node's part of the attempt of `job_id` ended (after its run, or stopped).
  void PartEnded(const std::string& job_id, int64_t epoch);

  absl::Mutex mu;
  absl::CondVar changed;
  int64_t welcomed ABSL_GUARDED_BY(mu) = 0;
  int64_t done ABSL_GUARDED_BY(mu) = 0;
  int64_t broken ABSL_GUARDED_BY(mu) = 0;
  absl::Duration heartbeat ABSL_GUARDED_BY(mu) = absl::Seconds(2);
  absl::flat_hash_map<std::string, JobSeen> jobs ABSL_GUARDED_BY(mu);
  // Time of each placement of a queued job (its first AssignAttempt to arrive).
  std::vector<SteadyClock::time_point> placed ABSL_GUARDED_BY(mu);
  int64_t gang_placements ABSL_GUARDED_BY(mu) = 0;
  int64_t assignments ABSL_GUARDED_BY(mu) = 0;
  int64_t duplicate_assignments ABSL_GUARDED_BY(mu) = 0;
  int64_t reassigned ABSL_GUARDED_BY(mu) = 0;
  int64_t stopped ABSL_GUARDED_BY(mu) = 0;
  int64_t completed_jobs ABSL_GUARDED_BY(mu) = 0;  // queued jobs whose every node ended
  int64_t completed_attempts ABSL_GUARDED_BY(mu) = 0;

 private:
  struct Event {
    SteadyClock::time_point at;
    SimNode* node;
    std::string job_id;
    int64_t epoch;
    bool operator>(const Event& other) const { return at > other.at; }
  };
  void TimerLoop(std::vector<std::unique_ptr<SimNode>>* nodes);

  const SimClusterOptions& options_;
  absl::Mutex timer_mu_;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> events_
      ABSL_GUARDED_BY(timer_mu_);
  bool stop_ ABSL_GUARDED_BY(timer_mu_) = false;
  std::thread timer_;
};

// One fake node: its channel (its own certificate), its AgentService stream as a callback
// reactor, its outgoing queue with one write in flight, and the attempts it holds.
class SimNode final : public grpc::ClientBidiReactor<v1::AgentMessage, v1::SchedulerMessage> {
 public:
  SimNode(Sim& sim, std::string name, bool probe) : sim_(sim), name_(std::move(name)), probe_(probe) {}

  const std::string& name() const { return name_; }
  bool probe() const { return probe_; }

  // Connects and says hello; droverd's answers go to Sim::Handle.
  void Start(const std::string& server, const std::string& ca_pem, const NodeIdentity& identity,
             const v1::NodeInfo& info) {
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = ca_pem;
    tls.pem_private_key = identity.key_pem;
    tls.pem_cert_chain = identity.certificate_pem;
    grpc::ChannelArguments args;
    // A connection of its own, as a real node's: never a subchannel shared with another node.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    channel_ = grpc::CreateCustomChannel(server, grpc::SslCredentials(tls), args);
    stub_ = v1::AgentService::NewStub(channel_);
    stub_->async()->Connect(&context_, this);
    // Held until Stop: the timer thread may start a write at any moment, which is only
    // allowed before OnDone.
    AddHold();
    v1::AgentMessage hello;
    *hello.mutable_hello()->mutable_node() = info;
    Send(std::move(hello));
    StartRead(&in_);
    StartCall();
  }

  // Queues `message` (dropped once the stream ended). StartWrite is never called with `mu_`
  // held: a write that completes at once runs OnWriteDone on this thread, inside it.
  void Send(v1::AgentMessage message) {
    const v1::AgentMessage* front = nullptr;
    {
      absl::MutexLock lock(&mu_);
      if (ended_) return;
      out_.push_back(std::move(message));
      if (writing_) return;
      writing_ = true;
      front = &out_.front();
    }
    StartWrite(front);
  }

  // Ends the stream; OnDone follows. Once, after Start, with the timer thread stopped.
  void Stop() {
    stopping = true;
    context_.TryCancel();
    RemoveHold();
  }

  // Attempts held, by job id (the reactor's and the timer's threads).
  absl::Mutex held_mu;
  absl::flat_hash_map<std::string, HeldAttempt> held ABSL_GUARDED_BY(held_mu);
  std::atomic<bool> stopping{false};  // set before Cancel: its end is not a broken stream

  void OnReadDone(bool ok) override {
    if (!ok) {  // the stream ended: OnDone follows once Stop removed the hold
      {
        absl::MutexLock lock(&mu_);
        ended_ = true;
      }
      if (!stopping) {
        broke_ = true;
        sim_.StreamBroken();
      }
      return;
    }
    sim_.Handle(*this, in_);
    StartRead(&in_);
  }
  void OnWriteDone(bool ok) override {
    const v1::AgentMessage* front = nullptr;
    {
      absl::MutexLock lock(&mu_);
      if (!ok) {
        ended_ = true;
        writing_ = false;
        return;  // the queue is dropped with the node
      }
      out_.pop_front();
      if (out_.empty() || ended_) {
        writing_ = false;
        return;
      }
      front = &out_.front();
    }
    StartWrite(front);
  }
  void OnDone(const grpc::Status& status) override {
    if (broke_ && !status.ok()) {  // droverd ended it before the run did
      std::fprintf(stderr, "drover-bench sim-cluster: node %s: stream ended: %s\n", name_.c_str(),
                   status.error_message().c_str());
    }
    sim_.NodeDone();
  }

 private:
  Sim& sim_;
  const std::string name_;
  const bool probe_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::AgentService::Stub> stub_;
  grpc::ClientContext context_;
  v1::SchedulerMessage in_;
  absl::Mutex mu_;
  std::deque<v1::AgentMessage> out_ ABSL_GUARDED_BY(mu_);  // front is being written
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  bool broke_ = false;  // OnReadDone, then OnDone
};

v1::AgentMessage Report(const v1::AttemptRef& attempt, v1::AttemptReport::Phase phase,
                        const std::string& reason = "") {
  v1::AgentMessage message;
  *message.mutable_report()->mutable_attempt() = attempt;
  message.mutable_report()->set_phase(phase);
  if (!reason.empty()) message.mutable_report()->set_reason(reason);
  return message;
}

v1::AttemptRef Ref(const std::string& job_id, int64_t epoch) {
  v1::AttemptRef ref;
  ref.set_job_id(job_id);
  ref.set_epoch(epoch);
  return ref;
}

// The attempt's ENDED report: every rank of the node exited 0, or `cause` when stopped.
v1::AgentMessage Ended(const SimNode& node, const std::string& job_id, const HeldAttempt& held,
                       v1::JobStatus::Cause cause) {
  v1::AgentMessage message = Report(Ref(job_id, held.epoch), v1::AttemptReport::ENDED);
  v1::AttemptReport* report = message.mutable_report();
  for (int32_t i = 0; i < held.processes; ++i) {
    v1::RankExit* exit = report->add_exits();
    exit->set_rank(held.first_rank + i);
    exit->set_node(node.name());
    if (cause != v1::JobStatus::CAUSE_UNSPECIFIED) exit->set_signal(15);
  }
  report->set_cause(cause);
  return message;
}

void Sim::Handle(SimNode& node, const v1::SchedulerMessage& message) {
  const SteadyClock::time_point now = SteadyClock::now();
  if (message.has_welcome()) {
    absl::MutexLock lock(&mu);
    ++welcomed;
    if (message.welcome().heartbeat_interval().seconds() > 0 ||
        message.welcome().heartbeat_interval().nanos() > 0) {
      heartbeat = absl::Seconds(message.welcome().heartbeat_interval().seconds()) +
                  absl::Nanoseconds(message.welcome().heartbeat_interval().nanos());
    }
    changed.SignalAll();
    return;
  }
  if (message.has_assign()) {
    const v1::AssignAttempt& assign = message.assign();
    const std::string& job_id = assign.attempt().job_id();
    {
      absl::MutexLock lock(&mu);
      ++assignments;
      JobSeen& seen = jobs[job_id];
      const bool first_of_job = seen.epoch == 0;
      if (!first_of_job && seen.epoch != assign.attempt().epoch()) {
        ++reassigned;
        seen = JobSeen{};
      }
      if (seen.epoch == 0) {
        seen.epoch = assign.attempt().epoch();
        seen.node_count = std::max(1, assign.node_count());
        seen.ranks_assigned.assign(static_cast<size_t>(seen.node_count), false);
        seen.probe = node.probe();
        seen.assigned = now;
        if (!node.probe()) {
          placed.push_back(now);
          if (seen.node_count > 1) ++gang_placements;
        }
      }
      const int32_t rank = assign.node_rank();
      if (rank >= 0 && rank < seen.node_count) {
        if (seen.ranks_assigned[static_cast<size_t>(rank)]) ++duplicate_assignments;
        seen.ranks_assigned[static_cast<size_t>(rank)] = true;
      }
    }
    HeldAttempt held;
    held.epoch = assign.attempt().epoch();
    held.first_rank = assign.first_rank();
    held.processes = std::max(1, assign.spec().process_count_per_node());
    held.running = assign.start_when_ready();
    held.launcher = assign.node_count() > 1 && assign.node_rank() == 0;
    {
      absl::MutexLock lock(&node.held_mu);
      node.held[job_id] = held;
    }
    node.Send(Report(assign.attempt(), v1::AttemptReport::PREPARING, "CREATING_JOB_FOLDER"));
    node.Send(Report(assign.attempt(), v1::AttemptReport::READY));
    if (assign.start_when_ready()) {
      node.Send(Report(assign.attempt(), v1::AttemptReport::RUNNING));
      EndAt(&node, job_id, held.epoch,
            now + absl::ToChronoNanoseconds(RunTime(job_id, held.launcher)));
    }
    return;
  }
  if (message.has_start()) {
    const v1::AttemptRef& attempt = message.start().attempt();
    bool launcher = false;
    {
      absl::MutexLock lock(&node.held_mu);
      auto it = node.held.find(attempt.job_id());
      if (it == node.held.end() || it->second.epoch != attempt.epoch() || it->second.running) {
        return;
      }
      it->second.running = true;
      launcher = it->second.launcher;
    }
    node.Send(Report(attempt, v1::AttemptReport::RUNNING));
    EndAt(&node, attempt.job_id(), attempt.epoch(),
          now + absl::ToChronoNanoseconds(RunTime(attempt.job_id(), launcher)));
    return;
  }
  if (message.has_stop()) {
    const v1::AttemptRef& attempt = message.stop().attempt();
    HeldAttempt held;
    {
      absl::MutexLock lock(&node.held_mu);
      auto it = node.held.find(attempt.job_id());
      if (it == node.held.end() || it->second.epoch != attempt.epoch()) return;
      held = it->second;
      node.held.erase(it);
    }
    {
      absl::MutexLock lock(&mu);
      ++stopped;
    }
    PartEnded(attempt.job_id(), attempt.epoch());
    node.Send(Ended(node, attempt.job_id(), held, message.stop().cause()));
  }
  // Log acknowledgements and EndsStored: nothing to do (the fake nodes write no logs and
  // keep no records).
}

void Sim::PartEnded(const std::string& job_id, int64_t epoch) {
  absl::MutexLock lock(&mu);
  auto it = jobs.find(job_id);
  if (it != jobs.end() && it->second.epoch == epoch &&
      ++it->second.ranks_ended == it->second.node_count) {
    ++completed_attempts;
    if (!it->second.probe) {
      ++completed_jobs;
      // Only a run until every job completed waits for this.
      if (options_.duration == absl::ZeroDuration()) changed.SignalAll();
    }
  }
}

void Sim::NodeDone() {
  absl::MutexLock lock(&mu);
  ++done;
  changed.SignalAll();
}

void Sim::StreamBroken() {
  absl::MutexLock lock(&mu);
  ++broken;
  changed.SignalAll();
}

void Sim::EndAt(SimNode* node, std::string job_id, int64_t epoch, SteadyClock::time_point at) {
  absl::MutexLock lock(&timer_mu_);
  events_.push(Event{at, node, std::move(job_id), epoch});
}

void Sim::StartTimers(std::vector<std::unique_ptr<SimNode>>* nodes) {
  timer_ = std::thread([this, nodes] { TimerLoop(nodes); });
}

void Sim::StopTimers() {
  {
    absl::MutexLock lock(&timer_mu_);
    stop_ = true;
  }
  if (timer_.joinable()) timer_.join();
}

void Sim::TimerLoop(std::vector<std::unique_ptr<SimNode>>* nodes) {
  // Heartbeats spread over the interval, as independent agents' are.
  std::mt19937_64 random(options_.seed);
  std::vector<SteadyClock::time_point> next_heartbeat(nodes->size());
  absl::Duration interval;
  {
    absl::MutexLock lock(&mu);
    interval = heartbeat;
  }
  const SteadyClock::time_point start = SteadyClock::now();
  for (auto& t : next_heartbeat) {
    t = start + std::chrono::nanoseconds(random() %
                                          static_cast<uint64_t>(absl::ToInt64Nanoseconds(interval)));
  }
  while (true) {
    std::vector<Event> due;
    const SteadyClock::time_point now = SteadyClock::now();
    {
      absl::MutexLock lock(&timer_mu_);
      if (stop_) return;
      while (!events_.empty() && events_.top().at <= now) {
        due.push_back(events_.top());
        events_.pop();
      }
    }
    for (const Event& event : due) {
      HeldAttempt held;
      {
        absl::MutexLock lock(&event.node->held_mu);
        auto it = event.node->held.find(event.job_id);
        if (it == event.node->held.end() || it->second.epoch != event.epoch) continue;
        held = it->second;
        event.node->held.erase(it);
      }
      PartEnded(event.job_id, event.epoch);
      event.node->Send(Ended(*event.node, event.job_id, held, v1::JobStatus::CAUSE_UNSPECIFIED));
    }
    for (size_t i = 0; i < nodes->size(); ++i) {
      if (next_heartbeat[i] > now) continue;
      v1::AgentMessage message;
      message.mutable_heartbeat();
      (*nodes)[i]->Send(std::move(message));
      next_heartbeat[i] = now + absl::ToChronoNanoseconds(interval);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// The queued jobs' shapes.
enum class Shape { kSingle, kMulti, kGang };

v1::JobSpec ShapeSpec(const SimClusterOptions& o, Shape shape, int32_t gang_nodes,
                      const std::string& target) {
  v1::JobSpec spec;
  spec.set_entry_script("bin/sh");
  spec.add_arguments()->set_value("-c");
  spec.add_arguments()->set_value("true");
  spec.set_compute_target(target);
  const int64_t mib_per_cpu = std::max<int64_t>(1, o.memory_mib_per_node / o.cpus_per_node);
  switch (shape) {
    case Shape::kSingle:
      spec.set_name("sim-single");
      spec.set_process_count_per_node(1);
      spec.mutable_resources()->set_cpus(1);
      spec.mutable_resources()->set_memory_mib(mib_per_cpu);
      break;
    case Shape::kMulti: {
      const int64_t cpus = std::min<int64_t>(kMultiProcesses, o.cpus_per_node);
      spec.set_name("sim-multi");
      spec.set_process_count_per_node(kMultiProcesses);
      spec.mutable_resources()->set_cpus(static_cast<double>(cpus));
      spec.mutable_resources()->set_memory_mib(cpus * mib_per_cpu);
      break;
    }
    case Shape::kGang:
      spec.set_name(absl::StrCat("sim-gang-", gang_nodes));
      spec.set_node_count(gang_nodes);
      spec.set_process_count_per_node(1);
      spec.set_distributed_backend(v1::JobSpec::MPI);
      spec.mutable_resources()->set_cpus(static_cast<double>(o.cpus_per_node));
      spec.mutable_resources()->set_memory_mib(o.memory_mib_per_node);
      if (o.gpus_per_node > 0) {
        spec.mutable_environment()->set_use_gpu(true);
        spec.mutable_resources()->set_gpus(static_cast<int32_t>(o.gpus_per_node));
      }
      break;
  }
  return spec;
}

absl::Status PutTarget(v1::AdminService::Stub& admin, const std::string& name,
                       const std::string& label_value) {
  v1::PutComputeTargetRequest request;
  request.mutable_target()->set_name(name);
  (*request.mutable_target()->mutable_selector())[kSimLabel] = label_value;
  v1::ComputeTarget put;
  grpc::ClientContext context;
  SetDeadline(context);
  if (grpc::Status s = admin.PutComputeTarget(&context, request, &put); !s.ok()) {
    return FromGrpcStatus(s, absl::StrCat("putting compute target '", name, "'"));
  }
  return absl::OkStatus();
}

void DeleteTarget(v1::AdminService::Stub& admin, const std::string& name) {
  v1::DeleteComputeTargetRequest request;
  request.set_name(name);
  v1::DeleteComputeTargetResponse deleted;
  grpc::ClientContext context;
  SetDeadline(context);
  (void)admin.DeleteComputeTarget(&context, request, &deleted);  // best effort
}

absl::StatusOr<std::string> Submit(v1::JobService::Stub& jobs, v1::JobSpec spec) {
  v1::SubmitJobRequest request;
  *request.mutable_spec() = std::move(spec);
  v1::SubmitJobResponse submitted;
  grpc::ClientContext context;
  SetDeadline(context);
  if (grpc::Status s = jobs.SubmitJob(&context, request, &submitted); !s.ok()) {
    return FromGrpcStatus(s, "submitting a job");
  }
  return submitted.job().id();
}

absl::Status Validate(const SimClusterOptions& o) {
  if (o.server.empty()) return absl::InvalidArgumentError("--server: required; pass droverd's HOST:PORT");
  if (o.server.rfind("unix:", 0) == 0) {
    return absl::InvalidArgumentError(
        "--server: agents connect over TLS with a node certificate; pass droverd's --listen "
        "HOST:PORT, not its admin socket");
  }
  if (o.nodes < 1 || o.nodes > kMaxNodes) {
    return absl::InvalidArgumentError(
        absl::StrCat("--nodes: ", o.nodes, " is out of range; use 1 to ", kMaxNodes));
  }
  if (o.cpus_per_node < 1 || o.cpus_per_node > 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("--cpus-per-node: ", o.cpus_per_node, " is out of range; use 1 to 1024"));
  }
  if (o.memory_mib_per_node < o.cpus_per_node || o.memory_mib_per_node > (int64_t{1} << 24)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--memory-mib-per-node: ", o.memory_mib_per_node,
        " is out of range; use at least 1 MiB per CPU and at most 16777216"));
  }
  if (o.gpus_per_node < 0 || o.gpus_per_node > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("--gpus-per-node: ", o.gpus_per_node, " is out of range; use 0 to 64"));
  }
  if (o.jobs < 0 || o.jobs > kMaxJobs) {
    return absl::InvalidArgumentError(
        absl::StrCat("--jobs: ", o.jobs, " is out of range; use 0 to ", kMaxJobs));
  }
  if (o.gang_percent < 0 || o.gang_percent > 100) {
    return absl::InvalidArgumentError(
        absl::StrCat("--gang-percent: ", o.gang_percent, " is out of range; use 0 to 100"));
  }
  if (o.gang_percent > 0 && o.nodes < 2) {
    return absl::InvalidArgumentError(
        "--gang-percent: gangs need at least 2 nodes; pass --nodes 2 or more, or --gang-percent 0");
  }
  if (o.array_chunk < 1 || o.array_chunk > 100000) {
    return absl::InvalidArgumentError(
        absl::StrCat("--array-chunk: ", o.array_chunk, " is out of range; use 1 to 100000"));
  }
  if (o.min_run < absl::ZeroDuration() || o.max_run < o.min_run) {
    return absl::InvalidArgumentError(
        "--min-run, --max-run: need 0 <= --min-run <= --max-run");
  }
  if (o.probe_nodes < 0 || o.probe_nodes > 100) {
    return absl::InvalidArgumentError(
        absl::StrCat("--probe-nodes: ", o.probe_nodes, " is out of range; use 0 to 100"));
  }
  if (o.probe_nodes > 0 && o.probe_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--probe-interval: must be positive (or --probe-nodes 0)");
  }
  if (o.duration < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--duration: must not be negative (0: until all complete)");
  }
  if (o.verify && o.duration != absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "--verify: needs a run until every job completed; pass --duration 0");
  }
  if (o.join_concurrency < 1 || o.join_concurrency > 256) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--join-concurrency: ", o.join_concurrency, " is out of range; use 1 to 256"));
  }
  if (o.node_prefix.empty() || o.node_prefix.size() > 40 ||
      o.node_prefix.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") !=
          std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--node-prefix: '", o.node_prefix, "' must be 1-40 characters of [a-z0-9-]"));
  }
  if (o.labels.contains(kSimLabel)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--label: '", kSimLabel, "' is the run's own label; use another key"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SimClusterResult> RunSimCluster(const SimClusterOptions& o) {
  if (absl::Status s = Validate(o); !s.ok()) return s;
  absl::StatusOr<std::string> ca_pem = ReadCa(o.ca_file);
  if (!ca_pem.ok()) return ca_pem.status();
  RaiseFileLimit();
  SimClusterResult result;
  result.load_before = LoadAverage();
  result.nodes = o.nodes;
  result.rss_idle_kib = RssKib(o.droverd_pid);

  absl::StatusOr<std::shared_ptr<grpc::Channel>> user_channel =
      ConnectDroverd(o.server, o.ca_file, absl::Seconds(10));
  if (!user_channel.ok()) return user_channel.status();
  auto admin = v1::AdminService::NewStub(*user_channel);
  auto jobs_stub = v1::JobService::NewStub(*user_channel);

  std::random_device device;
  const std::string run_id = absl::StrFormat("%08x", device());
  const std::string target = absl::StrCat("sim-", run_id);
  const std::string probe_target = absl::StrCat("sim-", run_id, "-probe");
  const std::string parked = absl::StrCat(run_id, "-parked");

  // Step 2: the nodes join (a few at a time, over one joining channel) and say hello.
  const int64_t total_nodes = o.nodes + o.probe_nodes;
  std::vector<NodeIdentity> identities(static_cast<size_t>(total_nodes));
  const SteadyClock::time_point join_start = SteadyClock::now();
  {
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = *ca_pem;
    std::shared_ptr<grpc::Channel> joiner = grpc::CreateChannel(o.server, grpc::SslCredentials(tls));
    std::atomic<int64_t> next{0};
    absl::Mutex error_mu;
    absl::Status error;
    std::vector<std::thread> joiners;
    for (int64_t t = 0; t < std::min(o.join_concurrency, total_nodes); ++t) {
      joiners.emplace_back([&] {
        for (int64_t i = next++; i < total_nodes; i = next++) {
          {
            absl::MutexLock lock(&error_mu);
            if (!error.ok()) return;
          }
          absl::StatusOr<NodeIdentity> identity =
              JoinAsNode(*user_channel, joiner, absl::StrCat(o.node_prefix, "-", i));
          if (!identity.ok()) {
            absl::MutexLock lock(&error_mu);
            if (error.ok()) error = identity.status();
            return;
          }
          identities[static_cast<size_t>(i)] = *std::move(identity);
        }
      });
    }
    for (std::thread& t : joiners) t.join();
    if (!error.ok()) return error;
  }

  Sim sim(o);
  std::vector<std::unique_ptr<SimNode>> nodes;
  nodes.reserve(static_cast<size_t>(total_nodes));
  for (int64_t i = 0; i < total_nodes; ++i) {
    const bool probe = i >= o.nodes;
    nodes.push_back(std::make_unique<SimNode>(sim, absl::StrCat(o.node_prefix, "-", i), probe));
  }
  // Ends every stream and waits for the reactors; deletes the run's targets.
  auto hang_up = [&](size_t started) {
    sim.StopTimers();
    for (size_t i = 0; i < started; ++i) nodes[i]->Stop();
    absl::MutexLock lock(&sim.mu);
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (sim.done < static_cast<int64_t>(started) && absl::Now() < deadline) {
      sim.changed.WaitWithDeadline(&sim.mu, deadline);
    }
    DeleteTarget(*admin, target);
    DeleteTarget(*admin, probe_target);
  };
  for (int64_t i = 0; i < total_nodes; ++i) {
    v1::NodeInfo info;
    info.set_name(nodes[i]->name());
    info.add_addresses("127.0.0.1");
    info.set_agent_version("drover-bench sim-cluster");
    info.set_peer_endpoint("127.0.0.1:1");
    info.mutable_capacity()->set_cpus(static_cast<double>(o.cpus_per_node));
    info.mutable_capacity()->set_memory_mib(o.memory_mib_per_node);
    info.mutable_capacity()->set_gpus(static_cast<int32_t>(o.gpus_per_node));
    for (const auto& [key, value] : o.labels) (*info.mutable_labels())[key] = value;
    (*info.mutable_labels())[kSimLabel] = nodes[i]->probe() ? absl::StrCat(run_id, "-probe") : run_id;
    nodes[i]->Start(o.server, *ca_pem, identities[static_cast<size_t>(i)], info);
  }
  identities.clear();
  int64_t welcomed = 0, broken = 0;
  {
    absl::MutexLock lock(&sim.mu);
    const absl::Time deadline = absl::Now() + kWelcomeTimeout;
    while (sim.welcomed < total_nodes && sim.broken == 0 && absl::Now() < deadline) {
      sim.changed.WaitWithDeadline(&sim.mu, deadline);
    }
    welcomed = sim.welcomed;
    broken = sim.broken;
  }
  if (welcomed < total_nodes) {
    hang_up(nodes.size());
    return absl::UnavailableError(absl::StrCat(
        "droverd welcomed ", welcomed, " of ", total_nodes, " fake nodes within ",
        absl::FormatDuration(kWelcomeTimeout), " (", broken,
        " streams ended; see the messages above and droverd's log)"));
  }
  result.join = absl::FromChrono(SteadyClock::now() - join_start);
  sim.StartTimers(&nodes);
  result.rss_nodes_kib = RssKib(o.droverd_pid);

  // Step 3: the queue, to a target that selects no node yet.
  absl::Status failed;
  if (failed = PutTarget(*admin, target, parked); failed.ok()) {
    failed = PutTarget(*admin, probe_target, absl::StrCat(run_id, "-probe"));
  }
  std::vector<int32_t> gang_sizes;
  for (int32_t size : {2, 4, 8}) {
    if (size <= o.nodes) gang_sizes.push_back(size);
  }
  const SteadyClock::time_point enqueue_start = SteadyClock::now();
  int64_t submitted = 0;
  int64_t per_shape[3] = {0, 0, 0};
  const double rest = (100.0 - static_cast<double>(o.gang_percent)) / 100;
  const double share[3] = {rest * 7 / 9, rest * 2 / 9, static_cast<double>(o.gang_percent) / 100};
  int64_t gang_chunks = 0;
  while (failed.ok() && submitted < o.jobs) {
    // The shape furthest below its share of what is queued so far, so that the queue
    // interleaves them.
    const int64_t count = std::min(o.array_chunk, o.jobs - submitted);
    int best = 0;
    double best_gap = -1e18;
    for (int s = 0; s < 3; ++s) {
      if (share[s] <= 0) continue;
      const double gap = share[s] * static_cast<double>(submitted + count) -
                         static_cast<double>(per_shape[s]);
      if (gap > best_gap) {
        best_gap = gap;
        best = s;
      }
    }
    const Shape shape = static_cast<Shape>(best);
    const int32_t gang_nodes =
        shape == Shape::kGang ? gang_sizes[static_cast<size_t>(gang_chunks++) % gang_sizes.size()]
                              : 1;
    v1::JobSpec spec = ShapeSpec(o, shape, gang_nodes, target);
    spec.mutable_array()->set_indices(absl::StrCat("0-", count - 1));
    if (absl::StatusOr<std::string> id = Submit(*jobs_stub, std::move(spec)); !id.ok()) {
      failed = id.status();
      break;
    }
    per_shape[best] += count;
    submitted += count;
  }
  result.jobs = submitted;
  result.enqueue = absl::FromChrono(SteadyClock::now() - enqueue_start);
  result.rss_queued_kib = RssKib(o.droverd_pid);
  if (!failed.ok()) {
    hang_up(nodes.size());
    return failed;
  }

  // Step 4: the nodes join the target; droverd places from here.
  const double droverd_cpu0 = CpuSeconds(o.droverd_pid);
  const double bench_cpu0 = SelfCpuSeconds();
  const SteadyClock::time_point start = SteadyClock::now();
  if (failed = PutTarget(*admin, target, run_id); !failed.ok()) {
    hang_up(nodes.size());
    return failed;
  }
  absl::flat_hash_map<std::string, SteadyClock::time_point> probes;  // job -> submitted
  const absl::Time deadline =
      absl::Now() + (o.duration > absl::ZeroDuration() ? o.duration : o.timeout);
  absl::Time next_probe = absl::Now();
  bool all_completed = false;
  while (absl::Now() < deadline) {
    if (o.probe_nodes > 0 && absl::Now() >= next_probe) {
      next_probe += o.probe_interval;
      v1::JobSpec spec = ShapeSpec(o, Shape::kSingle, 1, probe_target);
      spec.set_name("sim-probe");
      spec.set_priority(kProbePriority);
      const SteadyClock::time_point at = SteadyClock::now();
      absl::StatusOr<std::string> id = Submit(*jobs_stub, std::move(spec));
      if (absl::IsDeadlineExceeded(id.status())) {
        // droverd did not answer the submit within kCallTimeout: a figure, not a failure.
        ++result.probes_unassigned;
        continue;
      }
      if (!id.ok()) {
        failed = id.status();
        break;
      }
      probes[*id] = at;
    }
    absl::MutexLock lock(&sim.mu);
    if (o.duration == absl::ZeroDuration() && sim.completed_jobs >= submitted) {
      all_completed = true;
      break;
    }
    const absl::Time wake = o.probe_nodes > 0 ? std::min(deadline, next_probe) : deadline;
    sim.changed.WaitWithDeadline(&sim.mu, wake);
  }
  const SteadyClock::time_point end = SteadyClock::now();
  result.measured = absl::FromChrono(end - start);
  result.droverd_cpu_seconds = CpuSeconds(o.droverd_pid) - droverd_cpu0;
  result.bench_cpu_seconds = SelfCpuSeconds() - bench_cpu0;
  result.rss_end_kib = RssKib(o.droverd_pid);
  result.load_after = LoadAverage();
  if (!failed.ok()) {
    hang_up(nodes.size());
    return failed;
  }

  std::vector<std::string> job_ids;
  {
    absl::MutexLock lock(&sim.mu);
    // The last probes may be on their way to their nodes.
    auto probes_assigned = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(sim.mu) {
      for (const auto& [id, at] : probes) {
        if (!sim.jobs.contains(id)) return false;
      }
      return true;
    };
    const absl::Time probe_deadline = absl::Now() + absl::Seconds(10);
    while (!probes_assigned() && absl::Now() < probe_deadline) {
      sim.changed.WaitWithDeadline(&sim.mu, std::min(probe_deadline, absl::Now() + absl::Milliseconds(50)));
    }
    std::vector<int64_t> per_second;
    for (const SteadyClock::time_point t : sim.placed) {
      if (t > end) continue;
      ++result.placements;
      const auto second = std::chrono::duration_cast<std::chrono::seconds>(t - start).count();
      if (second < 0) continue;
      if (per_second.size() <= static_cast<size_t>(second)) per_second.resize(second + 1, 0);
      ++per_second[static_cast<size_t>(second)];
    }
    // A whole second only: the last one is cut short by the end.
    if (per_second.size() > 1) per_second.pop_back();
    for (int64_t n : per_second) {
      result.peak_placements_per_second =
          std::max(result.peak_placements_per_second, static_cast<double>(n));
    }
    const double seconds = absl::ToDoubleSeconds(result.measured);
    result.placements_per_second = seconds > 0 ? static_cast<double>(result.placements) / seconds : 0;
    result.gang_placements = sim.gang_placements;
    result.assignments = sim.assignments;
    result.completed = sim.completed_jobs;
    result.queued_left = submitted - static_cast<int64_t>(sim.placed.size());
    std::vector<absl::Duration> latencies;
    for (const auto& [id, at] : probes) {
      auto it = sim.jobs.find(id);
      if (it == sim.jobs.end()) {
        ++result.probes_unassigned;
        continue;
      }
      latencies.push_back(absl::FromChrono(it->second.assigned - at));
    }
    result.probe = Summarize(std::move(latencies));
    result.duplicate_assignments = sim.duplicate_assignments;
    result.reassigned_jobs = sim.reassigned;
    result.stopped_attempts = sim.stopped;
    result.streams_broken = sim.broken;
    if (o.verify) {
      for (const auto& [id, seen] : sim.jobs) {
        if (seen.probe) continue;
        job_ids.push_back(id);
        for (bool assigned : seen.ranks_assigned) {
          if (!assigned) ++result.duplicate_assignments;  // a node rank never assigned
        }
      }
    }
  }
  if (o.verify) {
    if (!all_completed) {
      hang_up(nodes.size());
      return absl::UnavailableError(absl::StrCat(
          "sim-cluster: ", result.completed, " of ", submitted, " jobs completed within ",
          absl::FormatDuration(o.timeout)));
    }
    // droverd stores each end after the node's report: give it a moment.
    result.not_completed = static_cast<int64_t>(submitted) - static_cast<int64_t>(job_ids.size());
    for (const std::string& id : job_ids) {
      if (!AwaitJobState(*jobs_stub, id, v1::JobStatus::COMPLETED, absl::Now() + absl::Seconds(30))
               .ok()) {
        ++result.not_completed;
      }
    }
  }
  hang_up(nodes.size());
  return result;
}

std::string SimClusterResultText(const SimClusterOptions& o, const SimClusterResult& r) {
  auto mib = [](int64_t kib) { return static_cast<double>(kib) / 1024; };
  std::string out = absl::StrFormat(
      "sim-cluster: %d fake nodes (%d cpus, %d MiB, %d gpus each) + %d probe nodes over gRPC, "
      "%d jobs queued (%d%% gangs), run %s-%s each\n",
      r.nodes, o.cpus_per_node, o.memory_mib_per_node, o.gpus_per_node, o.probe_nodes, r.jobs,
      o.gang_percent, absl::FormatDuration(o.min_run), absl::FormatDuration(o.max_run));
  absl::StrAppend(&out, "  load average       before ", r.load_before, ", after ", r.load_after,
                  "\n");
  absl::StrAppendFormat(&out, "  join + hello       %.1f s (%.0f nodes/s)\n",
                        absl::ToDoubleSeconds(r.join),
                        static_cast<double>(r.nodes + o.probe_nodes) /
                            std::max(1e-9, absl::ToDoubleSeconds(r.join)));
  absl::StrAppendFormat(&out, "  queue fill         %.1f s (%.0f jobs/s, arrays of %d)\n",
                        absl::ToDoubleSeconds(r.enqueue),
                        static_cast<double>(r.jobs) / std::max(1e-9, absl::ToDoubleSeconds(r.enqueue)),
                        o.array_chunk);
  absl::StrAppendFormat(&out,
                        "  placements         %d in %.1f s: %.0f /s (best second %.0f), %d gangs, "
                        "%d assignments, %d completed, %d left queued\n",
                        r.placements, absl::ToDoubleSeconds(r.measured), r.placements_per_second,
                        r.peak_placements_per_second, r.gang_placements, r.assignments,
                        r.completed, r.queued_left);
  absl::StrAppend(&out, "  probe submit->assigned ", LatencyText(r.probe),
                  r.probes_unassigned > 0 ? absl::StrCat(" (", r.probes_unassigned, " unassigned)")
                                          : std::string(),
                  "\n");
  if (r.rss_idle_kib > 0) {
    absl::StrAppendFormat(&out,
                          "  droverd RSS        idle %.1f MiB, with nodes %.1f MiB (%.1f KiB/node), "
                          "queued %.1f MiB (%.2f KiB/queued job), end %.1f MiB\n",
                          mib(r.rss_idle_kib), mib(r.rss_nodes_kib),
                          static_cast<double>(r.rss_nodes_kib - r.rss_idle_kib) /
                              static_cast<double>(std::max<int64_t>(1, r.nodes + o.probe_nodes)),
                          mib(r.rss_queued_kib),
                          static_cast<double>(r.rss_queued_kib - r.rss_nodes_kib) /
                              static_cast<double>(std::max<int64_t>(1, r.jobs)),
                          mib(r.rss_end_kib));
    absl::StrAppendFormat(
        &out, "  droverd CPU        %.1f s in %.1f s (%.2f cores): %.1f us per placement\n",
        r.droverd_cpu_seconds, absl::ToDoubleSeconds(r.measured),
        r.droverd_cpu_seconds / std::max(1e-9, absl::ToDoubleSeconds(r.measured)),
        r.placements > 0 ? r.droverd_cpu_seconds * 1e6 / static_cast<double>(r.placements) : 0);
  }
  absl::StrAppendFormat(&out, "  bench CPU          %.1f s (%.2f cores: the fake nodes)\n",
                        r.bench_cpu_seconds,
                        r.bench_cpu_seconds / std::max(1e-9, absl::ToDoubleSeconds(r.measured)));
  absl::StrAppendFormat(&out,
                        "  checks             %d duplicate assignments, %d reassigned jobs, %d "
                        "stops, %d streams broken, %d jobs not COMPLETED%s\n",
                        r.duplicate_assignments, r.reassigned_jobs, r.stopped_attempts,
                        r.streams_broken, r.not_completed, o.verify ? "" : " (not verified)");
  return out;
}

std::string SimClusterResultJson(const SimClusterOptions& o, const SimClusterResult& r) {
  return absl::StrCat(
      "{\"benchmark\":\"sim-cluster\",\"nodes\":", r.nodes, ",\"probe_nodes\":", o.probe_nodes,
      ",\"cpus_per_node\":", o.cpus_per_node, ",\"jobs\":", r.jobs,
      ",\"gang_percent\":", o.gang_percent,
      ",\"join_s\":", absl::StrFormat("%.3f", absl::ToDoubleSeconds(r.join)),
      ",\"enqueue_s\":", absl::StrFormat("%.3f", absl::ToDoubleSeconds(r.enqueue)),
      ",\"measured_s\":", absl::StrFormat("%.3f", absl::ToDoubleSeconds(r.measured)),
      ",\"placements\":", r.placements, ",\"gang_placements\":", r.gang_placements,
      ",\"assignments\":", r.assignments, ",\"completed\":", r.completed,
      ",\"queued_left\":", r.queued_left,
      ",\"placements_per_s\":", absl::StrFormat("%.1f", r.placements_per_second),
      ",\"peak_placements_per_s\":", absl::StrFormat("%.0f", r.peak_placements_per_second),
      ",\"probe\":", LatencyJson(r.probe), ",\"probes_unassigned\":", r.probes_unassigned,
      ",\"rss_kib\":{\"idle\":", r.rss_idle_kib, ",\"nodes\":", r.rss_nodes_kib,
      ",\"queued\":", r.rss_queued_kib, ",\"end\":", r.rss_end_kib, "}",
      ",\"droverd_cpu_s\":", absl::StrFormat("%.2f", r.droverd_cpu_seconds),
      ",\"bench_cpu_s\":", absl::StrFormat("%.2f", r.bench_cpu_seconds),
      ",\"duplicate_assignments\":", r.duplicate_assignments,
      ",\"reassigned_jobs\":", r.reassigned_jobs, ",\"stopped_attempts\":", r.stopped_attempts,
      ",\"streams_broken\":", r.streams_broken, ",\"not_completed\":", r.not_completed,
      ",\"load_before\":", JsonString(r.load_before), ",\"load_after\":", JsonString(r.load_after),
      "}");
}

}  // namespace drover::bench
