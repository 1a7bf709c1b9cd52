#include "common/metrics_server.h"

#include <chrono>
#include <thread>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/tcp_listen.h"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/post.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"

namespace drover {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

constexpr absl::string_view kPageType = "text/plain; version=0.0.4; charset=utf-8";

std::chrono::milliseconds Chrono(absl::Duration d) {
  return std::chrono::milliseconds(absl::ToInt64Milliseconds(d));
}

// One connection: reads the request's header within the timeout, answers, closes. Lives as
// long as an operation of its own is pending (shared_from_this).
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, const MetricsServer::Limits& limits,
          const std::function<std::string()>& render, int* connections)
      : stream_(std::move(socket)), limits_(limits), render_(render), connections_(connections) {
    ++*connections_;
    parser_.header_limit(static_cast<uint32_t>(limits_.max_request_bytes));
  }
  ~Session() { --*connections_; }

  void Start() {
    stream_.expires_after(Chrono(limits_.client_timeout));  // the whole header, not per read
    http::async_read_header(
        stream_, buffer_, parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

 private:
  void OnRead(beast::error_code ec) {
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
      return Answer(http::status::request_header_fields_too_large, "request too large\n");
    }
    if (ec == beast::error::timeout || ec == http::error::end_of_stream ||
        ec == asio::error::operation_aborted || ec == asio::error::eof) {
      return;  // the client went away or took too long: nothing to answer
    }
    if (ec) return Answer(http::status::bad_request, "malformed request\n");
    const auto& request = parser_.get();
    absl::string_view target(request.target().data(), request.target().size());
    target = target.substr(0, target.find('?'));
    const bool head = request.method() == http::verb::head;
    if (request.method() != http::verb::get && !head) {
      return Answer(http::status::method_not_allowed, "only GET /metrics\n");
    }
    if (target != "/metrics") {
      return Answer(http::status::not_found, "not found; metrics are at /metrics\n", head);
    }
    Answer(http::status::ok, render_(), head, kPageType);
  }

  void Answer(http::status status, std::string body, bool head = false,
              absl::string_view type = "text/plain") {
    response_.result(status);
    response_.version(11);
    response_.set(http::field::content_type, beast::string_view(type.data(), type.size()));
    if (status == http::status::method_not_allowed) response_.set(http::field::allow, "GET, HEAD");
    response_.keep_alive(false);
    response_.content_length(body.size());
    if (!head) response_.body() = std::move(body);
    stream_.expires_after(Chrono(limits_.client_timeout));
    http::async_write(stream_, response_,
                      [self = shared_from_this()](beast::error_code, size_t) {
                        beast::error_code ignored;
                        self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
                      });
  }

  beast::tcp_stream stream_;
  const MetricsServer::Limits& limits_;
  const std::function<std::string()>& render_;
  int* const connections_;
  beast::flat_buffer buffer_;
  http::request_parser<http::empty_body> parser_;
  http::response<http::string_body> response_;
};

}  // namespace

struct MetricsServer::Loop {
  Loop(Limits limits, std::function<std::string()> render)
      : limits(limits), render(std::move(render)) {}

  void Accept() {
    acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
      if (!ec) {
        if (connections >= limits.max_connections) {
          Refuse(socket);
        } else {
          std::make_shared<Session>(std::move(socket), limits, render, &connections)->Start();
        }
      }
      Accept();
    });
  }

  // Over the cap: one non-blocking attempt to say so, then the connection is closed. Costs
  // no state, so that a flood of connections cannot grow the server.
  static void Refuse(tcp::socket& socket) {
    static constexpr absl::string_view kBusy =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
        "Content-Length: 21\r\nConnection: close\r\n\r\ntoo many connections\n";
    beast::error_code ignored;
    socket.non_blocking(true, ignored);
    socket.write_some(asio::buffer(kBusy.data(), kBusy.size()), ignored);
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
  }

  const Limits limits;
  const std::function<std::string()> render;
  int connections = 0;  // open sessions; on the loop's thread (and in ~Loop, after it)
  asio::io_context io{1};
  tcp::acceptor acceptor{io};
  std::thread thread;
};

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& listen, const std::string& flag, std::function<std::string()> render,
    const Limits& limits) {
  auto loop = std::make_unique<Loop>(limits, std::move(render));
  absl::StatusOr<std::string> endpoint = ListenOn(loop->acceptor, flag, listen, "9102");
  if (!endpoint.ok()) return endpoint.status();
  loop->Accept();
  Loop* running = loop.get();
  loop->thread = std::thread([running] { running->io.run(); });
  return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(loop), *std::move(endpoint)));
}

MetricsServer::MetricsServer(std::unique_ptr<Loop> loop, std::string endpoint)
    : loop_(std::move(loop)), endpoint_(std::move(endpoint)) {}

MetricsServer::~MetricsServer() {
  // Stopping the loop leaves the pending operations unrun; destroying the io_context (in
  // ~Loop, after the acceptor) destroys their handlers, and with them the sessions and
  // their sockets.
  loop_->io.stop();
  loop_->thread.join();
}

}  // namespace drover
