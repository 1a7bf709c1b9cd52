// One HTTP client connection of the gateway (http_gateway.h): accepting it within the
// connection caps, TLS or plain, reading requests one at a time, writing each answer (a
// response, a spooled file, or an event stream) with the security headers every answer
// carries. The loop's state and the request handling are in http_gateway.cc and
// http_api.cc. On the loop thread.
#include <chrono>
#include <deque>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "boost/asio/ssl/stream.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/asio/write.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/ssl.hpp"
#include "common/log.h"
#include "server/http/http_gateway.h"
#include "server/http/http_internal.h"

namespace drover::server::http::internal {
namespace {

using tcp = asio::ip::tcp;
namespace ssl = asio::ssl;

std::chrono::milliseconds Chrono(absl::Duration d) {
  return std::chrono::milliseconds(absl::ToInt64Milliseconds(d));
}

// The headers every answer carries (docs/http-api.md).
template <class Fields>
void AddSecurityHeaders(Fields& fields) {
  fields.set("Content-Security-Policy",
             "default-src 'self'; img-src 'self' data:; style-src 'self'; "
             "frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
  fields.set("X-Content-Type-Options", "nosniff");
  fields.set("Referrer-Policy", "no-referrer");
  fields.set("X-Frame-Options", "DENY");
}

template <class Stream>
tcp::socket& Socket(Stream& stream) {
  return beast::get_lowest_layer(stream).socket();
}

// One client connection over `Stream` (beast::tcp_stream, or TLS over it): reads requests
// one at a time (keep-alive), hands each to the loop, writes its answer, and for an event
// stream writes events until either side ends it. Lives while an operation of its own is
// pending (shared_from_this).
template <class Stream>
class Connection final : public Exchange,
                         public std::enable_shared_from_this<Connection<Stream>> {
 public:
  // `client` has been counted (ClientLimits::OpenConnection); the destructor uncounts it.
  template <class... Args>
  Connection(HttpGateway::Loop& loop, std::string client, Args&&... args)
      : loop_(loop),
        client_(std::move(client)),
        stream_(std::forward<Args>(args)...),
        buffer_(loop.limits.max_header_bytes + loop.limits.max_body_bytes + 4096) {
    ++loop_.connections;
  }
  ~Connection() override {
    --loop_.connections;
    loop_.client_limits.CloseConnection(client_);
  }

  const std::string& client() const override { return client_; }

  void Start() {
    if constexpr (kTls) {
      beast::get_lowest_layer(stream_).expires_after(Chrono(loop_.limits.read_timeout));
      stream_.async_handshake(ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (ec) return self->Close();
                                self->ReadRequest(/*first=*/true);
                              });
    } else {
      ReadRequest(/*first=*/true);
    }
  }

  void Respond(StringResponse response) override {
    if (!response.has_content_length()) response.prepare_payload();  // HEAD sets its own
    Send(std::make_shared<StringResponse>(std::move(response)));
  }

  // A file (a static file, a job's output of any size) goes out piece by piece, each piece
  // with its own `write_timeout`: a slow client that keeps taking bytes keeps the download.
  void RespondFile(FileResponse response, std::function<void()> sent) override {
    response.prepare_payload();
    // `sent` runs when the last reference to the message (and its file) goes, whichever way
    // the sending ended.
    auto message = std::shared_ptr<FileResponse>(
        new FileResponse(std::move(response)), [sent = std::move(sent)](FileResponse* m) {
          delete m;
          if (sent) sent();
        });
    message->version(11);
    AddSecurityHeaders(*message);
    message->keep_alive(keep_alive_);
    auto serializer = std::make_shared<bhttp::response_serializer<bhttp::file_body>>(*message);
    WriteFilePiece(message, serializer);
  }

  void BeginEvents(std::function<void()> on_drained, std::function<void()> on_gone) override {
    on_drained_ = std::move(on_drained);
    on_gone_ = std::move(on_gone);
    events_ = true;
    bhttp::response<bhttp::empty_body> header;
    header.version(11);
    header.result(bhttp::status::ok);
    header.set(bhttp::field::content_type, "text/event-stream");
    header.set(bhttp::field::cache_control, "no-store");
    header.set("X-Accel-Buffering", "no");
    header.set(bhttp::field::connection, "close");  // the body ends when the stream closes
    AddSecurityHeaders(header);
    std::ostringstream text;
    text << header.base();
    SendEvent(text.str());
    // The client sends nothing more; a read notices when it goes away.
    WatchForClose();
    ArmKeepalive();
  }

  void SendEvent(std::string text) override {
    if (closed_ || ending_) return;
    backlog_ += text.size();
    if (backlog_ > loop_.limits.max_stream_backlog) over_limit_ = true;
    queue_.push_back(std::move(text));
    if (!writing_) WriteNext();
  }

  size_t Backlog() const override { return backlog_; }

  void EndEvents() override {
    ending_ = true;
    on_gone_ = nullptr;
    if (!writing_) Close();
  }

 private:
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;
  // What a lingering close reads and drops at most.
  static constexpr size_t kMaxLingerBytes = 1 << 20;

  void ReadRequest(bool first) {
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(loop_.limits.max_header_bytes));
    parser_->body_limit(loop_.limits.max_body_bytes);
    beast::get_lowest_layer(stream_).expires_after(
        Chrono(first ? loop_.limits.read_timeout : loop_.limits.idle_timeout));
    bhttp::async_read(stream_, buffer_, *parser_,
                      [self = this->shared_from_this()](beast::error_code ec, size_t) {
                        self->OnRead(ec);
                      });
  }

  void OnRead(beast::error_code ec) {
    beast::get_lowest_layer(stream_).expires_never();
    if (ec == bhttp::error::header_limit || ec == bhttp::error::buffer_overflow) {
      keep_alive_ = false;
      return Respond(ErrorResponse(
          431, absl::InvalidArgumentError("the request's line and headers are too large")));
    }
    if (ec == bhttp::error::body_limit) {
      keep_alive_ = false;
      return Respond(ErrorResponse(
          413, absl::InvalidArgumentError(absl::StrCat("the request body is larger than ",
                                                       loop_.limits.max_body_bytes,
                                                       " bytes"))));
    }
    if (ec == beast::error::timeout || ec == bhttp::error::end_of_stream ||
        ec == asio::error::operation_aborted || ec == asio::error::eof ||
        ec == asio::error::connection_reset || ec == ssl::error::stream_truncated) {
      return Close();  // the client went away or took too long: nothing to answer
    }
    if (ec) {
      keep_alive_ = false;
      return Respond(
          ErrorResponse(400, absl::InvalidArgumentError("malformed HTTP request")));
    }
    StringRequest request = parser_->release();
    keep_alive_ = request.keep_alive();
    loop_.Handle(this->shared_from_this(), std::move(request), kTls);
  }

  template <class Response>
  void Send(std::shared_ptr<Response> response) {
    response->version(11);
    AddSecurityHeaders(*response);
    response->keep_alive(keep_alive_);
    beast::get_lowest_layer(stream_).expires_after(Chrono(loop_.limits.write_timeout));
    bhttp::async_write(stream_, *response,
                       [self = this->shared_from_this(), response](beast::error_code ec, size_t) {
                         beast::get_lowest_layer(self->stream_).expires_never();
                         if (ec) return self->Close();
                         if (!self->keep_alive_) return self->LingeringClose();
                         self->ReadRequest(/*first=*/false);
                       });
  }

  void WriteFilePiece(std::shared_ptr<FileResponse> message,
                      std::shared_ptr<bhttp::response_serializer<bhttp::file_body>> serializer) {
    beast::get_lowest_layer(stream_).expires_after(Chrono(loop_.limits.write_timeout));
    bhttp::async_write_some(
        stream_, *serializer,
        [self = this->shared_from_this(), message, serializer](beast::error_code ec, size_t) {
          beast::get_lowest_layer(self->stream_).expires_never();
          if (ec) return self->Close();
          if (!serializer->is_done()) return self->WriteFilePiece(message, serializer);
          if (!self->keep_alive_) return self->LingeringClose();
          self->ReadRequest(/*first=*/false);
        });
  }

  // Ends a connection whose client may still be sending (a request refused before its end:
  // 431, 413): our side is shut, and what the client sends is read and dropped for a moment,
  // so that its kernel does not get a reset that discards the answer before it was read.
  void LingeringClose() {
    beast::error_code ignored;
    Socket(stream_).shutdown(tcp::socket::shutdown_send, ignored);
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(2));
    Drain(0);
  }

  void Drain(size_t drained) {
    if (closed_ || drained > kMaxLingerBytes) return Close();
    beast::get_lowest_layer(stream_).async_read_some(
        asio::buffer(discard_, sizeof discard_),
        [self = this->shared_from_this(), drained](beast::error_code ec, size_t n) {
          if (ec) return self->Close();
          self->Drain(drained + n);
        });
  }

  void WriteNext() {
    if (queue_.empty()) {
      writing_ = false;
      if (ending_) Close();
      return;
    }
    writing_ = true;
    beast::get_lowest_layer(stream_).expires_after(Chrono(loop_.limits.write_timeout));
    asio::async_write(stream_, asio::buffer(queue_.front()),
                      [self = this->shared_from_this()](beast::error_code ec, size_t) {
                        beast::get_lowest_layer(self->stream_).expires_never();
                        if (ec) return self->Gone();
                        self->backlog_ -= self->queue_.front().size();
                        self->queue_.pop_front();
                        if (self->over_limit_ &&
                            self->backlog_ <= self->loop_.limits.max_stream_backlog / 2) {
                          self->over_limit_ = false;
                          if (self->on_drained_) self->on_drained_();
                        }
                        self->WriteNext();
                      });
  }

  void WatchForClose() {
    stream_.async_read_some(asio::buffer(discard_, sizeof discard_),
                            [self = this->shared_from_this()](beast::error_code ec, size_t) {
                              if (ec) return self->Gone();
                              self->WatchForClose();  // whatever it sends is ignored
                            });
  }

  void ArmKeepalive() {
    keepalive_.expires_after(Chrono(loop_.limits.keepalive_interval));
    keepalive_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
      if (ec || self->closed_ || self->ending_) return;
      if (self->queue_.empty()) self->SendEvent(": keep-alive\n\n");
      self->ArmKeepalive();
    });
  }

  // The client went away or cannot keep up.
  void Gone() {
    if (closed_) return;
    auto gone = std::move(on_gone_);
    on_gone_ = nullptr;
    Close();
    if (gone) gone();
  }

  void Close() {
    if (closed_) return;
    closed_ = true;
    keepalive_.cancel();
    beast::error_code ignored;
    Socket(stream_).shutdown(tcp::socket::shutdown_both, ignored);
    Socket(stream_).close(ignored);
    on_drained_ = nullptr;
  }

  HttpGateway::Loop& loop_;
  const std::string client_;
  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  bool keep_alive_ = false;
  bool closed_ = false;
  // Event streams.
  bool events_ = false;
  bool writing_ = false;
  bool ending_ = false;
  bool over_limit_ = false;
  std::deque<std::string> queue_;
  size_t backlog_ = 0;
  std::function<void()> on_drained_;
  std::function<void()> on_gone_;
  asio::steady_timer keepalive_{beast::get_lowest_layer(stream_).socket().get_executor()};
  char discard_[512];
};

// Over a cap: one non-blocking attempt to say so (`answer`, a whole plain HTTP response),
// then the connection is closed.
void Refuse(tcp::socket& socket, absl::string_view answer) {
  beast::error_code ignored;
  socket.non_blocking(true, ignored);
  socket.write_some(asio::buffer(answer.data(), answer.size()), ignored);
  socket.shutdown(tcp::socket::shutdown_both, ignored);
  socket.close(ignored);
}

constexpr absl::string_view kTooManyConnections =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
    "Content-Length: 21\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
    "too many connections\n";
constexpr absl::string_view kTooManyFromClient =
    "HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\n"
    "Content-Length: 39\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
    "too many connections from your address\n";

}  // namespace

void Accept(HttpGateway::Loop& loop) {
  loop.acceptor.async_accept([&loop](beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !loop.acceptor.is_open()) return;
    if (!ec) {
      beast::error_code peer_error;
      tcp::endpoint peer = socket.remote_endpoint(peer_error);
      std::string client =
          peer_error ? std::string("unknown") : ClientLimits::ClientOf(peer.address().to_string());
      if (loop.connections >= loop.limits.max_connections) {
        Refuse(socket, kTooManyConnections);
      } else if (!loop.client_limits.OpenConnection(client)) {
        Log(LogLevel::kDebug, "http_client_refused", {{"client", client}});
        Refuse(socket, kTooManyFromClient);
      } else if (loop.ssl != nullptr) {
        std::make_shared<Connection<beast::ssl_stream<beast::tcp_stream>>>(
            loop, std::move(client), std::move(socket), *loop.ssl)
            ->Start();
      } else {
        std::make_shared<Connection<beast::tcp_stream>>(loop, std::move(client),
                                                        std::move(socket))
            ->Start();
      }
    }
    Accept(loop);
  });
}

}  // namespace drover::server::http::internal
