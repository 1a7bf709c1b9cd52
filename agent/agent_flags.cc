#include "agent/agent_flags.h"

#include <unistd.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/gpus.h"
#include "agent/runtime/runc_runtime.h"
#include "common/config.h"
#include "common/datastore_policy.h"
#include "common/flags.h"
#include "common/leader_redirect.h"
#include "common/safe_open.h"
#include "common/status_macros.h"

namespace drover::agent {
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
    "Identity: the first start joins the cluster with a one-time token from\n"
    "'drover node token create' (--join-file keeps it out of ps); the node certificate it\n"
    "gets is kept in --work-dir (node.crt, node.key, 0600) and renewed, so later starts need\n"
    "no token (docs/security.md).\n"
    "\n"
    "Examples:\n"
    "  drover-agent --scheduler head:7070 --node-name gpu-01 --work-dir /var/lib/drover-agent \\\n"
    "      --label pool=gpu --join-file /etc/drover/join-token\n"
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

}  // namespace

absl::StatusOr<AgentSettings> ParseAgentFlags(const std::vector<std::string>& args) {
  AgentSettings s;
  s.scheduler = "127.0.0.1:7070";
  s.node_name = HostName();
  s.work_dir = "/var/lib/drover-agent";
  s.runc = RuncOptions().runc_path;
  s.init = DefaultHelperPath("drover-init");
  s.rsh = DefaultHelperPath("drover-rsh");
  s.python_dir = DefaultHelperPath("python");
  s.nvidia_smi = GpuDiscoveryOptions().nvidia_smi;
  std::vector<std::string> labels;
  std::string memory;
  std::string metrics_interval = "10s";
  std::string config_path;
  std::string log_level = "info";
  std::string environment_cache_size = "20Gi";

  FlagSet flags("drover-agent [flags]", kSummary);
  flags.String("scheduler", &s.scheduler,
               "droverd's address; several droverds on one database (one leads, the others "
               "stand by): all their addresses, comma-separated, and the agent follows the "
               "one that leads among them",
               "HOST:PORT[,HOST:PORT...]");
  std::string ca = "/etc/drover/ca.crt";
  flags.String("ca", &ca,
               "droverd's CA certificate: droverd writes it to <state-dir>/tls/ca.crt; copy it "
               "to every node",
               "FILE");
  std::string join_file;
  flags.String("join", &s.join_token,
               "Join the cluster with this one-time token (from 'drover node token create') "
               "when there is no node certificate yet; visible in ps: prefer --join-file",
               "TOKEN");
  flags.String("join-file", &join_file, "Read the join token from this file", "FILE");
  flags.String("node-cert", &s.node_cert_file,
               "Your own node certificate (PEM, with --node-key): CN NAME and the URI SAN "
               "drover-node://NAME, from droverd's CA; the agent neither joins nor renews then "
               "(default: <work-dir>/node.crt, from --join)",
               "FILE");
  flags.String("node-key", &s.node_key_file, "The key of --node-cert (PEM)", "FILE");
  flags.String("node-name", &s.node_name, "This node's name in the cluster ([a-z0-9-])", "NAME");
  flags.String("work-dir", &s.work_dir, "Folder for job folders, caches and runc state", "DIR");
  flags.String("address", &s.address,
               "Address other nodes reach this one on (default: the one facing droverd)", "IP");
  flags.Repeated("label", &labels, "Node label for compute targets", "KEY=VALUE");
  flags.Double("cpus", &s.cpus, "CPU cores to offer (default: all)", "N");
  flags.String("memory", &memory, "Memory to offer, e.g. 64Gi (default: all)", "SIZE");
  flags.String("runc", &s.runc,
               "The OCI runtime: auto (the default: crun where it is installed and can apply "
               "jobs' limits on this node's cgroups, about 0.4 of runc's CPU per container "
               "start; runc otherwise), or runc or crun (1.4.4 or later), a path or a name in "
               "PATH",
               "PATH");
  flags.String("init", &s.init, "drover-init, PID 1 of job containers", "PATH");
  flags.String("rsh", &s.rsh, "drover-rsh, MPI's remote-shell agent in job containers", "PATH");
  flags.String("python-dir", &s.python_dir,
               "Folder holding the drover Python module (run.log), bound into every job "
               "container; empty: none",
               "DIR");
  flags.String("metrics-interval", &metrics_interval,
               "How often to sample each job container's CPU, memory and GPUs, e.g. 10s or 500ms",
               "DURATION");
  flags.String("peer-listen", &s.peer_listen,
               "Where other nodes' agents reach this one for MPI launches (default: --address "
               "with a port the kernel picks)",
               "HOST:PORT");
  flags.String("metrics-listen", &s.metrics_listen,
               "Serve Prometheus metrics (GET /metrics) on this address; empty: not served",
               "HOST:PORT");
  flags.Repeated("gpu", &s.gpu_inventory,
                 "A GPU to offer, instead of what nvidia-smi lists: its index, UUID, device "
                 "node and optional name (docs/gpus.md)",
                 "INDEX:UUID:DEVICE[:NAME]");
  flags.Custom(
      "gpus",
      [&s](absl::string_view value) {
        if (!absl::SimpleAtoi(value, &s.gpu_count) || s.gpu_count < 0) {
          return absl::InvalidArgumentError(
              absl::StrCat("--gpus: '", value, "' is not a number of GPUs (0 or more)"));
        }
        return absl::OkStatus();
      },
      "GPUs to offer, the first N by index; 0: none", "N", "all");
  flags.String("nvidia-smi", &s.nvidia_smi,
               "nvidia-smi, which lists the GPUs when there is no --gpu (absent: no GPUs) and "
               "samples their use every --metrics-interval",
               "PATH");
  flags.String("environment-cache-size", &environment_cache_size,
               "Disk budget of the cached pip/conda job environments under --work-dir/"
               "environments; the least recently used are deleted beyond it",
               "SIZE");
  flags.Custom(
      "jobs-on-exit",
      [&s](absl::string_view value) {
        if (value != "keep" && value != "stop") {
          return absl::InvalidArgumentError(
              absl::StrCat("--jobs-on-exit: '", value, "' is neither keep nor stop"));
        }
        s.stop_jobs_on_exit = value == "stop";
        return absl::OkStatus();
      },
      "What stopping the agent does to the jobs running on the node: keep (their processes "
      "run on and the next start of the agent takes them over; restart within droverd's "
      "node lease) or stop (SIGTERM, then SIGKILL after 2 s: a node taken out of service)",
      "keep|stop", "keep");
  flags.Repeated("datastore-root", &s.datastore_roots,
                 "A folder HOSTPATH datastores may be in (repeatable); without one no HOSTPATH "
                 "datastore is bound or copied on this node. The node's system folders and "
                 "--work-dir are refused even below a root (docs/datastores.md)",
                 "DIR");
  flags.Bool("allow-unpatched-runc", &s.allow_unpatched_runc,
             "Start even when runc looks unpatched for CVE-2024-21626 (for a distribution "
             "that backported the fix under a version the agent does not know)");
  flags.Custom(
      "userns-range",
      [&s](absl::string_view value) {
        if (value == "none") {
          s.userns_host_id = 0;
          s.userns_size = 0;
          return absl::OkStatus();
        }
        std::pair<absl::string_view, absl::string_view> parts = absl::StrSplit(value, ':');
        uint32_t id = 0;
        uint32_t size = 0;
        if (!absl::SimpleAtoi(parts.first, &id) || !absl::SimpleAtoi(parts.second, &size) ||
            id == 0 || size == 0 || uint64_t{id} + size > uint64_t{0xffffffff}) {
          return absl::InvalidArgumentError(absl::StrCat(
              "--userns-range: '", value,
              "' is not HOST_ID:SIZE with HOST_ID above 0 (for example 100000:65536, or the "
              "node's /etc/subuid entry for drover), or none"));
        }
        s.userns_host_id = id;
        s.userns_size = size;
        return absl::OkStatus();
      },
      "Host uids and gids that job containers' ids 0..SIZE-1 map to (a user namespace: the "
      "job's root is host uid HOST_ID, which owns nothing on the node); one range for every "
      "container of this agent; give no other user these ids. 'none': no user namespace, "
      "the job's root is the node's root (docs/containers.md)",
      "HOST_ID:SIZE|none", "100000:65536");
  flags.Int("pids-limit", &s.pids_limit,
            "Most processes and threads each job container may have at once (its pids cgroup); "
            "a fork bomb stops there. 0: no limit",
            "N");
  flags.String("config", &config_path, "Read settings from this file", "FILE");
  flags.String("log-level", &log_level, "debug, info, warning or error", "LEVEL");

  std::vector<std::string> positional;
  DROVER_RETURN_IF_ERROR(flags.Parse(args, &positional));
  if (flags.help_requested()) {
    s.help = true;
    s.help_text = flags.Help();
    return s;
  }
  if (!positional.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unexpected argument '", positional[0], "'; see --help"));
  }
  if (!config_path.empty()) DROVER_RETURN_IF_ERROR(ApplyConfigFile(config_path, &flags));
  absl::StatusOr<LogLevel> level = ParseLogLevel(log_level);
  if (!level.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--log-level: ", level.status().message()));
  }
  s.log_level = *level;
  DROVER_RETURN_IF_ERROR(ParseDroverdAddresses("scheduler", s.scheduler).status());
  if (!memory.empty()) {
    if (absl::Status bad = ParseMib(memory, &s.memory_mib); !bad.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--memory: ", bad.message()));
    }
  }
  if (!absl::ParseDuration(metrics_interval, &s.metrics_interval) ||
      s.metrics_interval < absl::Milliseconds(100)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--metrics-interval: '", metrics_interval,
        "' is not a duration of at least 100ms; for example 10s"));
  }
  std::error_code missing;
  if (!s.python_dir.empty() &&
      !std::filesystem::exists(s.python_dir + "/drover/__init__.py", missing)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--python-dir '", s.python_dir,
        "' holds no drover/__init__.py (build or install the drover_python target, or pass "
        "--python-dir '' to give jobs no module)"));
  }
  int64_t environment_cache_mib = 0;
  if (absl::Status bad = ParseMib(environment_cache_size, &environment_cache_mib); !bad.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--environment-cache-size: ", bad.message()));
  }
  s.environment_cache_bytes = environment_cache_mib << 20;
  if (s.pids_limit < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--pids-limit: ", s.pids_limit, " is negative; use 0 (no limit) or a count such as 4096"));
  }
  for (const std::string& root : s.datastore_roots) {
    DROVER_RETURN_IF_ERROR(CheckDatastoreRoot("--datastore-root", root));
  }
  for (const std::string& label : labels) {
    size_t eq = label.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(absl::StrCat("--label: '", label, "' is not KEY=VALUE"));
    }
    s.labels[label.substr(0, eq)] = label.substr(eq + 1);
  }
  if (s.node_cert_file.empty() != s.node_key_file.empty()) {
    return absl::InvalidArgumentError("--node-cert and --node-key go together: give both, or "
                                      "neither for the agent's own certificate from --join");
  }
  if (s.node_cert_file.empty()) {
    s.node_cert_file = s.work_dir + "/node.crt";
    s.node_key_file = s.work_dir + "/node.key";
  } else {
    s.node_cert_managed = false;
  }
  if (!join_file.empty()) {
    if (!s.join_token.empty()) {
      return absl::InvalidArgumentError("--join and --join-file: give one of them");
    }
    // A regular file of a line: a FIFO is not waited on, a huge file not read.
    absl::StatusOr<std::string> text = ReadSmallFile(join_file, 4096);
    if (!text.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--join-file: ", text.status().message(),
          "; give the file 'drover node token create' wrote"));
    }
    s.join_token = std::string(absl::StripAsciiWhitespace(*text));
  }
  s.ca_file = ca;
  {
    std::ifstream in(ca);
    std::stringstream text;
    if (in) text << in.rdbuf();
    s.ca_pem = text.str();
    if (s.ca_pem.find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--ca: cannot read a certificate from '", ca,
          "'; droverd's CA certificate is in its <state-dir>/tls/ca.crt: copy it to this node"));
    }
  }
  return s;
}

}  // namespace drover::agent
