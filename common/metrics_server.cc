#include "common/metrics_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace drover {
namespace {

constexpr size_t kMaxRequest = 16 * 1024;
constexpr absl::Duration kClientTimeout = absl::Seconds(5);

// Sends all of `data`, giving up when the client stops reading for kClientTimeout.
void SendAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    pollfd p{fd, POLLOUT, 0};
    if (poll(&p, 1, absl::ToInt64Milliseconds(kClientTimeout)) <= 0) return;
    ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    data.remove_prefix(static_cast<size_t>(n));
  }
}

void Respond(int fd, absl::string_view status, absl::string_view content_type,
             absl::string_view body, bool head) {
  SendAll(fd, absl::StrCat("HTTP/1.1 ", status, "\r\nContent-Type: ", content_type,
                           "\r\nContent-Length: ", body.size(), "\r\nConnection: close\r\n\r\n"));
  if (!head) SendAll(fd, body);
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& listen, const std::string& flag, std::function<std::string()> render) {
  size_t colon = listen.rfind(':');
  int port = -1;
  std::string host = colon == std::string::npos ? "" : listen.substr(0, colon);
  if (colon == std::string::npos || !absl::SimpleAtoi(listen.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", flag, ": '", listen, "' is not HOST:PORT; for example 0.0.0.0:9102 or 127.0.0.1:0"));
  }
  bool v6 = host.size() >= 2 && host.front() == '[' && host.back() == ']';
  if (v6) host = host.substr(1, host.size() - 2);
  if (host == "localhost") host = "127.0.0.1";
  sockaddr_storage address{};
  socklen_t length = 0;
  if (v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&address);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET6, host.c_str(), &a->sin6_addr) == 1) length = sizeof(*a);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&address);
    a->sin_family = AF_INET;
    a->sin_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET, host.c_str(), &a->sin_addr) == 1) length = sizeof(*a);
  }
  if (length == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", flag, ": '", host, "' is not a numeric IP address; use one such as 0.0.0.0"));
  }
  int fd = socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat("--", flag, ": socket: ", std::strerror(errno)));
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), length) != 0 || ::listen(fd, 16) != 0) {
    int error = errno;
    close(fd);
    return absl::UnavailableError(
        absl::StrCat("--", flag, ": cannot listen on ", listen, ": ", std::strerror(error)));
  }
  socklen_t bound_length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &bound_length);
  int bound_port = ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&address)->sin6_port
                            : reinterpret_cast<sockaddr_in*>(&address)->sin_port);
  std::string endpoint = v6 ? absl::StrCat("[", host, "]:", bound_port)
                            : absl::StrCat(host, ":", bound_port);
  int wake = eventfd(0, EFD_CLOEXEC);
  if (wake < 0) {
    int error = errno;
    close(fd);
    return absl::UnavailableError(absl::StrCat("--", flag, ": eventfd: ", std::strerror(error)));
  }
  return std::unique_ptr<MetricsServer>(new MetricsServer(fd, wake, endpoint, std::move(render)));
}

MetricsServer::MetricsServer(int listen_fd, int wake_fd, std::string endpoint,
                             std::function<std::string()> render)
    : listen_fd_(listen_fd),
      wake_fd_(wake_fd),
      endpoint_(std::move(endpoint)),
      render_(std::move(render)),
      thread_([this] { Serve(); }) {}

MetricsServer::~MetricsServer() {
  uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof(one));
  thread_.join();
  close(listen_fd_);
  close(wake_fd_);
}

void MetricsServer::Serve() {
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    Answer(client);
    close(client);
  }
}

void MetricsServer::Answer(int fd) {
  std::string request;
  absl::Time deadline = absl::Now() + kClientTimeout;
  while (request.find("\r\n\r\n") == std::string::npos &&
         request.find("\n\n") == std::string::npos) {
    if (request.size() > kMaxRequest) {
      Respond(fd, "431 Request Header Fields Too Large", "text/plain", "request too large\n",
              false);
      return;
    }
    pollfd fds[2] = {{fd, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    int wait_ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    if (wait_ms <= 0 || poll(fds, 2, wait_ms) <= 0 || fds[1].revents != 0) return;
    char buffer[4096];
    ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    request.append(buffer, static_cast<size_t>(n));
  }
  absl::string_view line(request);
  line = line.substr(0, line.find_first_of("\r\n"));
  size_t first = line.find(' ');
  size_t second = first == absl::string_view::npos ? first : line.find(' ', first + 1);
  if (second == absl::string_view::npos) {
    Respond(fd, "400 Bad Request", "text/plain", "malformed request line\n", false);
    return;
  }
  absl::string_view method = line.substr(0, first);
  absl::string_view target = line.substr(first + 1, second - first - 1);
  target = target.substr(0, target.find('?'));
  bool head = method == "HEAD";
  if (method != "GET" && !head) {
    Respond(fd, "405 Method Not Allowed", "text/plain", "only GET /metrics\n", false);
  } else if (target != "/metrics") {
    Respond(fd, "404 Not Found", "text/plain", "not found; metrics are at /metrics\n", head);
  } else {
    Respond(fd, "200 OK", "text/plain; version=0.0.4; charset=utf-8", render_(), head);
  }
}

}  // namespace drover
