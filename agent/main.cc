// drover-agent: the Drover node agent. Reads its settings (agent_flags.h), opens the runc
// runtime, finds the GPUs, describes the node and runs the Agent until SIGTERM or SIGINT.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/agent.h"
#include "agent/agent_flags.h"
#include "agent/agent_metrics.h"
#include "agent/runtime/runc_runtime.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/metrics_server.h"

namespace {

int Fail(absl::string_view message, int code = 1) {
  std::fprintf(stderr, "drover-agent: %s\n", std::string(message).c_str());
  return code;
}

}  // namespace

int main(int argc, char** argv) {
#ifdef NDEBUG
  // Debian builds Abseil without NDEBUG, which turns on Mutex's deadlock detection: a lock
  // graph updated on every lock taken (gRPC's included), about 2 % of droverd's CPU per job
  // (docs/benchmarks.md, "Per-job CPU on the node"). Debug builds, which the tests run,
  // keep it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
#endif
  absl::StatusOr<drover::agent::AgentSettings> settings =
      drover::agent::ParseAgentFlags(std::vector<std::string>(argv + 1, argv + argc));
  if (!settings.ok()) return Fail(settings.status().message(), 2);
  const drover::agent::AgentSettings& s = *settings;
  if (s.help) {
    std::fputs(s.help_text.c_str(), stdout);
    return 0;
  }
  drover::SetLogLevel(s.log_level);

  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  std::error_code error;
  std::filesystem::create_directories(s.work_dir, error);
  if (error) return Fail(absl::StrCat("cannot create --work-dir '", s.work_dir, "': ", error.message()));
  absl::StatusOr<std::unique_ptr<drover::agent::RuncRuntime>> runtime =
      drover::agent::RuncRuntime::Open(
          {.runc_path = s.runc,
           .root_dir = s.work_dir + "/runc",
           .skeleton_dir = s.work_dir + "/skeletons",
           .init_binary = s.init,
           .allow_unpatched_runc = s.allow_unpatched_runc,
           .userns = {.host_id = s.userns_host_id, .size = s.userns_size}});
  if (!runtime.ok()) return Fail(runtime.status().message());
  absl::StatusOr<drover::agent::GpuInventory> gpus = drover::agent::DiscoverGpus(
      {.inventory = s.gpu_inventory, .count = s.gpu_count, .nvidia_smi = s.nvidia_smi});
  if (!gpus.ok()) {
    return Fail(gpus.status().message(), absl::IsInvalidArgument(gpus.status()) ? 2 : 1);
  }
  absl::StatusOr<drover::v1::NodeInfo> node = drover::agent::DescribeNode(
      s.node_name, s.address, s.scheduler.substr(0, s.scheduler.find(',')), s.cpus, s.memory_mib, s.labels, *gpus);
  if (!node.ok()) return Fail(node.status().message());
  node->set_container_runtime((*runtime)->Description());
  if (!std::filesystem::exists(s.rsh, error)) {
    return Fail(absl::StrCat("--rsh '", s.rsh, "' does not exist (build the drover-rsh target)"));
  }
  const drover::agent::NodeCertificateFiles certificate{.certificate_file = s.node_cert_file,
                                                        .key_file = s.node_key_file,
                                                        .ca_file = s.ca_file,
                                                        .managed = s.node_cert_managed};
  {
    // Several droverds: joining is a call to the one that leads; a standby answers
    // UNAVAILABLE at once, so each is tried in turn.
    absl::Status joined;
    for (absl::string_view scheduler : absl::StrSplit(s.scheduler, ',')) {
      joined = drover::agent::EnsureNodeCertificate(std::string(scheduler), s.ca_pem, s.node_name,
                                                    certificate, s.join_token,
                                                    drover::RealClock::Get());
      if (joined.ok() || !absl::IsUnavailable(joined)) break;
    }
    if (!joined.ok()) return Fail(joined.message());
  }
  drover::MetricsRegistry registry;
  drover::agent::AgentMetrics metrics(registry);
  std::unique_ptr<drover::MetricsServer> metrics_server;
  if (!s.metrics_listen.empty()) {
    absl::StatusOr<std::unique_ptr<drover::MetricsServer>> started = drover::MetricsServer::Start(
        s.metrics_listen, "metrics-listen", [&registry] { return registry.Render(); });
    if (!started.ok()) return Fail(started.status().message(), 2);
    metrics_server = *std::move(started);
  }
  drover::agent::Agent agent(
      {.scheduler = s.scheduler,
       .ca_pem = s.ca_pem,
       .node_certificate = certificate,
       .work_dir = s.work_dir,
       .node = *node,
       .peer_listen = s.peer_listen.empty() ? node->addresses(0) + ":0" : s.peer_listen,
       .rsh_binary = s.rsh,
       .python_dir = s.python_dir,
       .metrics_interval = s.metrics_interval,
       .metrics = &metrics,
       .gpus = *std::move(gpus),
       .environment_cache_bytes = s.environment_cache_bytes,
       .stop_jobs_on_exit = s.stop_jobs_on_exit,
       .datastore_roots = s.datastore_roots,
       .pids_limit = s.pids_limit,
       .userns = {.host_id = s.userns_host_id, .size = s.userns_size}},
                             **runtime, drover::RealClock::Get());
  drover::Log(drover::LogLevel::kInfo, "agent_started",
              {{"node", node->name()}, {"address", node->addresses(0)}, {"scheduler", s.scheduler},
               {"cpus", node->capacity().cpus()}, {"memory_mib", node->capacity().memory_mib()},
               {"metrics", metrics_server == nullptr ? "" : metrics_server->endpoint()},
               {"gpus", node->capacity().gpus()},
               {"pid", getpid()}});
  std::thread signals([&agent, &stop_signals] {
    int received = 0;
    sigwait(&stop_signals, &received);
    drover::Log(drover::LogLevel::kInfo, "agent_stopping", {{"signal", strsignal(received)}});
    agent.Stop();
  });
  if (absl::Status s = agent.Run(); !s.ok()) {
    signals.detach();  // still in sigwait; the process ends here
    return Fail(s.message());
  }
  // Run() returns only after Stop(), which the signal thread called.
  signals.join();
  drover::Log(drover::LogLevel::kInfo, "agent_stopped");
  return 0;
}
