#include "server/droverd_flags.h"

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/config.h"
#include "common/datastore_policy.h"
#include "common/flags.h"
#include "common/safe_open.h"
#include "common/status_macros.h"
#include "server/core.h"
#include "server/pip_settings.h"

namespace drover::server {
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

// The payload that marks a usage error (IsDroverdUsageError).
constexpr char kUsageErrorPayload[] = "drover.dev/droverd-usage-error";

absl::Status UsageError(absl::Status status) {
  status.SetPayload(kUsageErrorPayload, absl::Cord("1"));
  return status;
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

// A check that holds, or INVALID_ARGUMENT with `message`.
absl::Status Require(bool holds, absl::string_view message) {
  return holds ? absl::OkStatus() : absl::InvalidArgumentError(message);
}

}  // namespace

bool IsDroverdUsageError(const absl::Status& status) {
  return status.GetPayload(kUsageErrorPayload).has_value();
}

absl::StatusOr<DroverdSettings> ParseDroverdFlags(const std::vector<std::string>& args) {
  DroverdSettings s;
  std::string config_path;
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
  PipFlags pip;
  std::vector<std::string> datastore_roots;
  std::string bootstrap_token_file;

  FlagSet flags("droverd [flags]", kSummary);
  flags.String("listen", &s.options.listen, "Address to serve the gRPC API on", "HOST:PORT");
  flags.String("state-dir", &s.options.state_dir, "Folder for droverd's durable state", "DIR");
  flags.String("data-dir", &s.options.data_dir,
               "Folder for job logs, metrics, blobs (snapshots, images, outputs) and "
               "exec-token.key; empty: --state-dir. With a standby: one folder on storage "
               "every droverd mounts (NFS, CephFS), so that whichever leads has them "
               "(docs/operations.md#shared-data)",
               "DIR");
  flags.String("store", &s.options.store,
               "The state database: empty, drover.db in --state-dir (SQLite); a postgres:// URI, "
               "that PostgreSQL database (logs and blobs stay in --data-dir)",
               "URI");
  std::string leader_lease_ttl = "5s";
  flags.String("advertise-address", &s.options.advertise_address,
               "With a postgres --store: where clients and agents reach this droverd, as a "
               "standby names the leader to them (docs/operations.md#standby); empty: the "
               "host of --listen (this host's name for 0.0.0.0) and its port",
               "HOST:PORT");
  flags.String("leader-lease-ttl", &leader_lease_ttl,
               "With a postgres --store: how long the leader lease lasts unrenewed; it is "
               "renewed every third of it, and a standby leads within about this long after "
               "the leader dies; 0: no lease, for exactly one droverd on the database (it then "
               "rides out database outages instead of exiting)",
               "DURATION");
  flags.String("config", &config_path, "Read settings from this file", "FILE");
  flags.String("address-file", &s.address_file,
               "Write the bound address here once listening (for port 0)", "FILE");
  flags.String("log-level", &log_level, "debug, info, warning or error", "LEVEL");
  flags.String("metrics-listen", &s.options.metrics_listen,
               "Serve Prometheus metrics (GET /metrics) on this address; empty: not served",
               "HOST:PORT");
  // The HTTP face: the JSON API and the web app (docs/http-api.md).
  flags.String("http-listen", &s.options.http_listen,
               "Serve the HTTP API and the web app on this address (HTTPS with droverd's TLS "
               "certificate); empty: not served",
               "HOST:PORT");
  flags.String("web-root", &s.options.web_root,
               "The web app's built files (web/dist) served with --http-listen; empty: the API "
               "only",
               "DIR");
  flags.Bool("http-plain", &s.options.http_plain,
             "Serve --http-listen as plain HTTP, not HTTPS: only on a loopback address or "
             "behind a TLS proxy (the session cookie is then not Secure)");
  int64_t http_max_connections_per_client = s.options.http_max_connections_per_client;
  int64_t http_login_burst = s.options.http_login_burst;
  std::string http_login_interval = "6s";
  flags.Int("http-max-connections-per-client", &http_max_connections_per_client,
            "Most connections one client address (an IPv4 address, an IPv6 /64) may hold open "
            "to --http-listen; more are answered 429. Behind a proxy every client is the "
            "proxy's address: raise it, or 0 for no limit");
  flags.Int("http-login-burst", &http_login_burst,
            "Logins (POST /api/v1/login with a well-formed token, right or wrong) one client address may make at once "
            "before it must wait --http-login-interval per login (429 with Retry-After). 0: no "
            "limit");
  flags.String("http-login-interval", &http_login_interval,
               "How often one client address gets one more login once its burst is spent",
               "DURATION");
  flags.Int("http-spool-max", &s.options.http_spool_max_bytes,
            "Most bytes of job output files the HTTP face keeps in <state-dir>/http-spool at "
            "once while browsers download them (default 4 GiB); a download past it is answered "
            "503 with Retry-After. 0: no cap",
            "BYTES");
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
  flags.Double("node-loss-pause-fraction", &s.options.core.node_loss_pause_fraction,
               "When more than this fraction of the nodes (at least 3) is silent at once, "
               "lost nodes keep their attempts until enough are back; 0 never pauses",
               "FRACTION");
  // TLS (docs/security.md): droverd's own cluster CA by default.
  flags.String("tls-cert", &s.options.tls.certificate_file,
               "Your own server certificate (PEM) instead of one from droverd's cluster CA; "
               "with --tls-key and --tls-ca",
               "FILE");
  flags.String("tls-key", &s.options.tls.key_file, "The key of --tls-cert (PEM)", "FILE");
  flags.String("tls-ca", &s.options.tls.ca_file,
               "The CA certificate clients and agents trust, with --tls-cert", "FILE");
  flags.Repeated("tls-san", &s.options.tls.extra_names,
                 "Another host name or address clients reach droverd by, for the server "
                 "certificate droverd issues itself (localhost, this host's name and the "
                 "--listen address are always in it)",
                 "NAME|IP");
  // Users and the local admin socket (docs/security.md).
  flags.String("secrets-key", &s.options.secrets_key,
               "File with the key that seals datastore credentials and secret job environment "
               "values in the database (made there, 0600, when missing; default "
               "<state-dir>/secrets.key). Keep it apart from copies of the database",
               "FILE");
  flags.String("admin-socket", &s.options.admin_socket,
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
  flags.Int("audit-max-records", &s.options.audit_max_records,
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
  int64_t max_open_log_files = s.options.max_open_log_files;
  flags.Int("max-log-bytes", &s.options.log_limits.max_log_bytes,
            "Most bytes stored of one rank's stdout or stderr (and one node's preparation "
            "log) per attempt; past it the log ends with a note and the rest is dropped. "
            "0: no cap",
            "BYTES");
  flags.Int("max-metric-records", &s.options.log_limits.max_metric_records,
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
  flags.Int("blob-quota", &s.options.blob_quota_bytes,
            "Most bytes of code snapshots, images and job outputs one user may hold in "
            "droverd's blob store (default 100 GiB); 0: no quota",
            "BYTES");

  std::vector<std::string> positional;
  if (absl::Status parsed = flags.Parse(args, &positional); !parsed.ok()) {
    return UsageError(std::move(parsed));
  }
  if (flags.help_requested()) {
    s.help = true;
    s.help_text = flags.Help();
    return s;
  }
  if (!positional.empty()) {
    return UsageError(absl::InvalidArgumentError(
        absl::StrCat("unexpected argument '", positional[0], "'; see --help")));
  }
  if (!config_path.empty()) DROVER_RETURN_IF_ERROR(ApplyConfigFile(config_path, &flags));
  absl::StatusOr<LogLevel> level = ParseLogLevel(log_level);
  if (!level.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--log-level: ", level.status().message()));
  }
  s.log_level = *level;

  DroverdOptions& options = s.options;
  DROVER_RETURN_IF_ERROR(
      ParseDurationFlag("shutdown-grace", shutdown_grace, "10s or 1m", &options.shutdown_grace));
  DROVER_RETURN_IF_ERROR(ParseDurationFlag("launch-timeout", launch_timeout, "30s or 10m",
                                           &options.core.launch_timeout));
  DROVER_RETURN_IF_ERROR(ParseDurationFlag("heartbeat-interval", heartbeat_interval,
                                           "2s or 500ms", &options.core.heartbeat_interval));
  DROVER_RETURN_IF_ERROR(
      ParseDurationFlag("node-lease", node_lease, "15s or 1m", &options.core.lease));
  DROVER_RETURN_IF_ERROR(ParseDurationFlag("node-cert-validity", node_cert_validity,
                                           "720h or 24h", &options.node_certificate_validity));
  DROVER_RETURN_IF_ERROR(ParseDurationFlag("audit-retention", audit_retention, "2160h or 720h",
                                           &options.audit_retention));
  DROVER_RETURN_IF_ERROR(
      ParseDurationFlag("log-retention", log_retention, "720h or 0", &options.retention.logs));
  DROVER_RETURN_IF_ERROR(ParseDurationFlag("snapshot-retention", snapshot_retention,
                                           "720h or 0", &options.retention.snapshots));
  DROVER_RETURN_IF_ERROR(ParseDurationFlag("outputs-retention", outputs_retention,
                                           "2160h or 0", &options.retention.outputs));
  DROVER_RETURN_IF_ERROR(ParseDurationFlag("upload-grace", upload_grace, "24h or 1h",
                                           &options.retention.upload_grace));
  DROVER_RETURN_IF_ERROR(ParseDurationFlag("gc-interval", gc_interval, "1h or 10m",
                                           &options.retention.interval));
  DROVER_RETURN_IF_ERROR(Require(
      options.retention.upload_grace >= absl::Seconds(1),
      "--upload-grace: at least 1s (a blob a client checked must outlive its submit)"));
  DROVER_RETURN_IF_ERROR(Require(options.blob_quota_bytes >= 0,
                                 "--blob-quota: give 0 (no quota) or a number of bytes"));
  DROVER_RETURN_IF_ERROR(
      Require(options.audit_retention >= absl::Hours(1), "--audit-retention: at least 1h"));
  DROVER_RETURN_IF_ERROR(
      Require(options.audit_max_records >= 1000, "--audit-max-records: at least 1000"));
  DROVER_RETURN_IF_ERROR(Require(options.node_certificate_validity >= absl::Minutes(1),
                                 "--node-cert-validity: at least 1m"));
  DROVER_RETURN_IF_ERROR(CheckNodeLeaseOptions(options.core));

  DROVER_RETURN_IF_ERROR(Require(
      options.log_limits.max_log_bytes >= 0 && options.log_limits.max_metric_records >= 0,
      "--max-log-bytes and --max-metric-records: give 0 (no cap) or a positive number"));
  DROVER_RETURN_IF_ERROR(ParseDurationFlag("http-login-interval", http_login_interval, "6s or 1m",
                                           &options.http_login_interval));
  DROVER_RETURN_IF_ERROR(Require(
      http_max_connections_per_client >= 0 && http_max_connections_per_client <= 1'000'000 &&
          http_login_burst >= 0 && http_login_burst <= 1'000'000,
      "--http-max-connections-per-client and --http-login-burst: give 0 (no limit) to 1000000"));
  DROVER_RETURN_IF_ERROR(Require(options.http_login_interval >= absl::Milliseconds(1),
                                 "--http-login-interval: at least 1ms"));
  DROVER_RETURN_IF_ERROR(Require(options.http_spool_max_bytes >= 0,
                                 "--http-spool-max: give 0 (no cap) or a number of bytes"));
  options.http_max_connections_per_client = static_cast<int>(http_max_connections_per_client);
  options.http_login_burst = static_cast<int>(http_login_burst);
  DROVER_RETURN_IF_ERROR(Require(max_open_log_files >= 1 && max_open_log_files <= 1'000'000,
                                 "--max-open-log-files: give 1 to 1000000"));
  options.max_open_log_files = static_cast<int>(max_open_log_files);

  DROVER_RETURN_IF_ERROR(ParseDurationFlag("leader-lease-ttl", leader_lease_ttl, "5s or 10s",
                                           &options.leader_lease_ttl));
  DROVER_RETURN_IF_ERROR(Require(
      options.leader_lease_ttl == absl::ZeroDuration() ||
          (options.leader_lease_ttl >= absl::Seconds(1) &&
           options.leader_lease_ttl <= absl::Minutes(10)),
      "--leader-lease-ttl: give 1s to 10m (5s: a standby leads within about 5 s), or 0 for "
      "no lease (one droverd on the database, never a standby)"));
  if (!options.advertise_address.empty()) {
    const std::string& a = options.advertise_address;
    size_t colon = a.rfind(':');
    int port = 0;
    DROVER_RETURN_IF_ERROR(Require(
        colon != std::string::npos && colon > 0 &&
            absl::SimpleAtoi(a.substr(colon + 1), &port) && port > 0 && port < 65536 &&
            a.find_first_of(" \t\r\n,/") == std::string::npos && a.size() <= 255,
        absl::StrCat("--advertise-address: '", a.substr(0, 255),
                     "' is not HOST:PORT; give the name or address and port clients and agents "
                     "reach this droverd at, e.g. head-2.example.org:7070")));
  }
  DROVER_RETURN_IF_ERROR(Require(
      options.store.empty() || IsPostgresStore(options.store),
      "--store: not a PostgreSQL URI (it may hold a password, so it is not repeated here); "
      "give postgres://USER@HOST/DATABASE (or postgresql://...), or leave it out for SQLite "
      "in --state-dir"));

  for (const std::string& root : datastore_roots) {
    DROVER_RETURN_IF_ERROR(CheckDatastoreRoot("--datastore-root", root));
  }
  options.core.datastore_roots.allowed = datastore_roots;
  {
    std::error_code error;
    for (const std::string* dir : {&options.state_dir, &options.data_dir}) {
      if (dir->empty()) continue;
      std::filesystem::path state = std::filesystem::absolute(*dir, error);
      std::string refused = state.lexically_normal().string();
      while (refused.size() > 1 && refused.back() == '/') refused.pop_back();
      options.core.datastore_roots.refused.push_back(refused);
    }
  }

  if (!bootstrap_token_file.empty()) {
    // A regular file of a line: a FIFO is not waited on, a huge file not read.
    absl::StatusOr<std::string> text = ReadSmallFile(bootstrap_token_file, 4096);
    std::string token = text.ok() ? text->substr(0, text->find('\n')) : "";
    if (token.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--bootstrap-admin-token-file: cannot read a token from '", bootstrap_token_file, "'",
          text.ok() ? " (its first line is empty)"
                    : absl::StrCat(" (", text.status().message(), ")"),
          "; write the token, drv_..., on the first line of a regular file"));
    }
    options.bootstrap_admin_token = token;
  }

  absl::StatusOr<v1::PipSettings> pip_settings = PipSettingsFromFlags(pip);
  if (!pip_settings.ok()) return pip_settings.status();
  options.core.pip = *std::move(pip_settings);
  return s;
}

}  // namespace drover::server
