#include "server/http/http_gateway.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "boost/asio/ssl/stream.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/ssl.hpp"
#include "common/log.h"
#include "common/tcp_listen.h"
#include "server/http/http_internal.h"

namespace drover::server::http {
namespace internal {

bool CallRegistry::Add(grpc::ClientContext* context, std::function<void()> cancel) {
  absl::MutexLock lock(&mu_);
  if (closed_) return false;
  calls_[context] = std::move(cancel);
  return true;
}

void CallRegistry::Remove(grpc::ClientContext* context) {
  absl::MutexLock lock(&mu_);
  calls_.erase(context);
}

void CallRegistry::Cancel(grpc::ClientContext* context) {
  absl::MutexLock lock(&mu_);
  auto found = calls_.find(context);
  if (found != calls_.end() && found->second) found->second();
}

bool CallRegistry::CloseAndWait(absl::Duration wait) {
  absl::MutexLock lock(&mu_);
  closed_ = true;
  for (auto& [context, cancel] : calls_) {
    if (cancel) cancel();
  }
  auto done = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return calls_.empty(); };
  return mu_.AwaitWithTimeout(absl::Condition(&done), wait);
}

StringResponse JsonResponse(std::string body, int status) {
  StringResponse response;
  response.result(static_cast<unsigned>(status));
  response.set(bhttp::field::content_type, "application/json");
  response.set(bhttp::field::cache_control, "no-store");
  response.body() = std::move(body);
  return response;
}

StringResponse ErrorResponse(int status, const absl::Status& error) {
  return JsonResponse(ErrorBody(error), status);
}

namespace {
// Makes the spool folder (0700) when missing and removes what an earlier droverd left in it
// (the files are nameless while in use; a named one is left only by a crash between its
// creation and its unlink).
absl::Status PrepareSpool(const std::string& dir) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error || ::chmod(dir.c_str(), 0700) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot make the HTTP spool folder '", dir, "'",
        error ? absl::StrCat(": ", error.message()) : "", "; check the state folder's owner"));
  }
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    std::error_code ignored;
    if (entry.is_regular_file(ignored)) std::filesystem::remove(entry.path(), ignored);
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace internal

HttpGateway::Loop::Loop(const HttpGatewayOptions& options, std::shared_ptr<grpc::Channel> channel,
                        const Clock& clock)
    : options(options),
      clock(clock),
      channel(channel),
      jobs(v1::JobService::NewStub(channel)),
      admin(v1::AdminService::NewStub(channel)),
      blobs(v1::BlobService::NewStub(channel)),
      sweeps(v1::SweepService::NewStub(channel)),
      sessions(clock, options.sessions),
      client_limits({.max_connections_per_client = options.limits.max_connections_per_client,
                     .login_burst = options.limits.login_burst,
                     .login_interval = options.limits.login_interval}) {}

void HttpGateway::Loop::Handle(std::shared_ptr<internal::Exchange> exchange,
                               internal::StringRequest request, bool tls) {
  absl::StatusOr<Target> target =
      ParseTarget(absl::string_view(request.target().data(), request.target().size()));
  if (!target.ok()) {
    return exchange->Respond(internal::ErrorResponse(400, target.status()));
  }
  if (IsApiPath(target->path)) {
    internal::ApiRequest api;
    api.target = *std::move(target);
    api.route = MatchRoute(api.target.path);
    api.tls = tls;
    api.http = std::move(request);
    return HandleApi(std::move(exchange), std::move(api));
  }
  ServeStatic(std::move(exchange), request, *target);
}

void HttpGateway::Loop::ServeStatic(std::shared_ptr<internal::Exchange> exchange,
                                    const internal::StringRequest& request,
                                    const Target& target) {
  const bool head = request.method() == internal::bhttp::verb::head;
  if (request.method() != internal::bhttp::verb::get && !head) {
    internal::StringResponse response =
        internal::ErrorResponse(405, absl::InvalidArgumentError("only GET and HEAD here"));
    response.set(internal::bhttp::field::allow, "GET, HEAD");
    return exchange->Respond(std::move(response));
  }
  auto not_found = [&exchange] {
    exchange->Respond(
        internal::ErrorResponse(404, absl::NotFoundError("no such file")));
  };
  if (!web_root.valid()) return not_found();
  std::string path = target.path.substr(1);
  while (!path.empty() && path.back() == '/') path.pop_back();
  if (path.empty()) path = "index.html";
  FileKind kind = FileKind::kMissing;
  absl::StatusOr<UniqueFd> fd = OpenBeneath(web_root.get(), path, O_RDONLY, 0, &kind);
  if (!fd.ok() && kind == FileKind::kMissing) {
    // The app routes in the browser: an unknown page is the app's.
    path = "index.html";
    fd = OpenBeneath(web_root.get(), path, O_RDONLY, 0, &kind);
  }
  if (!fd.ok()) {
    if (kind == FileKind::kSymlink || kind != FileKind::kMissing) {
      Log(LogLevel::kDebug, "http_static_refused",
          {{"path", path}, {"kind", std::string(FileKindName(kind))}});
    }
    return not_found();
  }
  internal::beast::error_code ec;
  internal::FileResponse response;
  internal::beast::file file;
  file.native_handle(fd->release());
  response.body().reset(std::move(file), ec);
  if (ec) return not_found();
  response.result(internal::bhttp::status::ok);
  absl::string_view type = ContentTypeOf(path);
  response.set(internal::bhttp::field::content_type,
               internal::beast::string_view(type.data(), type.size()));
  response.set(internal::bhttp::field::cache_control,
               path == "index.html" ? "no-cache" : "public, max-age=300");
  if (head) {
    internal::StringResponse head_response;
    head_response.result(internal::bhttp::status::ok);
    head_response.set(internal::bhttp::field::content_type,
                      internal::beast::string_view(type.data(), type.size()));
    head_response.content_length(response.body().size());
    exchange->Respond(std::move(head_response));
    return;
  }
  exchange->RespondFile(std::move(response));
}

bool HttpGateway::Loop::AcquireStream(const std::string& key) {
  int& mine = streams_by_key[key];
  if (streams >= limits.max_streams || mine >= limits.max_streams_per_session) {
    if (mine == 0) streams_by_key.erase(key);
    return false;
  }
  ++mine;
  ++streams;
  return true;
}

void HttpGateway::Loop::ReleaseStream(const std::string& key) {
  auto found = streams_by_key.find(key);
  if (found == streams_by_key.end()) return;
  --streams;
  if (--found->second <= 0) streams_by_key.erase(found);
}

absl::StatusOr<std::unique_ptr<HttpGateway>> HttpGateway::Start(
    const HttpGatewayOptions& options, std::shared_ptr<grpc::Channel> channel,
    const Clock& clock) {
  namespace asio = internal::asio;
  const std::string& listen = options.listen;
  const std::string& flag = options.flag;
  internal::beast::error_code ec;
  auto loop = std::make_unique<Loop>(options, std::move(channel), clock);
  if (!options.web_root.empty()) {
    int fd = ::open(options.web_root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--web-root: '", options.web_root,
          "' is not a folder droverd can open; give the built web app's folder (web/dist)"));
    }
    loop->web_root = UniqueFd(fd);
  }
  if (absl::Status spool = internal::PrepareSpool(options.spool_dir); !spool.ok()) return spool;
  const bool tls = !options.certificate_pem.empty() && !options.key_pem.empty();
  if (tls) {
    namespace ssl = asio::ssl;
    loop->ssl = std::make_unique<ssl::context>(ssl::context::tls_server);
    loop->ssl->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                               ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                               ssl::context::no_tlsv1_1,
                           ec);
    if (!ec) {
      loop->ssl->use_certificate_chain(
          asio::buffer(options.certificate_pem.data(), options.certificate_pem.size()), ec);
    }
    if (!ec) {
      loop->ssl->use_private_key(asio::buffer(options.key_pem.data(), options.key_pem.size()),
                                 ssl::context::pem, ec);
    }
    if (ec) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, ": droverd's TLS certificate or key is unusable for HTTPS: ",
                       ec.message()));
    }
  }
  absl::StatusOr<std::string> endpoint = ListenOn(loop->acceptor, flag, listen, "8443");
  if (!endpoint.ok()) return endpoint.status();
  internal::Accept(*loop);
  Loop* running = loop.get();
  loop->thread = std::thread([running] { running->io.run(); });
  return std::unique_ptr<HttpGateway>(new HttpGateway(std::move(loop), *std::move(endpoint), tls));
}

HttpGateway::HttpGateway(std::unique_ptr<Loop> loop, std::string endpoint, bool tls)
    : loop_(std::move(loop)), endpoint_(std::move(endpoint)), tls_(tls) {}

HttpGateway::~HttpGateway() {
  // No new connections; then every gRPC call is cancelled while the loop still runs (a
  // stream's end is handled there), and only then the loop stops. Destroying the I/O
  // context (in ~Loop) destroys the pending handlers and with them the connections.
  internal::asio::post(loop_->io, [loop = loop_.get()] {
    internal::beast::error_code ignored;
    loop->acceptor.close(ignored);
  });
  if (!loop_->calls.CloseAndWait(absl::Seconds(10))) {
    Log(LogLevel::kWarning, "http_calls_not_ended", {});
  }
  loop_->io.stop();
  loop_->thread.join();
}

}  // namespace drover::server::http
