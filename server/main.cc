// droverd: the Drover scheduler daemon. Flags and the config file are read here and only
// here; everything else lives in Droverd.
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/config.h"
#include "common/datastore_policy.h"
#include "common/flags.h"
#include "common/log.h"
#include "server/droverd.h"
#include "server/pip_settings.h"
#include "server/state_dir.h"

namespace {

constexpr char kSummary[] =
    "The Drover scheduler: takes training jobs over gRPC, keeps them durably in SQLite under\n"
    "--state-dir and places them on node agents. Stops gracefully on SIGTERM or SIGINT.\n"
    "Settings can also come from --config FILE (`key = value` lines, keys as the flag names);\n"
    "flags on the command line win. Every call is over TLS: at first start droverd makes its\n"
    "own cluster CA in <state-dir>/tls/; clients and agents trust <state-dir>/tls/ca.crt\n"
    "(drover --ca, drover-agent --ca). Calls carry user tokens (drover user create); root on\n"
    "this host is admin over <state-dir>/admin.sock (drover --server unix:PATH).\n"
    "\n"
    "Example:\n"
    "  droverd --listen 0.0.0.0:7070 --state-dir /var/lib/drover";

// Writes `text` to `path` atomically (temporary file, then rename), so readers never see a
// half-written address.
bool WriteFileAtomically(const std::string& path, const std::string& text) {
  std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary, std::ios::trunc);
    if (!(out << text) || !out.flush()) return false;
  }
  std::error_code error;
  std::filesystem::rename(temporary, path, error);
  return !error;
}

// Every job's logs, every client's connection and the database take descriptors: use all the
// hard limit allows (systemd's default soft limit is 1024).
void RaiseOpenFileLimit() {
  struct rlimit limit {};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
  rlim_t was = limit.rlim_cur;
  limit.rlim_cur = limit.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &limit) == 0) {
    drover::Log(drover::LogLevel::kDebug, "open_file_limit_raised",
                {{"from", static_cast<int64_t>(was)}, {"to", static_cast<int64_t>(limit.rlim_max)}});
  }
}

// Parses flag --`name`'s value `text` as a duration that is not negative.
absl::Status ParseDurationFlag(absl::string_view name, const std::string& text,
                               absl::string_view example, absl::Duration* out) {
  if (!absl::ParseDuration(text, out) || *out < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("--", name, ": '", text,
                                                   "' is not a duration; write it like ",
                                                   example));
  }
  return absl::OkStatus();
}

int Fail(const absl::Status& status) {
  drover::Log(drover::LogLevel::kError, "droverd_failed", {{"error", status.message()}});
  std::fprintf(stderr, "droverd: %s\n", std::string(status.message()).c_str());
  return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  drover::server::DroverdOptions options;
  std::string config_path;
  std::string address_file;
  std::string log_level = "info";
  std::string shutdown_grace = "10s";
  std::string launch_timeout = "15m";
  std::string heartbeat_interval = "2s";
  std::string node_lease = "15s";
  std::string node_cert_validity = "720h";
  std::string audit_retention = "2160h";
  // Retention (docs/operations.md#retention).
  std::string log_retention = "720h";
  std::string snapshot_retention = "720h";
  std::string outputs_retention = "2160h";
  std::string upload_grace = "24h";
  std::string gc_interval = "1h";
  drover::server::PipFlags pip;
  std::vector<std::string> datastore_roots;
  std::string bootstrap_token_file;

  drover::FlagSet flags("droverd [flags]", kSummary);
  flags.String("listen", &options.listen, "Address to serve the gRPC API on", "HOST:PORT");
  flags.String("state-dir", &options.state_dir, "Folder for droverd's durable state", "DIR");
  flags.String("config", &config_path, "Read settings from this file", "FILE");
  flags.String("address-file", &address_file,
               "Write the bound address here once listening (for port 0)", "FILE");
  flags.String("log-level", &log_level, "debug, info, warning or error", "LEVEL");
  flags.String("metrics-listen", &options.metrics_listen,
               "Serve Prometheus metrics (GET /metrics) on this address; empty: not served",
               "HOST:PORT");
  flags.String("shutdown-grace", &shutdown_grace,
               "How long a stop lets accepted calls finish", "DURATION");
  flags.String("launch-timeout", &launch_timeout,
               "How long an attempt may wait for all its nodes to be ready before it fails "
               "(LAUNCH_FAILED); 0 waits forever",
               "DURATION");
  // Lost nodes (docs/operations.md, "Lost nodes").
  flags.String("heartbeat-interval", &heartbeat_interval,
               "How often agents send a heartbeat", "DURATION");
  flags.String("node-lease", &node_lease,
               "How long a silent node keeps its attempts: after this without a message it is "
               "DOWN and its attempts end NODE_LOST (retried when max_retries allows); at least "
               "3 heartbeat intervals",
               "DURATION");
  flags.Double("node-loss-pause-fraction", &options.core.node_loss_pause_fraction,
               "When more than this fraction of the nodes (at least 3) is silent at once, "
               "lost nodes keep their attempts until enough are back; 0 never pauses",
               "FRACTION");
  // TLS (docs/security.md): droverd's own cluster CA by default.
  flags.String("tls-cert", &options.tls.certificate_file,
               "Your own server certificate (PEM) instead of one from droverd's cluster CA; "
               "with --tls-key and --tls-ca",
               "FILE");
  flags.String("tls-key", &options.tls.key_file, "The key of --tls-cert (PEM)", "FILE");
  flags.String("tls-ca", &options.tls.ca_file,
               "The CA certificate clients and agents trust, with --tls-cert", "FILE");
  flags.Repeated("tls-san", &options.tls.extra_names,
                 "Another host name or address clients reach droverd by, for the server "
                 "certificate droverd issues itself (localhost, this host's name and the "
                 "--listen address are always in it)",
                 "NAME|IP");
  // Users and the local admin socket (docs/security.md).
  flags.String("secrets-key", &options.secrets_key,
               "File with the key that seals datastore credentials and secret job environment "
               "values in the database (made there, 0600, when missing; default "
               "<state-dir>/secrets.key). Keep it apart from copies of the database",
               "FILE");
  flags.String("admin-socket", &options.admin_socket,
               "Unix socket for administration without a token (mode 0600: only droverd's "
               "user, typically root, can use it: drover --server unix:PATH user create ...); "
               "'none': no socket",
               "PATH");
  flags.String("bootstrap-admin-token-file", &bootstrap_token_file,
               "For automation and tests: the user 'bootstrap-admin' (role admin) gets the "
               "token in this file (one line, drv_...); keep the file 0600",
               "FILE");
  flags.String("audit-retention", &audit_retention,
               "How long droverd keeps audit records of changing calls (drover audit), e.g. "
               "2160h (90 days); at least 1h",
               "DURATION");
  flags.Int("audit-max-records", &options.audit_max_records,
            "Most audit records kept; the oldest go first (at least 1000)", "N");
  flags.String("node-cert-validity", &node_cert_validity,
               "How long the node certificates droverd issues at a join or renewal are valid "
               "(agents renew when a third is left), e.g. 720h; at least 1m",
               "DURATION");
  // How agents install jobs' pip_packages (docs/environments.md); part of every
  // environment's cache key.
  flags.String("pip-index-url", &pip.index_url,
               "Package index for jobs' pip_packages (pip --index-url; default: PyPI)", "URL");
  flags.Repeated("pip-extra-index-url", &pip.extra_index_urls,
                 "Another package index (pip --extra-index-url)", "URL");
  flags.Repeated("pip-find-links", &pip.find_links,
                 "A folder of wheels that exists on every node, or a URL (pip --find-links)",
                 "DIR|URL");
  flags.Repeated("pip-trusted-host", &pip.trusted_hosts,
                 "A host pip may reach without valid HTTPS (pip --trusted-host)", "HOST");
  flags.Bool("pip-no-index", &pip.no_index,
             "Install jobs' pip_packages only from --pip-find-links (pip --no-index)");
  // Which host folders may be HOSTPATH datastores (docs/datastores.md).
  flags.Repeated("datastore-root", &datastore_roots,
                 "A folder HOSTPATH datastores may be in (repeatable); without one no HOSTPATH "
                 "datastore can be created. System folders and --state-dir are refused even "
                 "below a root; give the agents the same roots",
                 "DIR");
  // Limits (docs/operations.md#limits).
  int64_t max_open_log_files = options.max_open_log_files;
  flags.Int("max-log-bytes", &options.log_limits.max_log_bytes,
            "Most bytes stored of one rank's stdout or stderr (and one node's preparation "
            "log) per attempt; past it the log ends with a note and the rest is dropped. "
            "0: no cap",
            "BYTES");
  flags.Int("max-metric-records", &options.log_limits.max_metric_records,
            "Most metric records stored per rank (and per node for system metrics) per "
            "attempt; past it a note is stored and the rest dropped. 0: no cap");
  flags.Int("max-open-log-files", &max_open_log_files,
            "Most log files droverd holds open at once (at most a quarter of its open file "
            "limit); the least recently written are closed and opened again when needed");

  // Retention and quotas (docs/operations.md#retention).
  flags.String("log-retention", &log_retention,
               "How long after a job ended its logs (stdout, stderr, preparation) are kept; "
               "its metrics stay. 0: forever",
               "DURATION");
  flags.String("snapshot-retention", &snapshot_retention,
               "How long after a job ended its code snapshot is kept (unless another job or a "
               "recent upload uses it). 0: forever",
               "DURATION");
  flags.String("outputs-retention", &outputs_retention,
               "How long after a job ended its outputs are kept for drover download. 0: forever",
               "DURATION");
  flags.String("upload-grace", &upload_grace,
               "How long a blob nothing refers to is kept after it was last uploaded or checked "
               "(a snapshot for a job about to be submitted); at least 1s",
               "DURATION");
  flags.String("gc-interval", &gc_interval,
               "Time between retention passes; 0: only drover gc runs one", "DURATION");
  flags.Int("blob-quota", &options.blob_quota_bytes,
            "Most bytes of code snapshots, images and job outputs one user may hold in "
            "droverd's blob store (default 100 GiB); 0: no quota",
            "BYTES");

  std::vector<std::string> args(argv + 1, argv + argc);
  std::vector<std::string> positional;
  if (absl::Status s = flags.Parse(args, &positional); !s.ok()) {
    std::fprintf(stderr, "droverd: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  if (flags.help_requested()) {
    std::fputs(flags.Help().c_str(), stdout);
    return 0;
  }
  if (!positional.empty()) {
    std::fprintf(stderr, "droverd: unexpected argument '%s'; see --help\n", positional[0].c_str());
    return 2;
  }
  if (!config_path.empty()) {
    if (absl::Status s = drover::ApplyConfigFile(config_path, &flags); !s.ok()) return Fail(s);
  }
  absl::StatusOr<drover::LogLevel> level = drover::ParseLogLevel(log_level);
  if (!level.ok()) return Fail(absl::InvalidArgumentError(absl::StrCat("--log-level: ", level.status().message())));
  drover::SetLogLevel(*level);
  for (absl::Status s :
       {ParseDurationFlag("shutdown-grace", shutdown_grace, "10s or 1m", &options.shutdown_grace),
        ParseDurationFlag("launch-timeout", launch_timeout, "30s or 10m",
                          &options.core.launch_timeout),
        ParseDurationFlag("heartbeat-interval", heartbeat_interval, "2s or 500ms",
                          &options.core.heartbeat_interval),
        ParseDurationFlag("node-lease", node_lease, "15s or 1m", &options.core.lease),
        ParseDurationFlag("node-cert-validity", node_cert_validity, "720h or 24h",
                          &options.node_certificate_validity),
        ParseDurationFlag("audit-retention", audit_retention, "2160h or 720h",
                          &options.audit_retention),
        ParseDurationFlag("log-retention", log_retention, "720h or 0", &options.retention.logs),
        ParseDurationFlag("snapshot-retention", snapshot_retention, "720h or 0",
                          &options.retention.snapshots),
        ParseDurationFlag("outputs-retention", outputs_retention, "2160h or 0",
                          &options.retention.outputs),
        ParseDurationFlag("upload-grace", upload_grace, "24h or 1h",
                          &options.retention.upload_grace),
        ParseDurationFlag("gc-interval", gc_interval, "1h or 10m", &options.retention.interval),
        options.retention.upload_grace < absl::Seconds(1)
            ? absl::InvalidArgumentError(
                  "--upload-grace: at least 1s (a blob a client checked must outlive its submit)")
            : absl::OkStatus(),
        options.blob_quota_bytes < 0
            ? absl::InvalidArgumentError("--blob-quota: give 0 (no quota) or a number of bytes")
            : absl::OkStatus(),
        options.audit_retention < absl::Hours(1)
            ? absl::InvalidArgumentError("--audit-retention: at least 1h")
            : absl::OkStatus(),
        options.audit_max_records < 1000
            ? absl::InvalidArgumentError("--audit-max-records: at least 1000")
            : absl::OkStatus(),
        options.node_certificate_validity < absl::Minutes(1)
            ? absl::InvalidArgumentError("--node-cert-validity: at least 1m")
            : absl::OkStatus(),
        drover::server::CheckNodeLeaseOptions(options.core)}) {
    if (!s.ok()) return Fail(s);
  }

  if (options.log_limits.max_log_bytes < 0 || options.log_limits.max_metric_records < 0) {
    return Fail(absl::InvalidArgumentError(
        "--max-log-bytes and --max-metric-records: give 0 (no cap) or a positive number"));
  }
  if (max_open_log_files < 1 || max_open_log_files > 1'000'000) {
    return Fail(absl::InvalidArgumentError("--max-open-log-files: give 1 to 1000000"));
  }
  options.max_open_log_files = static_cast<int>(max_open_log_files);
  RaiseOpenFileLimit();

  for (const std::string& root : datastore_roots) {
    if (absl::Status s = drover::CheckDatastoreRoot("--datastore-root", root); !s.ok()) {
      return Fail(s);
    }
  }
  options.core.datastore_roots.allowed = datastore_roots;
  {
    std::error_code error;
    std::filesystem::path state = std::filesystem::absolute(options.state_dir, error);
    std::string refused = state.lexically_normal().string();
    while (refused.size() > 1 && refused.back() == '/') refused.pop_back();
    options.core.datastore_roots.refused.push_back(refused);
  }

  // Everything droverd creates is its user's alone (datastore credentials, exec tokens, the
  // jobs' logs), whatever umask it was started with.
  umask(077);
  if (!options.state_dir.empty()) {
    if (absl::Status s = drover::server::SecureStateDir(options.state_dir); !s.ok()) return Fail(s);
  }
  {
    std::error_code error;
    std::filesystem::path real = std::filesystem::canonical(options.state_dir, error);
    if (!error) options.core.datastore_roots.refused.push_back(real.string());
  }

  if (!bootstrap_token_file.empty()) {
    std::ifstream in(bootstrap_token_file);
    std::string token;
    if (!in || !std::getline(in, token) || token.empty()) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(
          "--bootstrap-admin-token-file: cannot read a token from '", bootstrap_token_file, "'")));
    }
    options.bootstrap_admin_token = token;
  }

  absl::StatusOr<drover::v1::PipSettings> pip_settings = drover::server::PipSettingsFromFlags(pip);
  if (!pip_settings.ok()) return Fail(pip_settings.status());
  options.core.pip = *std::move(pip_settings);

  // Block the stop signals in every thread; this one waits for them below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  absl::StatusOr<std::unique_ptr<drover::server::Droverd>> droverd =
      drover::server::Droverd::Start(options);
  if (!droverd.ok()) return Fail(droverd.status());

  drover::Log(drover::LogLevel::kInfo, "droverd_started",
              {{"address", (*droverd)->address()},
               {"metrics_address", (*droverd)->metrics_address()},
               {"state_dir", options.state_dir},
               {"resumed_jobs", (*droverd)->resumed_jobs()},
               {"pid", getpid()}});
  if (!address_file.empty() && !WriteFileAtomically(address_file, (*droverd)->address() + "\n")) {
    drover::Log(drover::LogLevel::kWarning, "address_file_failed", {{"path", address_file}});
  }
  sd_notifyf(0, "READY=1\nSTATUS=serving on %s\nMAINPID=%d", (*droverd)->address().c_str(),
             static_cast<int>(getpid()));

  int received = 0;
  sigwait(&stop_signals, &received);
  drover::Log(drover::LogLevel::kInfo, "droverd_stopping", {{"signal", strsignal(received)}});
  sd_notify(0, "STOPPING=1\nSTATUS=stopping");
  (*droverd)->Shutdown();
  drover::Log(drover::LogLevel::kInfo, "droverd_stopped");
  return 0;
}
