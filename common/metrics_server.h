// MetricsServer: answers Prometheus scrapes (`GET /metrics`) over plain HTTP/1.1 on its own
// thread, with the page a callback renders (usually MetricsRegistry::Render). One request
// per connection, handled in turn: scrapes are rare and small, so there is no need for more.
// A client that sends nothing for 5 s or a request over 16 KiB is dropped. Owned by the
// daemon's composition root; the destructor stops the thread.
#ifndef DROVER_COMMON_METRICS_SERVER_H_
#define DROVER_COMMON_METRICS_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace drover {

class MetricsServer {
 public:
  // Listens on `listen`: "HOST:PORT" with a numeric IPv4 address, "[IPv6]:PORT", or
  // "localhost:PORT"; port 0 picks a free one (see endpoint()). INVALID_ARGUMENT for a
  // malformed address (the message names `flag`), UNAVAILABLE when it cannot be bound.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      const std::string& listen, const std::string& flag, std::function<std::string()> render);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // HOST:PORT actually bound (with the port picked for port 0).
  const std::string& endpoint() const { return endpoint_; }

 private:
  MetricsServer(int listen_fd, int wake_fd, std::string endpoint,
                std::function<std::string()> render);
  void Serve();
  void Answer(int fd);

  const int listen_fd_;
  const int wake_fd_;  // eventfd: written by the destructor to end Serve()
  const std::string endpoint_;
  const std::function<std::string()> render_;
  std::thread thread_;
};

}  // namespace drover

#endif  // DROVER_COMMON_METRICS_SERVER_H_
