// drover-agent: the Drover node agent. Flags and the config file are read here and only
// here; everything else lives in Agent.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "agent/agent.h"
#include "agent/agent_metrics.h"
#include "agent/runtime/runc_runtime.h"
#include "common/config.h"
#include "common/flags.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/metrics_server.h"

namespace {

constexpr char kSummary[] =
    "The Drover node agent: registers this machine with droverd, runs the job containers\n"
    "droverd assigns (with runc, as root), and streams their logs back. Stops on SIGTERM or\n"
    "SIGINT, leaving the jobs' processes running: the next start takes them over (unless\n"
    "--jobs-on-exit stop). Settings can also come from --config FILE (`key = value`, keys as\n"
    "the flag names).\n"
    "GPUs: those nvidia-smi lists, or those named with --gpu; each job gets its own\n"
    "(docs/gpus.md).\n"
    "\n"
    "Examples:\n"
    "  drover-agent --scheduler head:7070 --node-name gpu-01 --work-dir /var/lib/drover-agent \\\n"
    "      --label pool=gpu\n"
    "  drover-agent ... --gpu 0:GPU-8f6c1a7e:/dev/nvidia0 --gpu 1:GPU-03b1d2c4:/dev/nvidia1";

// A helper program (drover-init, drover-rsh) or the Python module's folder (python) beside
// this binary (build tree or install), else where `make install` puts it.
std::string DefaultHelperPath(const std::string& name) {
  std::error_code error;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", error);
  for (const std::string& candidate :
       {name, "launcher/" + name, "../" + name, "../lib/drover/" + name}) {
    std::filesystem::path path = (self.parent_path() / candidate).lexically_normal();
    if (std::filesystem::exists(path, error)) return path.string();
  }
  return "/usr/local/lib/drover/" + name;
}

std::string HostName() {
  char name[256] = {};
  gethostname(name, sizeof name - 1);
  std::string lower;
  for (char c : std::string(name)) lower.push_back(static_cast<char>(std::tolower(c)));
  return lower.substr(0, lower.find('.'));
}

int Fail(absl::string_view message, int code = 1) {
  std::fprintf(stderr, "drover-agent: %s\n", std::string(message).c_str());
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  std::string scheduler = "127.0.0.1:7070";
  std::string node_name = HostName();
  std::string work_dir = "/var/lib/drover-agent";
  std::string address;
  std::vector<std::string> labels;
  double cpus = 0;
  std::string memory;
  std::string runc = drover::agent::RuncOptions().runc_path;
  std::string init = DefaultHelperPath("drover-init");
  std::string rsh = DefaultHelperPath("drover-rsh");
  std::string python_dir = DefaultHelperPath("python");
  std::string metrics_interval = "10s";
  std::string peer_listen;
  std::string metrics_listen;
  std::vector<std::string> gpu_inventory;
  bool stop_jobs_on_exit = false;
  int64_t gpu_count = -1;
  std::string nvidia_smi = drover::agent::GpuDiscoveryOptions().nvidia_smi;
  std::string config_path;
  std::string log_level = "info";
  std::string environment_cache_size = "20Gi";

  drover::FlagSet flags("drover-agent [flags]", kSummary);
  flags.String("scheduler", &scheduler, "droverd's address", "HOST:PORT");
  flags.String("node-name", &node_name, "This node's name in the cluster ([a-z0-9-])", "NAME");
  flags.String("work-dir", &work_dir, "Folder for job folders, caches and runc state", "DIR");
  flags.String("address", &address,
               "Address other nodes reach this one on (default: the one facing droverd)", "IP");
  flags.Repeated("label", &labels, "Node label for compute targets", "KEY=VALUE");
  flags.Double("cpus", &cpus, "CPU cores to offer (default: all)", "N");
  flags.String("memory", &memory, "Memory to offer, e.g. 64Gi (default: all)", "SIZE");
  flags.String("runc", &runc, "The runc binary", "PATH");
  flags.String("init", &init, "drover-init, PID 1 of job containers", "PATH");
  flags.String("rsh", &rsh, "drover-rsh, MPI's remote-shell agent in job containers", "PATH");
  flags.String("python-dir", &python_dir,
               "Folder holding the drover Python module (run.log), bound into every job "
               "container; empty: none",
               "DIR");
  flags.String("metrics-interval", &metrics_interval,
               "How often to sample each job container's CPU, memory and GPUs, e.g. 10s or 500ms",
               "DURATION");
  flags.String("peer-listen", &peer_listen,
               "Where other nodes' agents reach this one for MPI launches (default: --address "
               "with a port the kernel picks)",
               "HOST:PORT");
  flags.String("metrics-listen", &metrics_listen,
               "Serve Prometheus metrics (GET /metrics) on this address; empty: not served",
               "HOST:PORT");
  flags.Repeated("gpu", &gpu_inventory,
                 "A GPU to offer, instead of what nvidia-smi lists: its index, UUID, device "
                 "node and optional name (docs/gpus.md)",
                 "INDEX:UUID:DEVICE[:NAME]");
  flags.Custom(
      "gpus",
      [&gpu_count](absl::string_view value) {
        if (!absl::SimpleAtoi(value, &gpu_count) || gpu_count < 0) {
          return absl::InvalidArgumentError(
              absl::StrCat("--gpus: '", value, "' is not a number of GPUs (0 or more)"));
        }
        return absl::OkStatus();
      },
      "GPUs to offer, the first N by index; 0: none", "N", "all");
  flags.String("nvidia-smi", &nvidia_smi,
               "nvidia-smi, which lists the GPUs when there is no --gpu (absent: no GPUs) and "
               "samples their use every --metrics-interval",
               "PATH");
  flags.String("environment-cache-size", &environment_cache_size,
               "Disk budget of the cached pip/conda job environments under --work-dir/"
               "environments; the least recently used are deleted beyond it",
               "SIZE");
  flags.Custom(
      "jobs-on-exit",
      [&stop_jobs_on_exit](absl::string_view value) {
        if (value != "keep" && value != "stop") {
          return absl::InvalidArgumentError(
              absl::StrCat("--jobs-on-exit: '", value, "' is neither keep nor stop"));
        }
        stop_jobs_on_exit = value == "stop";
        return absl::OkStatus();
      },
      "What stopping the agent does to the jobs running on the node: keep (their processes "
      "run on and the next start of the agent takes them over; restart within droverd's "
      "node lease) or stop (SIGTERM, then SIGKILL after 2 s: a node taken out of service)",
      "keep|stop", "keep");
  flags.String("config", &config_path, "Read settings from this file", "FILE");
  flags.String("log-level", &log_level, "debug, info, warning or error", "LEVEL");

  std::vector<std::string> args(argv + 1, argv + argc);
  std::vector<std::string> positional;
  if (absl::Status s = flags.Parse(args, &positional); !s.ok()) return Fail(s.message(), 2);
  if (flags.help_requested()) {
    std::fputs(flags.Help().c_str(), stdout);
    return 0;
  }
  if (!positional.empty()) return Fail(absl::StrCat("unexpected argument '", positional[0], "'; see --help"), 2);
  if (!config_path.empty()) {
    if (absl::Status s = drover::ApplyConfigFile(config_path, &flags); !s.ok()) return Fail(s.message(), 2);
  }
  absl::StatusOr<drover::LogLevel> level = drover::ParseLogLevel(log_level);
  if (!level.ok()) return Fail(absl::StrCat("--log-level: ", level.status().message()), 2);
  drover::SetLogLevel(*level);
  int64_t memory_mib = 0;
  if (!memory.empty()) {
    if (absl::Status s = drover::ParseMib(memory, &memory_mib); !s.ok()) {
      return Fail(absl::StrCat("--memory: ", s.message()), 2);
    }
  }
  absl::Duration sample_every;
  if (!absl::ParseDuration(metrics_interval, &sample_every) ||
      sample_every < absl::Milliseconds(100)) {
    return Fail(absl::StrCat("--metrics-interval: '", metrics_interval,
                             "' is not a duration of at least 100ms; for example 10s"),
                2);
  }
  std::error_code missing;
  if (!python_dir.empty() &&
      !std::filesystem::exists(python_dir + "/drover/__init__.py", missing)) {
    return Fail(absl::StrCat("--python-dir '", python_dir,
                             "' holds no drover/__init__.py (build or install the drover_python "
                             "target, or pass --python-dir '' to give jobs no module)"),
                2);
  }
  int64_t environment_cache_mib = 0;
  if (absl::Status s = drover::ParseMib(environment_cache_size, &environment_cache_mib); !s.ok()) {
    return Fail(absl::StrCat("--environment-cache-size: ", s.message()), 2);
  }
  std::map<std::string, std::string> label_map;
  for (const std::string& label : labels) {
    size_t eq = label.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Fail(absl::StrCat("--label: '", label, "' is not KEY=VALUE"), 2);
    }
    label_map[label.substr(0, eq)] = label.substr(eq + 1);
  }

  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  std::error_code error;
  std::filesystem::create_directories(work_dir, error);
  if (error) return Fail(absl::StrCat("cannot create --work-dir '", work_dir, "': ", error.message()));
  absl::StatusOr<std::unique_ptr<drover::agent::RuncRuntime>> runtime =
      drover::agent::RuncRuntime::Open(
          {.runc_path = runc, .root_dir = work_dir + "/runc", .init_binary = init});
  if (!runtime.ok()) return Fail(runtime.status().message());
  absl::StatusOr<drover::agent::GpuInventory> gpus = drover::agent::DiscoverGpus(
      {.inventory = gpu_inventory, .count = gpu_count, .nvidia_smi = nvidia_smi});
  if (!gpus.ok()) {
    return Fail(gpus.status().message(), absl::IsInvalidArgument(gpus.status()) ? 2 : 1);
  }
  absl::StatusOr<drover::v1::NodeInfo> node = drover::agent::DescribeNode(
      node_name, address, scheduler, cpus, memory_mib, label_map, *gpus);
  if (!node.ok()) return Fail(node.status().message());
  if (peer_listen.empty()) peer_listen = node->addresses(0) + ":0";
  if (!std::filesystem::exists(rsh, error)) {
    return Fail(absl::StrCat("--rsh '", rsh, "' does not exist (build the drover-rsh target)"));
  }
  drover::MetricsRegistry registry;
  drover::agent::AgentMetrics metrics(registry);
  std::unique_ptr<drover::MetricsServer> metrics_server;
  if (!metrics_listen.empty()) {
    absl::StatusOr<std::unique_ptr<drover::MetricsServer>> started = drover::MetricsServer::Start(
        metrics_listen, "metrics-listen", [&registry] { return registry.Render(); });
    if (!started.ok()) return Fail(started.status().message(), 2);
    metrics_server = *std::move(started);
  }
  drover::agent::Agent agent({.scheduler = scheduler,
                              .work_dir = work_dir,
                              .node = *node,
                              .peer_listen = peer_listen,
                              .rsh_binary = rsh,
                              .python_dir = python_dir,
                              .metrics_interval = sample_every,
                              .metrics = &metrics,
                              .gpus = *std::move(gpus),
                              .environment_cache_bytes = environment_cache_mib << 20,
                              .stop_jobs_on_exit = stop_jobs_on_exit},
                             **runtime);
  drover::Log(drover::LogLevel::kInfo, "agent_started",
              {{"node", node->name()}, {"address", node->addresses(0)}, {"scheduler", scheduler},
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
