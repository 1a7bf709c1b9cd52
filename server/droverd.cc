#include "server/droverd.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/safe_open.h"
#include "google/protobuf/util/time_util.h"
#include "common/status_macros.h"
#include "server/standby_server.h"
#include "storage/postgres_store.h"
#include "storage/sqlite_store.h"

namespace drover::server {

bool IsPostgresStore(absl::string_view store) {
  return absl::StartsWith(store, "postgres://") || absl::StartsWith(store, "postgresql://");
}

namespace {

// The secret in `path` (mode 0600), created with 256 random bits when there is none yet.
// The file may be in the shared data folder: it is read only when it is a regular file
// (a FIFO there is not waited on) and written through no link (ReplaceFile).
absl::StatusOr<std::string> LoadOrCreateKey(const std::string& path) {
  absl::StatusOr<std::string> text = ReadSmallFile(path, 4096);
  std::string key = text.ok() ? text->substr(0, text->find('\n')) : "";
  if (key.size() >= 32) return key;
  if (!text.ok() && !absl::IsNotFound(text.status()) &&
      !absl::StrContains(text.status().message(), "No such file")) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot read the key ", path, ": ", text.status().message(),
        "; remove what is there (droverd writes a new key) or put the key back"));
  }
  std::random_device random;
  key.clear();
  for (int i = 0; i < 8; ++i) absl::StrAppend(&key, absl::Hex(random(), absl::kZeroPad8));
  DROVER_RETURN_IF_ERROR(ReplaceFile(path, key + "\n", 0600));
  return key;
}

// Gives the user `bootstrap-admin` (role admin) `token`, creating it when missing.
absl::Status BootstrapAdmin(storage::Store& store, const std::string& token, const Clock& clock) {
  constexpr absl::string_view kName = "bootstrap-admin";
  if (!absl::StartsWith(token, kTokenPrefix) || token.size() < 24 || token.size() > kMaxTokenBytes ||
      token.find_first_of(" \t\r\n") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--bootstrap-admin-token-file: the token must be one line of ", kTokenPrefix,
        " and at least 20 more characters (drover tokens look like that)"));
  }
  // Already so (every restart of a test or a benchmark): nothing to write, so that droverd
  // also starts on a full state disk.
  if (absl::StatusOr<v1::User> known = store.FindUserByToken(HashUserToken(token));
      known.ok() && known->name() == kName && known->role() == v1::User::ADMIN) {
    return absl::OkStatus();
  }
  absl::Notification done;
  absl::Status result;
  storage::UserRecord record;
  record.user.set_name(std::string(kName));
  record.user.set_role(v1::User::ADMIN);
  *record.user.mutable_create_time() = google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(
      absl::ToUnixMicros(clock.Now()));
  record.token_sha256 = HashUserToken(token);
  store.CreateUser(record, [&](absl::Status status) {
    result = status;
    done.Notify();
  });
  done.WaitForNotification();
  if (!absl::IsAlreadyExists(result)) return result;
  absl::Notification replaced;
  store.SetUserToken(std::string(kName), record.token_sha256, [&](absl::StatusOr<v1::User> user) {
    result = user.status();
    replaced.Notify();
  });
  replaced.WaitForNotification();
  return result;
}

// Every call is over TLS. A client certificate is verified when one is presented (node
// identity); none is required of clients.
std::shared_ptr<grpc::ServerCredentials> ServerCredentials(const ServerTls& tls) {
  grpc::SslServerCredentialsOptions options(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = tls.ca_pem;
  options.pem_key_cert_pairs.push_back({tls.key_pem, tls.certificate_pem});
  return grpc::SslServerCredentials(options);
}

// Where clients reach a droverd listening on `host` (as written in --listen) and `port`:
// that host, or this host's name when it listens on every address.
std::string AdvertisedAddress(const std::string& host, int port) {
  if (host.empty() || host == "0.0.0.0" || host == "::" || host == "[::]") {
    char name[256] = {};
    if (gethostname(name, sizeof(name) - 1) == 0 && name[0] != '\0') {
      return absl::StrCat(name, ":", port);
    }
  }
  return absl::StrCat(host, ":", port);
}

// Takes the leader lease of the shared database for the droverd of `options` (droverd.h),
// standing by on `*listen` meanwhile (StandbyServer); on return `*listen` names the port
// the standby bound, which the leader serves on, and `*lease` renews the lease.
// CANCELLED when options.stop was notified first. The port is closed while the state loads.
absl::Status LeadOrStandBy(const DroverdOptions& options, const ServerTls& tls,
                           storage::Store& store, std::string* listen,
                           std::unique_ptr<LeaseKeeper>* lease) {
  DROVER_ASSIGN_OR_RETURN(std::unique_ptr<StandbyServer> standby,
                          StandbyServer::Start(*listen, ServerCredentials(tls)));
  std::string host = listen->substr(0, listen->rfind(':'));
  *listen = absl::StrCat(host, ":", standby->port());
  LeaseOptions lease_options{.address = options.advertise_address.empty()
                                            ? AdvertisedAddress(host, standby->port())
                                            : options.advertise_address,
                             .ttl = options.leader_lease_ttl};
  // The holder is kept in the state folder: a droverd restarted after a crash takes its own
  // lease back at once (one droverd per state folder, droverd.lock) instead of waiting for
  // it to run out.
  DROVER_ASSIGN_OR_RETURN(std::string id, LoadOrCreateKey(options.state_dir + "/leader-id"));
  char name[256] = {};
  gethostname(name, sizeof(name) - 1);
  lease_options.holder = absl::StrCat(name, "/", id.substr(0, 12));
  *lease = std::make_unique<LeaseKeeper>(store, lease_options);
  std::optional<std::string> named;
  absl::Status acquired = (*lease)->Acquire(options.stop, [&](const std::string& leader) {
    standby->SetLeader(leader);
    if (named == leader) return;
    named = leader;
    Log(LogLevel::kInfo, "standing_by",
        {{"address", *listen}, {"leader", leader.empty() ? "none" : leader},
         {"holder", lease_options.holder}});
    if (options.standing_by) options.standing_by(*listen, leader);
  });
  standby->Stop();
  if (!acquired.ok()) return acquired;
  Log(LogLevel::kInfo, "leading",
      {{"address", lease_options.address}, {"holder", lease_options.holder},
       {"token", (*lease)->token()}});
  std::function<void(const absl::Status&)> lost = options.on_leadership_lost;
  if (!lost) {
    lost = [](const absl::Status& status) {
      // Nothing more may be acknowledged: the store already refuses every write, and a
      // client's next call goes to the droverd that leads.
      Log(LogLevel::kError, "leadership_lost", {{"error", status.message()}});
      std::fprintf(stderr, "droverd: lost the leader lease: %s; exiting to stand by\n",
                   std::string(status.message()).c_str());
      std::_Exit(75);
    };
  }
  (*lease)->StartRenewing([lost](absl::Status status) { lost(status); });
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Droverd>> Droverd::Start(const DroverdOptions& options,
                                                        const Clock& clock) {
  auto d = std::unique_ptr<Droverd>(new Droverd());
  d->options_ = options;
  if (options.state_dir.empty()) {
    return absl::InvalidArgumentError("--state-dir is required; droverd keeps its queue there");
  }
  std::error_code error;
  std::filesystem::create_directories(options.state_dir, error);
  if (error) {
    return absl::UnavailableError(absl::StrCat("cannot create state-dir '", options.state_dir,
                                               "': ", error.message()));
  }
  if (options.admin_socket != "none") {
    d->admin_socket_ = options.admin_socket.empty() ? options.state_dir + "/admin.sock"
                                                    : options.admin_socket;
    if (d->admin_socket_.size() >= sizeof(sockaddr_un{}.sun_path)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--admin-socket: '", d->admin_socket_, "' is longer than a Unix socket path may be (",
          sizeof(sockaddr_un{}.sun_path) - 1, " bytes); give a shorter path"));
    }
  }
  // One droverd per state folder: two schedulers on one queue would place jobs twice. The
  // lock goes with the process, so a crash never leaves it behind.
  std::string lock_path = options.state_dir + "/droverd.lock";
  d->lock_fd_ = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (d->lock_fd_ < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot open '", lock_path, "': ", strerror(errno)));
  }
  if (flock(d->lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "state-dir '", options.state_dir,
        "' is in use by another droverd; stop it first or use another --state-dir"));
  }
  // The shared data folder (docs/operations.md#shared-data): on PostgreSQL every droverd
  // of the cluster names the same one and only the leader opens its stores. On SQLite each
  // droverd has a database of its own, so two of them on one data folder would each take
  // the other's blobs for garbage: refused.
  const std::string data_dir = options.data_dir.empty() ? options.state_dir : options.data_dir;
  std::filesystem::create_directories(data_dir, error);
  if (error) {
    return absl::UnavailableError(
        absl::StrCat("cannot create data-dir '", data_dir, "': ", error.message()));
  }
  if (!IsPostgresStore(options.store)) {
    std::string data_lock = data_dir + "/data.lock";
    d->data_lock_fd_ = open(data_lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (d->data_lock_fd_ < 0) {
      return absl::UnavailableError(
          absl::StrCat("cannot open '", data_lock, "': ", strerror(errno)));
    }
    if (flock(d->data_lock_fd_, LOCK_EX | LOCK_NB) != 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "data-dir '", data_dir,
          "' is in use by another droverd on SQLite; droverds share a data folder only when "
          "they share a PostgreSQL --store (docs/operations.md#shared-data): give this one "
          "its own --data-dir"));
    }
  }
  d->metrics_ = std::make_unique<ServerMetrics>(d->metrics_registry_);
  storage::WriteErrorObserver count_write_error =
      [metrics = d->metrics_.get()](absl::string_view store, storage::WriteError kind) {
        metrics->state_write_errors
            .With({std::string(store), std::string(storage::WriteErrorName(kind))})
            .Increment();
      };
  // Certificates are about wall time, not the scheduling clock (a test's may be fake).
  // droverd's own certificate also names the address a standby names to clients.
  TlsOptions tls_options = options.tls;
  if (!options.advertise_address.empty()) {
    std::string host = options.advertise_address.substr(0, options.advertise_address.rfind(':'));
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
      host = host.substr(1, host.size() - 2);
    }
    tls_options.extra_names.push_back(host);
  }
  DROVER_ASSIGN_OR_RETURN(
      d->tls_, LoadServerTls(options.state_dir, tls_options,
                             options.listen.substr(0, options.listen.rfind(':')), absl::Now()));
  DROVER_ASSIGN_OR_RETURN(
      SecretBox secrets,
      SecretBox::LoadOrCreate(options.secrets_key.empty() ? options.state_dir + "/secrets.key"
                                                          : options.secrets_key));
  d->secrets_ = std::make_unique<SecretBox>(std::move(secrets));
  if (IsPostgresStore(options.store)) {
    DROVER_ASSIGN_OR_RETURN(d->store_,
                            storage::PostgresStore::Open({.conninfo = options.store,
                                                          .on_write_error = count_write_error,
                                                          .secrets = d->secrets_.get()}));
  } else {
    DROVER_ASSIGN_OR_RETURN(d->store_,
                            storage::SqliteStore::Open({.path = options.state_dir + "/drover.db",
                                                        .on_write_error = count_write_error,
                                                        .secrets = d->secrets_.get()}));
  }
  if (options.wrap_store) d->store_ = options.wrap_store(std::move(d->store_));
  // The port the gRPC API is served on: a standby's, once it leads.
  std::string listen = options.listen;
  if (IsPostgresStore(options.store) && options.leader_lease_ttl > absl::ZeroDuration()) {
    DROVER_RETURN_IF_ERROR(LeadOrStandBy(options, d->tls_, *d->store_, &listen, &d->lease_));
  }
  if (!options.bootstrap_admin_token.empty()) {
    DROVER_RETURN_IF_ERROR(BootstrapAdmin(*d->store_, options.bootstrap_admin_token, clock));
  }
  // Packed as the queue holds them, one at a time (a million queued jobs: issue 21).
  std::vector<scheduler::JobQueue::Packed> unfinished;
  DROVER_RETURN_IF_ERROR(d->store_->ReadUnfinishedJobs([&](storage::UnfinishedJobRow& row) {
    DROVER_ASSIGN_OR_RETURN(scheduler::JobQueue::Packed packed,
                            scheduler::JobQueue::Pack(std::move(row.id), row.spec, row.status,
                                                      std::move(row.wire)));
    unfinished.push_back(std::move(packed));
    return absl::OkStatus();
  }));
  DROVER_ASSIGN_OR_RETURN(std::vector<v1::ComputeTarget> targets,
                          d->store_->LoadComputeTargets());
  DROVER_ASSIGN_OR_RETURN(std::vector<v1::Image> images, d->store_->LoadImages());
  DROVER_ASSIGN_OR_RETURN(std::vector<v1::Datastore> datastores, d->store_->LoadDatastores());
  DROVER_ASSIGN_OR_RETURN(std::vector<storage::NodeAdminState> node_states,
                          d->store_->LoadNodeAdminStates());
  DROVER_ASSIGN_OR_RETURN(std::optional<storage::NodeLossPause> loss_pause,
                          d->store_->LoadNodeLossPause());
  DROVER_ASSIGN_OR_RETURN(std::vector<v1::Sweep> unfinished_sweeps,
                          d->store_->LoadUnfinishedSweeps());
  DROVER_ASSIGN_OR_RETURN(
      d->logs_,
      storage::LogStore::Open(
          data_dir + "/logs",
          {.on_write_error = count_write_error,
           .max_open_files = options.max_open_log_files,
           .limits = options.log_limits,
           .on_dropped = [metrics = d->metrics_.get()](v1::LogStream stream, int64_t bytes) {
             metrics->dropped_bytes.With({absl::AsciiStrToLower(v1::LogStream_Name(stream))})
                 .Increment(static_cast<double>(bytes));
           }}));
  DROVER_ASSIGN_OR_RETURN(d->blobs_,
                          storage::BlobStore::Open(data_dir + "/blobs",
                                                   options.max_blob_bytes, count_write_error,
                                                   clock));
  d->resumed_jobs_ = unfinished.size();
  if (!options.metrics_listen.empty()) {
    DROVER_ASSIGN_OR_RETURN(d->metrics_server_,
                            MetricsServer::Start(options.metrics_listen, "metrics-listen",
                                                 [registry = &d->metrics_registry_] {
                                                   return registry->Render();
                                                 }));
  }
  CoreOptions core_options = options.core;
  core_options.metrics = d->metrics_.get();
  // Shared: a token the old leader gave a running attempt still opens a relay on the next.
  DROVER_ASSIGN_OR_RETURN(core_options.exec_token_key,
                          LoadOrCreateKey(data_dir + "/exec-token.key"));
  d->loop_ = std::make_unique<CoreLoop>();
  d->core_ = std::make_unique<Core>(*d->store_, *d->logs_, d->events_, *d->loop_, clock,
                                    core_options);
  absl::Notification restored;
  d->loop_->Post([&] {
    d->core_->Restore(std::move(unfinished), targets, images, datastores, node_states,
                      loss_pause);
    restored.Notify();
  });
  restored.WaitForNotification();
  d->loop_->Every(options.tick, [core = d->core_.get()] { core->Tick(); });
  // Sweeps go on where they were: their trials are jobs the core restored above.
  d->sweeps_ = std::make_unique<SweepRunner>(*d->store_, *d->logs_, *d->core_, *d->loop_, clock);
  d->sweeps_->Restore(std::move(unfinished_sweeps));
  d->sweeps_->Start();
  // Audit retention: the prune is one bounded write on the store's writer; a backlog
  // (a lowered --audit-max-records) goes over several periods.
  auto prune_audit = [store = d->store_.get(), retention = options.audit_retention,
                      keep = options.audit_max_records] {
    store->PruneAudit(RealClock::Get().Now() - retention, keep, 100'000, [](absl::Status s) {
      if (!s.ok()) Log(LogLevel::kWarning, "audit_prune_failed", {{"error", s.ToString()}});
    });
  };
  prune_audit();
  d->loop_->Every(options.audit_prune_period, std::move(prune_audit));

  // Certificates and tokens are about wall time, not the scheduling clock.
  d->identity_ = std::make_unique<NodeIdentity>(*d->store_, RealClock::Get(), d->tls_.ca,
                                                d->tls_.ca_pem, options.node_certificate_validity);
  if (absl::Status s = d->identity_->Load(); !s.ok()) {
    d->loop_->Stop();
    d->logs_->Close();
    d->store_->Close();
    return s;
  }
  d->auth_ = std::make_unique<Authenticator>(*d->store_, *d->identity_);
  std::string in_process_key;
  if (!options.http_listen.empty()) {
    absl::StatusOr<std::string> key = http::RandomToken();
    if (!key.ok()) {
      d->loop_->Stop();
      d->logs_->Close();
      d->store_->Close();
      return key.status();
    }
    in_process_key = *std::move(key);
    d->auth_->AllowInProcess(in_process_key);
  }
  d->retention_ = std::make_unique<Retention>(options.retention, *d->store_, *d->blobs_,
                                              *d->logs_, *d->core_, clock, d->metrics_.get());
  d->job_service_ = std::make_unique<JobServiceImpl>(*d->store_, *d->logs_, *d->blobs_,
                                                     *d->core_, *d->loop_, d->events_, clock,
                                                     *d->auth_);
  d->sweep_service_ = std::make_unique<SweepServiceImpl>(
      *d->store_, *d->logs_, *d->blobs_, *d->core_, *d->sweeps_, clock, *d->auth_);
  d->blob_quota_ =
      std::make_unique<BlobQuota>(options.blob_quota_bytes, *d->store_, *d->blobs_);
  // Users' own quotas (drover user quota).
  if (absl::StatusOr<std::vector<v1::User>> users = d->store_->LoadUsers(); users.ok()) {
    for (const v1::User& user : *users) {
      d->blob_quota_->SetUserQuota(user.name(), user.blob_quota_bytes());
    }
  } else {
    d->loop_->Stop();
    d->logs_->Close();
    d->store_->Close();
    return users.status();
  }
  d->admin_service_ = std::make_unique<AdminServiceImpl>(*d->core_, *d->loop_, *d->blobs_,
                                                         *d->store_, *d->auth_, clock,
                                                         *d->retention_, *d->blob_quota_);
  d->agent_service_ =
      std::make_unique<AgentServiceImpl>(*d->core_, *d->loop_, *d->logs_, *d->identity_);
  d->identity_service_ =
      std::make_unique<NodeIdentityServiceImpl>(*d->identity_, *d->agent_service_, *d->auth_);
  d->blob_service_ = std::make_unique<BlobServiceImpl>(*d->blobs_, *d->store_, *d->core_,
                                                       *d->auth_, *d->blob_quota_,
                                                       d->metrics_.get());
  // gRPC's standard health service (grpc.health.v1.Health, for load balancers, without
  // credentials) and server reflection (grpcurl; admins only, see call_guard.h). Both are
  // process-wide switches that must come before the builder.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, ServerCredentials(d->tls_), &port);
  // The local admin socket (admin_socket.h): droverd accepts its connections itself to
  // check the peer's uid, then hands them to gRPC with local credentials (auth.cc).
  if (options.admin_socket != "none") {
    std::filesystem::path folder = std::filesystem::path(d->admin_socket_).parent_path();
    if (!folder.empty()) std::filesystem::create_directories(folder, error);
    absl::StatusOr<std::unique_ptr<AdminSocket>> socket = AdminSocket::Listen(d->admin_socket_);
    if (!socket.ok()) {
      d->loop_->Stop();
      d->logs_->Close();
      d->store_->Close();
      return socket.status();
    }
    d->admin_listener_ = *std::move(socket);
    d->admin_listener_->AddTo(builder);
  }
  // Without this, gRPC sets SO_REUSEPORT and a second droverd could share the port.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // Agents send keepalive pings every few seconds to notice a dead network (agent/agent.cc);
  // gRPC's default would answer pings more often than every 5 min with GOAWAY. A peer that
  // pings more often than once a second gets a strike, and GOAWAY at the third.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 1000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 2);
  // Limits per connection (docs/operations.md#limits): an agent holds one stream, a client a
  // few; a peer opening more waits for one to end instead of taking droverd's memory.
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, kMaxConcurrentStreams);
  // A connection without a call for this long is closed (clients reconnect on their next
  // call), so that idle connections do not pile up descriptors.
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, 15 * 60 * 1000);
  // A TLS handshake that is not done in 20 s is dropped (gRPC's default is 120 s).
  builder.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, 20 * 1000);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(RpcMetricsInterceptors(d->metrics_.get()));
  // Audit times are wall time, like certificates, not the scheduling clock.
  interceptors.push_back(AuditInterceptors(*d->store_, *d->auth_, RealClock::Get()));
  interceptors.push_back(ReflectionGuard(*d->auth_));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  builder.RegisterService(d->job_service_.get());
  builder.RegisterService(d->sweep_service_.get());
  builder.RegisterService(d->admin_service_.get());
  builder.RegisterService(d->agent_service_.get());
  builder.RegisterService(d->blob_service_.get());
  builder.RegisterService(d->identity_service_.get());
  // Chunks are up to 1 MiB; specs up to 1 MiB plus the request around them.
  builder.SetMaxReceiveMessageSize(kMaxReceiveMessageBytes);
  d->server_ = builder.BuildAndStart();
  if (d->server_ == nullptr || port == 0) {
    d->server_.reset();
    d->loop_->Stop();
    d->logs_->Close();
    d->store_->Close();
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on '", listen, "'",
        d->admin_socket_.empty() ? "" : absl::StrCat(" or on the admin socket '", d->admin_socket_, "'"),
        "; is another droverd running there, or is the address not on this machine?"));
  }
  if (d->admin_listener_ != nullptr) d->admin_listener_->Start();
  // The HTTP face calls the services above in-process, with each caller's own token
  // (server/http/http_gateway.h); an in-process call is no admin (auth.cc).
  if (!options.http_listen.empty()) {
    http::HttpGatewayOptions http_options;
    http_options.listen = options.http_listen;
    http_options.web_root = options.web_root;
    http_options.in_process_key = in_process_key;
    http_options.spool_dir = options.state_dir + "/http-spool";
    http_options.spool_max_bytes = static_cast<uint64_t>(options.http_spool_max_bytes);
    http_options.limits.max_connections_per_client = options.http_max_connections_per_client;
    http_options.limits.login_burst = options.http_login_burst;
    http_options.limits.login_interval = options.http_login_interval;
    if (!options.http_plain) {
      http_options.certificate_pem = d->tls_.certificate_pem;
      http_options.key_pem = d->tls_.key_pem;
    }
    // A thinned /metrics answer holds up to 20,000 points of each series the run has: a run
    // of many ranks goes past gRPC's default 4 MiB for what a client receives.
    grpc::ChannelArguments gateway_channel;
    gateway_channel.SetMaxReceiveMessageSize(kMaxGatewayAnswerBytes);
    absl::StatusOr<std::unique_ptr<http::HttpGateway>> gateway = http::HttpGateway::Start(
        http_options, d->server_->InProcessChannel(gateway_channel), RealClock::Get());
    if (!gateway.ok()) {
      d->Shutdown();
      return gateway.status();
    }
    d->http_gateway_ = *std::move(gateway);
  }
  std::string host = listen.substr(0, listen.rfind(':'));
  d->address_ = absl::StrCat(host, ":", port);
  d->retention_->Start();
  return d;
}

Droverd::~Droverd() {
  Shutdown();
  if (lock_fd_ >= 0) close(lock_fd_);
  if (data_lock_fd_ >= 0) close(data_lock_fd_);
}

void Droverd::Shutdown() {
  if (stopped_ || server_ == nullptr) return;
  stopped_ = true;
  // Load balancers stop sending calls here first.
  if (grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService()) {
    health->Shutdown();
  }
  if (admin_listener_ != nullptr) admin_listener_->Stop();
  http_gateway_.reset();  // cancels its calls into server_ and closes its connections
  job_service_->StopAccepting();
  sweep_service_->StopAccepting();
  events_.Close(absl::UnavailableError("droverd is shutting down; watch again in a moment"));
  agent_service_->CloseAll();  // agents reconnect to the next droverd; their work goes on
  // Accepted calls finish, up to the grace; the streams closed above end at once. Then the
  // server stops without waiting further: gRPC would also wait, up to the deadline, for
  // every idle client connection to read its GOAWAY, which a client making no call never
  // does.
  absl::Time deadline = absl::Now() + options_.shutdown_grace;
  while (metrics_->rpcs_in_flight.value() > 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  server_->Shutdown(std::chrono::system_clock::now());
  server_->Wait();
  retention_->Stop();  // a pass in progress ends first: it writes through the store
  sweeps_->Stop();     // before the core loop, which it posts to
  loop_->Stop();
  logs_->Close();
  // Every write queued is committed first; then a standby may take over at once.
  if (lease_ != nullptr) lease_->Stop(/*release=*/true);
  store_->Close();
}

}  // namespace drover::server
