// HttpGateway: droverd's HTTP face (docs/http-api.md). A JSON API over the drover.v1
// messages, live logs, job changes and metrics as Server-Sent Events, and the web app's
// static files, on Boost.Beast, over TLS with droverd's own certificate (or plain HTTP when
// no certificate is given).
//
// The gateway decides nothing about who may do what: every API request becomes a call of
// droverd's own gRPC services through `channel` (an in-process channel to droverd's
// server), with the caller's user token as its `authorization`, so that authentication,
// roles, job ownership, redaction and the audit are exactly gRPC's (server/auth.h,
// server/authz.h). The token comes from the request's `Authorization: Bearer` header or from
// a login session (http_sessions.h); the cross-site rules for cookie sessions are in
// http_rules.h.
//
// Threads: one thread runs every connection asynchronously (Asio); gRPC calls are made with
// the callback API and their completions posted back to that thread, so no client, however
// slow, holds a thread. Limits (HttpGatewayLimits) bound connections (in all and per client
// address), logins per client address, header and body bytes,
// the time to read a request and to write each piece of an answer, and the event streams
// open per session and in all. Owned by droverd's composition root; the destructor cancels
// every call in flight, waits for them, and closes every connection.
#ifndef DROVER_SERVER_HTTP_HTTP_GATEWAY_H_
#define DROVER_SERVER_HTTP_HTTP_GATEWAY_H_

#include <grpcpp/channel.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "server/http/http_sessions.h"

namespace drover::server::http {

struct HttpGatewayLimits {
  // Connections open at once (more are answered 503 and closed), and per client address
  // (an IPv4 address, an IPv6 /64; more are answered 429 and closed). 0 per client: no
  // limit of its own.
  int max_connections = 256;
  int max_connections_per_client = 32;
  // Logins (POST /api/v1/login with a well-formed token, right or wrong) per client
  // address: `login_burst` at once, then one per `login_interval` (429 with Retry-After
  // beyond). login_burst 0: no limit.
  int login_burst = 10;
  absl::Duration login_interval = absl::Seconds(6);
  // Bytes of a request's line and headers (431 beyond) and of its body (413 beyond).
  size_t max_header_bytes = 16 * 1024;
  size_t max_body_bytes = 64 * 1024;
  // For reading one request, from its first byte (or the TLS handshake) to its end.
  absl::Duration read_timeout = absl::Seconds(10);
  // A kept-alive connection without a new request for this long is closed.
  absl::Duration idle_timeout = absl::Seconds(60);
  // For writing each piece of an answer; a client that does not take it is dropped.
  absl::Duration write_timeout = absl::Seconds(30);
  // Event streams open at once per session (or bearer token), and in all (429 beyond).
  int max_streams_per_session = 16;
  int max_streams = 256;
  // Bytes of events waiting for a slow client before the gateway stops reading the gRPC
  // stream behind it.
  size_t max_stream_backlog = 1 << 20;
  // A comment line is sent on an idle event stream this often.
  absl::Duration keepalive_interval = absl::Seconds(15);
  // Deadline of one unary gRPC call made for a request.
  absl::Duration call_timeout = absl::Seconds(30);
  // Job outputs (GET /jobs/{id}/outputs...) read at once, each on a thread of its own (429
  // beyond), and the most files one listing names (413 beyond).
  int max_output_reads = 4;
  size_t max_listed_outputs = 100000;
};

struct HttpGatewayOptions {
  // "HOST:PORT" (numeric address, "[v6]:PORT" or "localhost:PORT"); port 0 picks one.
  std::string listen;
  // The flag `listen` came from, for messages.
  std::string flag = "http-listen";
  // The web app's files; empty: none (only the API is served).
  std::string web_root;
  // PEM certificate chain and key: served over TLS when both are set, plain HTTP otherwise.
  std::string certificate_pem;
  std::string key_pem;
  // Sent with every call as `drover-in-process-key` (server/auth.h): droverd's proof that
  // the call comes from within itself (the in-process channel has no transport security).
  std::string in_process_key;
  // Where one output file is copied out of its job's outputs archive before it is sent, as
  // a file without a name (O_TMPFILE) that vanishes when sent: a folder of the gateway's own
  // (droverd passes <state-dir>/http-spool), made when missing and emptied at start (files
  // a crashed droverd left). At most `spool_max_bytes` are kept there at once (0: no cap):
  // a download that would pass it is answered 503 with Retry-After, one of a file larger
  // than the cap 413.
  std::string spool_dir = "/tmp/drover-http-spool";
  uint64_t spool_max_bytes = uint64_t{4} << 30;
  HttpGatewayLimits limits;
  SessionLimits sessions;
};

class HttpGateway {
 public:
  // Binds and starts serving. INVALID_ARGUMENT for a malformed address or a `web_root` that
  // is not a folder (the message names the flag), UNAVAILABLE when the address cannot be
  // bound; INVALID_ARGUMENT for unusable TLS material.
  static absl::StatusOr<std::unique_ptr<HttpGateway>> Start(
      const HttpGatewayOptions& options, std::shared_ptr<grpc::Channel> channel,
      const Clock& clock = RealClock::Get());
  ~HttpGateway();
  HttpGateway(const HttpGateway&) = delete;
  HttpGateway& operator=(const HttpGateway&) = delete;

  // HOST:PORT actually bound.
  const std::string& endpoint() const { return endpoint_; }
  // "http" or "https".
  const char* scheme() const { return tls_ ? "https" : "http"; }

  struct Loop;  // everything the loop thread owns (http_gateway.cc)

 private:
  HttpGateway(std::unique_ptr<Loop> loop, std::string endpoint, bool tls);

  std::unique_ptr<Loop> loop_;
  const std::string endpoint_;
  const bool tls_;
};

}  // namespace drover::server::http

#endif  // DROVER_SERVER_HTTP_HTTP_GATEWAY_H_
