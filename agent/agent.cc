#include "agent/agent.h"

#include <arpa/inet.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <optional>
#include <thread>

#include "absl/strings/numbers.h"
#include "common/leader_redirect.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/strings/ascii.h"
#include "agent/attempt_record.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace drover::agent {
namespace {

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

// The local address the kernel picks to reach `target` (HOST:PORT): what other nodes and
// droverd can reach this node on.
std::string LocalAddressToward(const std::string& target) {
  std::string host = target.substr(0, target.rfind(':'));
  std::string port = target.substr(target.rfind(':') + 1);
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* result = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &result) != 0 || result == nullptr) {
    return "127.0.0.1";
  }
  std::string address = "127.0.0.1";
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd >= 0 && connect(fd, result->ai_addr, result->ai_addrlen) == 0) {
    sockaddr_in local{};
    socklen_t length = sizeof local;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) == 0) {
      char text[INET_ADDRSTRLEN];
      if (inet_ntop(AF_INET, &local.sin_addr, text, sizeof text) != nullptr) address = text;
    }
  }
  if (fd >= 0) close(fd);
  freeaddrinfo(result);
  return address;
}

int64_t MemTotalMib() {
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line)) {
    int64_t kib = 0;
    if (line.rfind("MemTotal:", 0) == 0 && absl::SimpleAtoi(absl::StripAsciiWhitespace(line.substr(9, line.size() - 12)), &kib)) {
      return kib / 1024;
    }
  }
  return 0;
}

// The channel to droverd. Keepalive pings (and with them TCP_USER_TIMEOUT on unacknowledged
// writes) notice a dead network within seconds instead of after TCP's minutes of
// retransmissions, and a short reconnect backoff finds droverd again within seconds once
// the network is back, instead of after gRPC's default of up to 2 min: a node droverd
// declared lost must hear soon after healing that its attempts are stale (droverd permits
// these pings, see server/droverd.cc). One connection attempt may take gRPC's default 20 s
// (GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, despite its name): a TLS handshake with a busy
// droverd far away takes more than a second.
std::shared_ptr<grpc::Channel> SchedulerChannel(const std::string& address,
                                                const NodeCertificateFiles& files) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  return grpc::CreateCustomChannel(address, NodeChannelCredentials(files), args);
}

}  // namespace

std::vector<Agent::Droverd> Agent::DroverdChannels(const std::string& scheduler,
                                                   const NodeCertificateFiles& files) {
  absl::StatusOr<std::vector<std::string>> addresses =
      ParseDroverdAddresses("scheduler", scheduler);
  if (!addresses.ok()) addresses = std::vector<std::string>{scheduler};  // checked by the flags
  std::vector<Droverd> droverds;
  for (const std::string& address : *addresses) {
    Droverd d{.address = address, .channel = SchedulerChannel(address, files)};
    d.agents = v1::AgentService::NewStub(d.channel);
    d.blobs = v1::BlobService::NewStub(d.channel);
    droverds.push_back(std::move(d));
  }
  return droverds;
}

std::string Agent::Key(const v1::AttemptRef& a) {
  return absl::StrCat(a.job_id(), "/", a.epoch());
}

absl::StatusOr<v1::NodeInfo> DescribeNode(const std::string& name, const std::string& address,
                                          const std::string& scheduler, double cpus,
                                          int64_t memory_mib,
                                          const std::map<std::string, std::string>& labels,
                                          const GpuInventory& gpus) {
  v1::NodeInfo node;
  node.set_name(name);
  node.add_addresses(address.empty() ? LocalAddressToward(scheduler) : address);
  node.mutable_capacity()->set_cpus(cpus > 0 ? cpus : std::thread::hardware_concurrency());
  node.mutable_capacity()->set_memory_mib(memory_mib > 0 ? memory_mib : MemTotalMib());
  node.mutable_capacity()->set_gpus(static_cast<int32_t>(gpus.gpus.size()));
  for (const NodeGpu& gpu : gpus.gpus) *node.add_gpus() = gpu.gpu;
  for (const auto& [k, v] : labels) (*node.mutable_labels())[k] = v;
  node.set_agent_version(DROVER_VERSION);
  return node;
}

Agent::Agent(AgentOptions options, ContainerRuntime& runtime, const Clock& clock)
    : options_(std::move(options)),
      runtime_(runtime),
      clock_(clock),
      droverds_(DroverdChannels(options_.scheduler, options_.node_certificate)),
      blob_client_([this] { return droverd().blobs.get(); }),
      snapshots_(options_.work_dir + "/snapshots", blob_client_),
      images_({.root = options_.work_dir + "/images", .userns = options_.userns},
              [this](const std::string& digest, const std::string& path) {
                return blob_client_.Download(digest, /*job_id=*/"", path);
              },
              image_tools_),
      gpus_(options_.gpus),
      gpu_sampler_(options_.gpus, options_.metrics_interval, options_.metrics, clock_),
      environments_({.root = options_.work_dir + "/environments",
                     .budget_bytes = options_.environment_cache_bytes,
                     .clock = &clock_},
                    runtime_),
      shipper_([this](v1::AgentMessage message) { return Send(message); }),
      peer_tls_(options_.node_certificate) {
  shipper_.WakeOnChange([this] { WakeShipping(); }, options_.log_poll);
}

Agent::~Agent() {
  Stop();
  shipper_.StopWaking();  // its inotify thread wakes waiter_, which goes before shipper_
}

void Agent::Stop() {
  if (!options_.stop_jobs_on_exit) {
    // Before anything notices the stop: an attempt that is ending must leave its end to the
    // next agent process rather than cut its output short.
    absl::MutexLock lock(&mu_);
    for (auto& [key, attempt] : attempts_) attempt->Detach();
  }
  if (!stopping_.HasBeenNotified()) stopping_.Notify();
  waiter_.Notify();
  absl::MutexLock lock(&write_mu_);
  if (context_ != nullptr) context_->TryCancel();
}

bool Agent::Send(const v1::AgentMessage& message) {
  absl::MutexLock lock(&write_mu_);
  return stream_ != nullptr && stream_->Write(message);
}

absl::Status Agent::Run() {
  Recover();
  DROVER_RETURN_IF_ERROR(StartPeerServer());
  gpu_sampler_.Start();
  Log(LogLevel::kInfo, "peer_listening", {{"endpoint", peer_endpoint_}});
  std::thread shipping([this] { ShippingLoop(); });
  ConnectionLoop();
  shipping.join();
  // Commands other nodes run here end with the attempts below.
  peer_server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  // The attempts' processes keep running for the next agent process, or are stopped.
  // Destroy them outside the lock: they call back into the agent while they end.
  std::map<std::string, std::unique_ptr<Attempt>> attempts;
  {
    absl::MutexLock lock(&mu_);
    attempts.swap(attempts_);
  }
  for (auto& [key, attempt] : attempts) {
    if (options_.stop_jobs_on_exit) {
      attempt->Stop(v1::JobStatus::CAUSE_UNSPECIFIED, absl::Seconds(2), "drover-agent stopped");
    } else {
      attempt->Detach();
    }
  }
  attempts.clear();
  return absl::OkStatus();
}

void Agent::ConnectionLoop() {
  absl::Duration backoff = options_.min_backoff;
  while (!stopping_.HasBeenNotified()) {
    grpc::ClientContext context;
    const Droverd& target = droverd();
    auto stream = target.agents->Connect(&context);
    v1::AgentMessage hello;
    *hello.mutable_hello()->mutable_node() = options_.node;
    hello.mutable_hello()->mutable_node()->set_peer_endpoint(peer_endpoint_);
    {
      absl::MutexLock lock(&mu_);
      for (auto& [key, attempt] : attempts_) {
        *hello.mutable_hello()->add_attempts() = attempt->LastReport();
      }
      for (const auto& [key, ended] : ended_) {
        (void)hello.mutable_hello()->add_attempts()->ParseFromString(ended.report);
      }
    }
    bool connected = false;
    if (stream->Write(hello)) {
      v1::SchedulerMessage message;
      // Only after the welcome do other writers use the stream.
      if (stream->Read(&message) && message.has_welcome()) {
        connected = true;
        backoff = options_.min_backoff;
        shipper_.Reconnected(message.welcome());
        {
          // Ended attempts were just reported again in the hello: kept a while from now.
          absl::MutexLock lock(&mu_);
          for (auto& [key, ended] : ended_) ended.since = clock_.Now();
        }
        {
          absl::MutexLock lock(&write_mu_);
          context_ = &context;
          stream_ = stream.get();
          heartbeat_ = FromProto(message.welcome().heartbeat_interval());
        }
        Log(LogLevel::kInfo, "connected", {{"scheduler", target.address}, {"node", options_.node.name()}});
        if (options_.metrics != nullptr) options_.metrics->connected.With({}).Set(1);
        if (stopping_.HasBeenNotified()) context.TryCancel();
        while (stream->Read(&message)) Handle(message);
        {
          absl::MutexLock lock(&write_mu_);
          context_ = nullptr;
          stream_ = nullptr;
        }
      }
    }
    grpc::Status status = stream->Finish();
    shipper_.Disconnected();
    if (options_.metrics != nullptr) options_.metrics->connected.With({}).Set(0);
    if (stopping_.HasBeenNotified()) break;
    if (droverds_.size() > 1) {
      // Several droverds: the leader a standby named, when it is one of ours (never a host
      // the answer alone names: common/leader_redirect.h), at once; otherwise the next.
      std::optional<size_t> leader = KnownLeader(context.GetServerTrailingMetadata(),
                                                 Addresses());
      size_t next = leader.has_value() ? *leader : (current_.load() + 1) % droverds_.size();
      if (leader.has_value() && *leader != current_.load()) backoff = absl::ZeroDuration();
      current_ = next;
    }
    Log(connected ? LogLevel::kWarning : LogLevel::kInfo, "disconnected",
        {{"scheduler", target.address}, {"error", status.error_message()},
         {"next", droverd().address}, {"retry_in", absl::FormatDuration(backoff)}});
    AwaitScheduler(backoff);
    backoff = std::clamp(backoff * 2, options_.min_backoff, options_.max_backoff);
  }
}

void Agent::AwaitScheduler(absl::Duration limit) {
  // Waits on the channel, not only on `stopping_`: gRPC moves a reconnection (TCP, then a
  // TLS handshake of several round trips) forward only while something drives the channel,
  // and a failed channel fails the next call at once without trying. In slices, so that a
  // stop is heard within a fifth of a second. The whole pause is kept even when connected
  // early: droverd may have refused the hello itself.
  // The pause is the clock's; gRPC's wait takes a deadline in real time, hence the slice is
  // a duration from absl::Now().
  absl::Time deadline = clock_.Now() + limit;
  while (!stopping_.HasBeenNotified() && clock_.Now() < deadline) {
    absl::Duration slice = std::min(deadline - clock_.Now(), absl::Milliseconds(200));
    if (droverd().channel->WaitForConnected(absl::ToChronoTime(absl::Now() + slice))) {
      waiter_.WaitUntil(deadline, [this] { return stopping_.HasBeenNotified(); });
      break;
    }
  }
}

void Agent::WakeShipping() {
  ship_.store(true);
  waiter_.Notify();
}

void Agent::ShippingLoop() {
  // The loop sleeps until something is due: the shipper says there may be output to send
  // (WakeOnChange), an attempt ended, or a timer of its own (the heartbeat, the certificate's
  // check, forgetting ended attempts, the safety poll) comes; not every few milliseconds.
  // Output is polled at once when woken, but at most once per options_.log_poll (a chatty
  // job's writes are shipped in rounds, as before), and at least once per kSafetyPoll while
  // attempts are watched (a folder the job replaced, a write inotify cannot see); never
  // while none is (a Watch wakes the loop). Folders that cannot be watched are polled every
  // log_poll.
  constexpr absl::Duration kSafetyPoll = absl::Seconds(1);
  absl::Time next_heartbeat = clock_.Now();
  absl::Time next_renewal_check = clock_.Now();
  absl::Time next_forget = clock_.Now();
  absl::Time next_poll = clock_.Now();
  absl::Time last_poll = absl::InfinitePast();
  auto stopping = [this] { return stopping_.HasBeenNotified(); };
  while (!stopping()) {
    const bool woken = ship_.exchange(false);
    if (woken || clock_.Now() >= next_poll) {
      shipper_.Poll();
      last_poll = clock_.Now();
      next_poll = !shipper_.Watching()    ? absl::InfiniteFuture()
                  : shipper_.NeedsPolling() ? last_poll + options_.log_poll
                                            : last_poll + kSafetyPoll;
    }
    if (clock_.Now() >= next_renewal_check) {
      // Checked often (the file is small); renewed when a third of its life is left, and
      // tried again at the next check when droverd cannot answer.
      next_renewal_check = clock_.Now() + absl::Seconds(10);
      if (absl::Status s = RenewIfDue(droverd().channel, options_.node.name(), options_.node_certificate,
                                      clock_.Now());
          !s.ok()) {
        Log(LogLevel::kWarning, "node_certificate_renewal_failed", {{"error", s.message()}});
      }
    }
    if (options_.metrics != nullptr) {
      options_.metrics->log_bytes_unacknowledged.With({}).Set(
          static_cast<double>(shipper_.Unacknowledged()));
    }
    absl::Duration interval;
    bool connected;
    {
      absl::MutexLock lock(&write_mu_);
      interval = heartbeat_;
      connected = stream_ != nullptr;
    }
    if (clock_.Now() >= next_heartbeat) {
      v1::AgentMessage heartbeat;
      heartbeat.mutable_heartbeat();
      Send(heartbeat);
      next_heartbeat = clock_.Now() + interval;
    }
    // Attempts that ended leave only their last report behind until droverd says it stored
    // their end (EndsStored); those it never did are forgotten 10 minutes after they ended,
    // while connected (the time counts again from each reconnect, whose hello reports them
    // again).
    std::vector<std::unique_ptr<Attempt>> finished;
    bool any_ended;
    {
      absl::MutexLock lock(&mu_);
      finished = CollectFinished();
      if (connected && clock_.Now() >= next_forget) {
        // Once a second: droverd's EndsStored forgets most of them long before.
        next_forget = clock_.Now() + absl::Seconds(1);
        ForgetEnded(absl::Minutes(10));
      }
      any_ended = !ended_.empty();
    }
    finished.clear();  // joins their threads, which are leaving, without the lock
    absl::Time deadline = std::min({next_heartbeat, next_renewal_check, next_poll});
    if (connected && any_ended) deadline = std::min(deadline, next_forget);
    // A reconnect (the heartbeat's interval may change) wakes it too: see ConnectionLoop.
    if (waiter_.WaitUntil(deadline, [&] { return stopping() || ship_.load(); }) &&
        !stopping()) {
      // Woken: the pace between two polls.
      waiter_.WaitUntil(last_poll + options_.log_poll, stopping);
    }
  }
}

AttemptEnv Agent::MakeAttemptEnv() {
  return AttemptEnv{
      .node_name = options_.node.name(),
      .work_dir = options_.work_dir,
      .clock = &clock_,
      .runtime = &runtime_,
      .logs = &shipper_,
      .blobs = &blob_client_,
      .snapshots = &snapshots_,
      .images = &images_,
      .gpus = &gpus_,
      .gpu_sampler = &gpu_sampler_,
      .environments = &environments_,
      .rsh_binary = options_.rsh_binary,
      .python_dir = options_.python_dir,
      .metrics_interval = options_.metrics_interval,
      .metrics = options_.metrics,
      .datastore_roots = {.allowed = options_.datastore_roots, .refused = {options_.work_dir}},
      .pids_limit = options_.pids_limit,
      .userns = options_.userns,
      .report =
          [this](const v1::AttemptReport& report) {
            v1::AgentMessage out;
            *out.mutable_report() = report;
            Send(out);
          },
      .shutting_down = [this] { return stopping_.HasBeenNotified(); },
      .await_droverd =
          [this](absl::Duration limit) {
            // A gRPC deadline: real time, whatever the clock says.
            return droverd().channel->WaitForConnected(
                absl::ToChronoTime(absl::Now() + limit));
          },
      .ended =
          [this](const v1::AttemptRef& ref) {
            {
              absl::MutexLock lock(&mu_);
              finished_.push_back(Key(ref));
            }
            WakeShipping();  // its thread is joined by the shipping loop
          },
      .connect_peer =
          [this](const ExecPeer& peer) { return peer_tls_.Channel(peer.endpoint, peer.node); },
  };
}

void Agent::Handle(const v1::SchedulerMessage& message) {
  switch (message.kind_case()) {
    case v1::SchedulerMessage::kAssign: {
      const v1::AssignAttempt& assign = message.assign();
      std::string key = Key(assign.attempt());
      absl::MutexLock lock(&mu_);
      if (attempts_.contains(key) || ended_.contains(key)) break;  // a resend of one we had
      Log(LogLevel::kInfo, "attempt_assigned", {{"job", assign.attempt().job_id()}, {"epoch", assign.attempt().epoch()}});
      if (absl::Status saved = SaveAssignment(options_.work_dir, assign); !saved.ok()) {
        // Intent first: an attempt without a record could not be taken over by the next
        // agent process, which would remove its container and folder as leftovers. It is
        // refused instead (droverd retries the job when it allows).
        Log(LogLevel::kWarning, "attempt_record_failed",
            {{"job", assign.attempt().job_id()}, {"error", saved.message()}});
        v1::AgentMessage refused;
        v1::AttemptReport* report = refused.mutable_report();
        *report->mutable_attempt() = assign.attempt();
        report->set_phase(v1::AttemptReport::ENDED);
        report->set_cause(v1::JobStatus::LAUNCH_FAILED);
        report->set_message(absl::StrCat("drover-agent on ", options_.node.name(),
                                         " cannot record the attempt (nothing was started): ",
                                         saved.message()));
        Send(refused);
        break;
      }
      auto attempt = std::make_unique<Attempt>(MakeAttemptEnv(), assign);
      attempt->Begin();
      attempts_[key] = std::move(attempt);
      break;
    }
    case v1::SchedulerMessage::kStart: {
      absl::MutexLock lock(&mu_);
      auto it = attempts_.find(Key(message.start().attempt()));
      if (it != attempts_.end()) it->second->StartProcesses();
      break;
    }
    case v1::SchedulerMessage::kStop: {
      const v1::StopAttempt& stop = message.stop();
      absl::MutexLock lock(&mu_);
      auto it = attempts_.find(Key(stop.attempt()));
      if (it != attempts_.end()) {
        Log(LogLevel::kInfo, "attempt_stop", {{"job", stop.attempt().job_id()},
                                              {"cause", v1::JobStatus::Cause_Name(stop.cause())}});
        it->second->Stop(stop.cause(), FromProto(stop.grace()), stop.message());
      }
      break;
    }
    case v1::SchedulerMessage::kLogAck:
      shipper_.Acknowledged(message.log_ack());
      break;
    case v1::SchedulerMessage::kEndsStored: {
      // droverd no longer needs these ends again: their reports and records go now.
      absl::MutexLock lock(&mu_);
      for (const v1::AttemptRef& ref : message.ends_stored().attempts()) {
        const std::string key = Key(ref);
        if (ended_.erase(key) > 0) {
          RemoveAttemptRecord(options_.work_dir, ref);
        } else if (attempts_.contains(key)) {
          stored_.insert(key);  // its thread is leaving: CollectFinished forgets it
        }
      }
      break;
    }
    default:
      break;
  }
}

}  // namespace drover::agent
