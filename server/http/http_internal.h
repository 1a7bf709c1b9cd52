// Internals shared by the HTTP gateway's files: the loop's state (HttpGateway::Loop), the
// answer of one request whatever its transport (Exchange; a connection of http_connection.cc), and the registry of gRPC calls
// in flight. Everything here but CallRegistry is used on the loop's thread only.
#ifndef DROVER_SERVER_HTTP_HTTP_INTERNAL_H_
#define DROVER_SERVER_HTTP_HTTP_INTERNAL_H_

#include <grpcpp/client_context.h>

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/post.hpp"
#include "boost/asio/ssl/context.hpp"
#include "boost/beast/http.hpp"
#include "common/clock.h"
#include "common/safe_open.h"
#include "drover/v1/admin_service.grpc.pb.h"
#include "drover/v1/blob.grpc.pb.h"
#include "drover/v1/job_service.grpc.pb.h"
#include "drover/v1/sweep_service.grpc.pb.h"
#include "server/http/client_limits.h"
#include "server/http/http_gateway.h"
#include "server/http/spool_budget.h"
#include "server/http/http_rules.h"
#include "server/http/http_sessions.h"

namespace drover::server::http::internal {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using StringRequest = bhttp::request<bhttp::string_body>;
using StringResponse = bhttp::response<bhttp::string_body>;
using FileResponse = bhttp::response<bhttp::file_body>;

// The gRPC calls the gateway has in flight, so that its end cancels them and waits until
// gRPC is done with each. Thread-safe.
class CallRegistry {
 public:
  // Registers `context` with how to cancel it (called on the caller's thread, at most once,
  // while registered). False once Close() was called: the call must not start.
  bool Add(grpc::ClientContext* context, std::function<void()> cancel);
  // The call of `context` is over (its last callback ran).
  void Remove(grpc::ClientContext* context);
  // Cancels the call of `context` if it is still in flight.
  void Cancel(grpc::ClientContext* context);
  // Refuses new calls, cancels every call in flight and waits up to `wait` for them to end.
  // False when some did not end in time.
  bool CloseAndWait(absl::Duration wait);

 private:
  absl::Mutex mu_;
  std::map<grpc::ClientContext*, std::function<void()>> calls_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

// The answer to one request: a response, or an event stream. The API code calls exactly one
// of Respond, RespondFile and BeginEvents. On the loop thread.
class Exchange {
 public:
  virtual ~Exchange() = default;
  // Sends `response` (the gateway adds its security headers, the keep-alive decision and
  // the length); the connection then reads its next request or closes.
  virtual void Respond(StringResponse response) = 0;
  // `sent` (when set) runs on the loop thread once the file is sent or the sending failed,
  // when the response and its file are gone.
  virtual void RespondFile(FileResponse response, std::function<void()> sent = nullptr) = 0;
  // Starts an event stream: sends the header. `on_drained` runs when the backlog of events
  // not yet written fell below half the limit after it exceeded it; `on_gone` runs once
  // when the client went away or could not take what was sent (never after EndEvents).
  virtual void BeginEvents(std::function<void()> on_drained, std::function<void()> on_gone) = 0;
  // Queues one event's text ("event: ...\ndata: ...\n\n").
  virtual void SendEvent(std::string text) = 0;
  // Bytes queued and not yet written.
  virtual size_t Backlog() const = 0;
  // Closes the stream once everything queued was written.
  virtual void EndEvents() = 0;
  // The client the request came from (ClientLimits::ClientOf its address).
  virtual const std::string& client() const = 0;
};

// A JSON answer, and the error answer `{"error": ...}` with `status`.
StringResponse JsonResponse(std::string body, int status = 200);
StringResponse ErrorResponse(int status, const absl::Status& error);

// Accepts the next connection on `loop.acceptor` (within the caps; http_connection.cc) and
// again after it, until the acceptor is closed.
void Accept(HttpGateway::Loop& loop);

// One API request as the gateway understood it.
struct ApiRequest {
  StringRequest http;
  Target target;
  RouteMatch route;
  bool tls = false;
  std::string token;                   // the user token calls are made with; empty: none
  std::optional<SessionInfo> session;  // when the token came from the session cookie
  std::string stream_key;              // whose event streams these are (session or token)
};

}  // namespace drover::server::http::internal

namespace drover::server::http {

// Everything the gateway's loop thread owns. The I/O context is declared last so that its
// destruction (which destroys pending handlers and with them the connections) comes first.
struct HttpGateway::Loop {
  Loop(const HttpGatewayOptions& options, std::shared_ptr<grpc::Channel> channel,
       const Clock& clock);

  // Serves one request (http_gateway.cc: static files; http_api.cc: the API).
  void Handle(std::shared_ptr<internal::Exchange> exchange, internal::StringRequest request,
              bool tls);
  void HandleApi(std::shared_ptr<internal::Exchange> exchange, internal::ApiRequest request);
  void ServeStatic(std::shared_ptr<internal::Exchange> exchange,
                   const internal::StringRequest& request, const Target& target);

  // Event stream accounting for `key`: false (and nothing counted) beyond the limits.
  bool AcquireStream(const std::string& key);
  void ReleaseStream(const std::string& key);

  const HttpGatewayOptions options;
  const HttpGatewayLimits& limits = options.limits;
  const Clock& clock;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::JobService::Stub> jobs;
  std::unique_ptr<v1::AdminService::Stub> admin;
  std::unique_ptr<v1::BlobService::Stub> blobs;
  std::unique_ptr<v1::SweepService::Stub> sweeps;
  internal::CallRegistry calls;
  SessionStore sessions;
  UniqueFd web_root;  // O_PATH folder; invalid without --web-root
  std::unique_ptr<boost::asio::ssl::context> ssl;  // null: plain HTTP
  int connections = 0;
  ClientLimits client_limits;  // per client address: connections, logins
  SpoolBudget spool{options.spool_max_bytes};  // output files being sent (http_outputs.cc)
  int streams = 0;
  int metric_reads = 0;  // /metrics answers being gathered (http_api.cc)
  int output_reads = 0;  // /outputs answers being read (http_outputs.cc)
  std::map<std::string, int> streams_by_key;
  std::thread thread;
  boost::asio::io_context io{1};
  boost::asio::ip::tcp::acceptor acceptor{io};
};

}  // namespace drover::server::http

#endif  // DROVER_SERVER_HTTP_HTTP_INTERNAL_H_
