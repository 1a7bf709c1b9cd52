// Droverd: the composition root of the scheduler daemon. It opens the store, rebuilds the
// scheduling core from it, and serves the gRPC API. main() builds one from flags, waits for
// a stop signal and calls Shutdown(). Methods are called from main()'s thread.
#ifndef DROVER_SERVER_DROVERD_H_
#define DROVER_SERVER_DROVERD_H_

#include <grpcpp/server.h>

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "common/metrics_server.h"
#include "common/pki/secret_box.h"
#include "server/admin_service.h"
#include "server/admin_socket.h"
#include "server/agent_service.h"
#include "server/auth.h"
#include "server/blob_quota.h"
#include "server/blob_service.h"
#include "server/call_guard.h"
#include "server/core.h"
#include "server/core_loop.h"
#include "server/http/http_gateway.h"
#include "server/job_events.h"
#include "server/job_service.h"
#include "server/node_identity.h"
#include "server/leader_lease.h"
#include "server/node_identity_service.h"
#include "server/retention.h"
#include "server/server_metrics.h"
#include "server/sweep_service.h"
#include "server/sweeps.h"
#include "server/tls.h"
#include "storage/log_store.h"
#include "storage/store.h"

namespace drover::server {

// gRPC limits of the server (docs/operations.md#limits).
inline constexpr int kMaxConcurrentStreams = 100;       // calls at once per connection
inline constexpr int kMaxReceiveMessageBytes = 4 << 20;  // largest request message
// Largest answer the HTTP gateway takes over its in-process channel (a thinned GetMetrics of
// many series).
inline constexpr int kMaxGatewayAnswerBytes = 64 << 20;

// Whether `store` (DroverdOptions::store) names a PostgreSQL database: it starts with
// postgres:// or postgresql://.
bool IsPostgresStore(absl::string_view store);

struct DroverdOptions {
  // HOST:PORT to serve on; port 0 lets the kernel pick (see Droverd::address()).
  std::string listen = "127.0.0.1:7070";
  // Folder for droverd's state (created if missing): the database `drover.db`.
  std::string state_dir;
  // Folder for what every droverd of a cluster must reach, whichever leads
  // (docs/operations.md#shared-data): `logs/`, `blobs/` and `exec-token.key`. Empty:
  // `state_dir` (one droverd). With a standby, one folder on storage every droverd mounts.
  std::string data_dir;
  // Where the state database is (docs/operations.md#postgresql): empty, the SQLite file
  // `drover.db` in `state_dir`; a postgres:// or postgresql:// URI, that PostgreSQL
  // database (logs and blobs stay in `data_dir`).
  std::string store;
  // How long Shutdown() lets accepted calls finish before cancelling them.
  absl::Duration shutdown_grace = absl::Seconds(10);
  // Agent heartbeats, node lease, stop grace.
  CoreOptions core;
  // Caps on what one stream of an attempt stores (docs/operations.md#limits).
  storage::LogLimits log_limits{.max_log_bytes = int64_t{256} << 20,
                                .max_metric_records = 1'000'000};
  // Most log files droverd holds open at once (also at most a quarter of RLIMIT_NOFILE).
  int max_open_log_files = 1024;
  // Largest blob (snapshot, image, outputs) droverd takes.
  int64_t max_blob_bytes = int64_t{64} << 30;
  // How often leases, timeouts and placement are checked.
  absl::Duration tick = absl::Milliseconds(200);
  // HOST:PORT to serve Prometheus metrics on (GET /metrics); empty: not served.
  std::string metrics_listen;
  // HOST:PORT to serve the HTTP API and the web app on (docs/http-api.md); empty: not
  // served. HTTPS with droverd's TLS certificate unless `http_plain`.
  std::string http_listen;
  // The web app's built files; empty: the API only.
  std::string web_root;
  // Serve `http_listen` as plain HTTP (a loopback address, or behind a TLS proxy).
  bool http_plain = false;
  // What one client address may take of the HTTP face (connections, logins), and the most
  // bytes of output files its downloads keep in <state-dir>/http-spool at once.
  int http_max_connections_per_client = 32;
  int http_login_burst = 10;
  absl::Duration http_login_interval = absl::Seconds(6);
  int64_t http_spool_max_bytes = int64_t{4} << 30;
  // TLS: droverd's own cluster CA under <state-dir>/tls/, or an administrator's files.
  TlsOptions tls;
  // The local admin socket (docs/security.md): calls through it are admin without a token;
  // only droverd's user can open it (mode 0600). Empty: <state-dir>/admin.sock; "none":
  // no socket.
  std::string admin_socket;
  // The key that seals datastore credentials and secret job environment values in the
  // database (common/pki/secret_box.h); made there when missing. Empty:
  // <state-dir>/secrets.key. Keep a copy apart from backups of the state folder.
  std::string secrets_key;
  // For automation and tests: at start, the user `bootstrap-admin` (role admin) gets this
  // token (made when missing, its token replaced otherwise). Empty: nothing.
  std::string bootstrap_admin_token;
  // How long the node certificates droverd issues are valid; agents renew them when a
  // third of that is left.
  absl::Duration node_certificate_validity = absl::Hours(24 * 30);
  // Audit retention (docs/operations.md): records older than this, and all but the newest
  // `audit_max_records`, are removed every `audit_prune_period`.
  absl::Duration audit_retention = absl::Hours(24 * 90);
  int64_t audit_max_records = 1'000'000;
  absl::Duration audit_prune_period = absl::Minutes(10);
  // Retention of ended jobs' logs, snapshots and outputs, and of blobs nothing refers to
  // (docs/operations.md#retention).
  RetentionOptions retention;
  // Most bytes one user may hold in the blob store (server/blob_quota.h); 0: no quota.
  int64_t blob_quota_bytes = int64_t{100} << 30;
  // Several droverds on one PostgreSQL database (docs/operations.md#standby): with a
  // postgres store, droverd takes the database's leader lease before it loads anything and
  // renews it every third of `leader_lease_ttl`. While another droverd holds it, Start()
  // stands by: it serves every call UNAVAILABLE naming the leader (server/standby_server.h)
  // and tries again until it leads, then loads the state as a restart does.
  // Where clients and agents reach this droverd, "HOST:PORT", as a standby names it; empty:
  // the host of `listen` (this host's name when that is every address) and the bound port.
  std::string advertise_address;
  // Zero: no lease at all (one droverd on the database, which rides out its outages).
  absl::Duration leader_lease_ttl = absl::Seconds(5);
  // Notified: Start() stops standing by and returns CANCELLED. May be null.
  const absl::Notification* stop = nullptr;
  // Called (from Start()'s thread) when this droverd starts standing by, and again whenever
  // the leader it names changes: the address it is bound to and the leader's (empty: none
  // known).
  std::function<void(const std::string& address, const std::string& leader)> standing_by;
  // Called once, from the lease's thread, when this droverd lost the lease it led under
  // (deposed, or the database out of reach for most of the lease): it must stop acting at
  // once, since a standby may lead by now. Null: log and exit the process with code 75
  // (EX_TEMPFAIL), so that its service manager starts it again, as a standby.
  std::function<void(const absl::Status&)> on_leadership_lost;
  // Tests only: wraps the store droverd opened (tests/testing/fault_injecting_store.h);
  // empty: the store as opened.
  std::function<std::unique_ptr<storage::Store>(std::unique_ptr<storage::Store>)> wrap_store;
};

class Droverd {
 public:
  // Opens the state, restores the queue and starts serving. Errors: UNAVAILABLE when the
  // address cannot be bound or the state cannot be opened; FAILED_PRECONDITION for a state
  // written by a newer droverd.
  static absl::StatusOr<std::unique_ptr<Droverd>> Start(const DroverdOptions& options,
                                                        const Clock& clock = RealClock::Get());
  // Shuts down if still running.
  ~Droverd();

  // The address actually bound, "HOST:PORT".
  const std::string& address() const { return address_; }
  // The address metrics are served on, "HOST:PORT"; empty when not served.
  std::string metrics_address() const {
    return metrics_server_ == nullptr ? "" : metrics_server_->endpoint();
  }
  // The address the HTTP API is served on, "HOST:PORT"; empty when not served.
  std::string http_address() const {
    return http_gateway_ == nullptr ? "" : http_gateway_->endpoint();
  }
  // The web app's address, "https://HOST:PORT/" (http with --http-plain); empty when not
  // served.
  std::string http_url() const {
    return http_gateway_ == nullptr
               ? ""
               : std::string(http_gateway_->scheme()) + "://" + http_gateway_->endpoint() + "/";
  }
  // The local admin socket's path; empty when there is none.
  const std::string& admin_socket() const { return admin_socket_; }
  // The CA certificate (PEM) clients and agents trust to reach this droverd.
  const std::string& ca_certificate() const { return tls_.ca_pem; }
  // droverd's own cluster CA with its key (empty with an administrator's certificates):
  // for tests that issue node certificates themselves.
  const pki::KeyAndCertificate& cluster_ca() const { return tls_.ca; }
  // Jobs that were unfinished in the store at start.
  size_t resumed_jobs() const { return resumed_jobs_; }
  // The leader lease's fencing token this droverd leads under; 0 without a lease (SQLite).
  int64_t leader_token() const { return lease_ == nullptr ? 0 : lease_->token(); }

  // Graceful stop: refuses new submits and cancels, ends watch streams, lets accepted calls
  // finish (up to shutdown_grace), then commits the store's queue and closes it. Idempotent.
  void Shutdown();

 private:
  Droverd() = default;

  DroverdOptions options_;
  std::string address_;
  std::string admin_socket_;
  ServerTls tls_;
  size_t resumed_jobs_ = 0;
  bool stopped_ = false;
  int lock_fd_ = -1;  // flock on <state-dir>/droverd.lock, held while running
  int data_lock_fd_ = -1;  // flock on <data-dir>/data.lock on SQLite (one droverd there)
  MetricsRegistry metrics_registry_;
  std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<SecretBox> secrets_;  // before store_, which uses it
  std::unique_ptr<MetricsServer> metrics_server_;
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<LeaseKeeper> lease_;  // with a shared (PostgreSQL) store
  std::unique_ptr<storage::LogStore> logs_;
  std::unique_ptr<storage::BlobStore> blobs_;
  JobEventHub events_;
  std::unique_ptr<CoreLoop> loop_;
  std::unique_ptr<Core> core_;
  std::unique_ptr<Authenticator> auth_;
  std::unique_ptr<JobServiceImpl> job_service_;
  std::unique_ptr<SweepRunner> sweeps_;
  std::unique_ptr<SweepServiceImpl> sweep_service_;
  std::unique_ptr<AdminServiceImpl> admin_service_;
  std::unique_ptr<NodeIdentity> identity_;
  std::unique_ptr<AgentServiceImpl> agent_service_;
  std::unique_ptr<NodeIdentityServiceImpl> identity_service_;
  std::unique_ptr<BlobQuota> blob_quota_;
  std::unique_ptr<BlobServiceImpl> blob_service_;
  std::unique_ptr<Retention> retention_;
  std::unique_ptr<AdminSocket> admin_listener_;  // before server_: its acceptors die last
  std::unique_ptr<grpc::Server> server_;
  // Calls server_ in-process; stopped before it.
  std::unique_ptr<http::HttpGateway> http_gateway_;
};

}  // namespace drover::server

#endif  // DROVER_SERVER_DROVERD_H_
