// A small blocking HTTP/1.1 client for tests of droverd's HTTP face (docs/http-api.md), on
// Boost.Beast: whole requests, raw bytes (for hostile input), and Server-Sent Event streams
// read event by event. Plain HTTP, or HTTPS trusting a given CA. Every read and write has a
// timeout. One object per connection; used from one thread.
#ifndef DROVER_TESTS_TESTING_HTTP_CLIENT_H_
#define DROVER_TESTS_TESTING_HTTP_CLIENT_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace drover::testing {

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names in lower case; the last of a name
  std::string body;

  std::string Header(const std::string& lower_name) const {
    auto found = headers.find(lower_name);
    return found == headers.end() ? "" : found->second;
  }
};

// One Server-Sent Event.
struct SseEvent {
  std::string event;  // "message" when the event names none
  std::string id;     // empty when it has none
  std::string data;   // the data lines joined with '\n'
};

using Headers = std::vector<std::pair<std::string, std::string>>;

class HttpConnection {
 public:
  // Connects to "HOST:PORT" (a numeric IPv4 address); with `ca_pem`, over TLS verifying the
  // server's certificate against it for `tls_name`; from the local address `source` when
  // given (another loopback address, 127.0.0.2, is another client). UNAVAILABLE when it
  // cannot connect.
  static absl::StatusOr<std::unique_ptr<HttpConnection>> Open(
      const std::string& address, const std::string& ca_pem = "",
      const std::string& tls_name = "localhost", absl::Duration timeout = absl::Seconds(10),
      const std::string& source = "");
  ~HttpConnection();

  // Sends one request (Host and, with a body, Content-Length added) and reads the response.
  absl::StatusOr<HttpResponse> Request(const std::string& method, const std::string& target,
                                       const Headers& headers = {}, const std::string& body = "");
  // Sends `bytes` as they are.
  absl::Status Send(const std::string& bytes);
  // Reads the response to what Send sent (to a HEAD request: `head`, no body follows).
  absl::StatusOr<HttpResponse> ReadResponse(bool head = false);
  // Whether the server closed the connection within `wait` (reading and dropping anything
  // it sends meanwhile).
  bool ClosedWithin(absl::Duration wait);

  // Sends a GET for an event stream and reads the response's header: the response (with
  // an empty body) when it is 200, or the whole error response.
  absl::StatusOr<HttpResponse> OpenEvents(const std::string& target, const Headers& headers = {});
  // The next event of an opened stream (comments skipped); NOT_FOUND when the stream ended,
  // DEADLINE_EXCEEDED after `wait` without one.
  absl::StatusOr<SseEvent> NextEvent(absl::Duration wait = absl::Seconds(30));

 private:
  struct Impl;
  explicit HttpConnection(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// One request on a connection of its own.
absl::StatusOr<HttpResponse> HttpRequest(const std::string& address, const std::string& method,
                                         const std::string& target, const Headers& headers = {},
                                         const std::string& body = "",
                                         const std::string& ca_pem = "");

}  // namespace drover::testing

#endif  // DROVER_TESTS_TESTING_HTTP_CLIENT_H_
