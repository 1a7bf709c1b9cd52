// MetricsServer: answers Prometheus scrapes (`GET /metrics`, and HEAD) over HTTP/1.1 with the
// page a callback renders (usually MetricsRegistry::Render), on Boost.Beast. One thread runs
// every connection asynchronously; each connection carries one request and is closed after
// the answer. Limits (see Limits), so that no client can hold the endpoint: connections open
// at once (more are answered 503 and closed), bytes of request headers (431), and a time for
// reading the request and again for writing the answer, whatever the client sends meanwhile
// (a client that trickles its headers is dropped). Other paths get 404, other methods 405
// (with `Allow`). Owned by the daemon's composition root; `render` runs on the server's
// thread; the destructor stops the thread and closes every connection.
#ifndef DROVER_COMMON_METRICS_SERVER_H_
#define DROVER_COMMON_METRICS_SERVER_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace drover {

// What one MetricsServer allows its clients.
struct MetricsServerLimits {
  // Bytes of a request's line and headers.
  size_t max_request_bytes = 16 * 1024;
  // Connections open at once.
  int max_connections = 32;
  // For reading a request's header, and again for writing the answer.
  absl::Duration client_timeout = absl::Seconds(5);
};

class MetricsServer {
 public:
  using Limits = MetricsServerLimits;

  // Listens on `listen`: "HOST:PORT" with a numeric IPv4 address, "[IPv6]:PORT", or
  // "localhost:PORT"; port 0 picks a free one (see endpoint()). INVALID_ARGUMENT for a
  // malformed address (the message names `flag`), UNAVAILABLE when it cannot be bound.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      const std::string& listen, const std::string& flag, std::function<std::string()> render,
      const Limits& limits = Limits());
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // HOST:PORT actually bound (with the port picked for port 0).
  const std::string& endpoint() const { return endpoint_; }

 private:
  struct Loop;  // the Asio loop, the acceptor and the thread (metrics_server.cc)
  MetricsServer(std::unique_ptr<Loop> loop, std::string endpoint);

  std::unique_ptr<Loop> loop_;
  const std::string endpoint_;
};

}  // namespace drover

#endif  // DROVER_COMMON_METRICS_SERVER_H_
