#include "tests/testing/http_client.h"

#include <chrono>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "boost/asio/connect.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/ssl.hpp"
#include "boost/asio/write.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "boost/beast/ssl.hpp"

namespace drover::testing {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;

std::chrono::milliseconds Chrono(absl::Duration d) {
  return std::chrono::milliseconds(absl::ToInt64Milliseconds(d));
}

template <class Fields>
void CopyHeaders(const Fields& fields, HttpResponse& out) {
  for (const auto& field : fields) {
    out.headers[absl::AsciiStrToLower(std::string(field.name_string()))] =
        std::string(field.value());
  }
}

}  // namespace

struct HttpConnection::Impl {
  asio::io_context io;
  std::unique_ptr<ssl::context> context;
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls;
  beast::flat_buffer buffer;
  std::string host;
  std::string events;  // event stream bytes read and not parsed yet
  bool ended = false;
  absl::Duration timeout;

  beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : *plain; }

  template <class F>
  auto With(F f) {
    if (tls) return f(*tls);
    return f(*plain);
  }

  // Runs the operations started until they completed (each has an expiry).
  void Run() {
    io.restart();
    io.run();
  }

  absl::Status Write(const std::string& bytes) {
    beast::error_code result;
    lowest().expires_after(Chrono(timeout));
    With([&](auto& stream) {
      asio::async_write(stream, asio::buffer(bytes),
                        [&](beast::error_code ec, size_t) { result = ec; });
    });
    Run();
    if (result) return absl::UnavailableError(absl::StrCat("write: ", result.message()));
    return absl::OkStatus();
  }
};

HttpConnection::HttpConnection(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpConnection::~HttpConnection() = default;

absl::StatusOr<std::unique_ptr<HttpConnection>> HttpConnection::Open(const std::string& address,
                                                                     const std::string& ca_pem,
                                                                     const std::string& tls_name,
                                                                     absl::Duration timeout,
                                                                     const std::string& source) {
  auto impl = std::make_unique<Impl>();
  impl->host = address;
  impl->timeout = timeout;
  size_t colon = address.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), &port)) {
    return absl::InvalidArgumentError(absl::StrCat("'", address, "' is not HOST:PORT"));
  }
  beast::error_code ec;
  tcp::endpoint endpoint(asio::ip::make_address(address.substr(0, colon), ec),
                         static_cast<uint16_t>(port));
  if (ec) return absl::InvalidArgumentError(ec.message());
  if (ca_pem.empty()) {
    impl->plain.emplace(impl->io);
  } else {
    impl->context = std::make_unique<ssl::context>(ssl::context::tls_client);
    impl->context->add_certificate_authority(asio::buffer(ca_pem.data(), ca_pem.size()), ec);
    if (ec) return absl::InvalidArgumentError(ec.message());
    impl->context->set_verify_mode(ssl::verify_peer);
    impl->tls.emplace(impl->io, *impl->context);
    impl->tls->set_verify_callback(ssl::host_name_verification(tls_name));
    SSL_set_tlsext_host_name(impl->tls->native_handle(), tls_name.c_str());
  }
  if (!source.empty()) {
    tcp::endpoint local(asio::ip::make_address(source, ec), 0);
    if (ec) return absl::InvalidArgumentError(absl::StrCat("source '", source, "': ", ec.message()));
    impl->lowest().socket().open(local.protocol(), ec);
    if (!ec) impl->lowest().socket().bind(local, ec);
    if (ec) return absl::UnavailableError(absl::StrCat("bind ", source, ": ", ec.message()));
  }
  beast::error_code result;
  impl->lowest().expires_after(Chrono(timeout));
  impl->lowest().async_connect(endpoint, [&](beast::error_code e) { result = e; });
  impl->Run();
  if (result) return absl::UnavailableError(absl::StrCat("connect: ", result.message()));
  if (impl->tls) {
    impl->lowest().expires_after(Chrono(timeout));
    impl->tls->async_handshake(ssl::stream_base::client, [&](beast::error_code e) { result = e; });
    impl->Run();
    if (result) return absl::UnavailableError(absl::StrCat("TLS handshake: ", result.message()));
  }
  impl->lowest().expires_never();
  return std::unique_ptr<HttpConnection>(new HttpConnection(std::move(impl)));
}

absl::Status HttpConnection::Send(const std::string& bytes) { return impl_->Write(bytes); }

absl::StatusOr<HttpResponse> HttpConnection::ReadResponse(bool head) {
  bhttp::response_parser<bhttp::string_body> parser;
  parser.skip(head);
  parser.body_limit(256 << 20);
  parser.header_limit(1 << 20);
  beast::error_code result;
  impl_->lowest().expires_after(Chrono(impl_->timeout));
  impl_->With([&](auto& stream) {
    bhttp::async_read(stream, impl_->buffer, parser,
                      [&](beast::error_code ec, size_t) { result = ec; });
  });
  impl_->Run();
  if (result) return absl::UnavailableError(absl::StrCat("read: ", result.message()));
  HttpResponse out;
  out.status = static_cast<int>(parser.get().result_int());
  CopyHeaders(parser.get(), out);
  out.body = parser.get().body();
  return out;
}

absl::StatusOr<HttpResponse> HttpConnection::Request(const std::string& method,
                                                     const std::string& target,
                                                     const Headers& headers,
                                                     const std::string& body) {
  bhttp::request<bhttp::string_body> request(bhttp::string_to_verb(method), target, 11);
  request.set(bhttp::field::host, impl_->host);
  for (const auto& [name, value] : headers) request.set(name, value);
  request.body() = body;
  if (!body.empty() || method == "POST") request.prepare_payload();
  std::ostringstream text;
  text << request;
  if (absl::Status s = impl_->Write(text.str()); !s.ok()) return s;
  return ReadResponse(method == "HEAD");
}

bool HttpConnection::ClosedWithin(absl::Duration wait) {
  absl::Time deadline = absl::Now() + wait;
  char scratch[4096];
  while (absl::Now() < deadline) {
    beast::error_code result;
    impl_->lowest().expires_after(Chrono(deadline - absl::Now()));
    impl_->With([&](auto& stream) {
      stream.async_read_some(asio::buffer(scratch),
                             [&](beast::error_code ec, size_t) { result = ec; });
    });
    impl_->Run();
    if (result == beast::error::timeout) return false;
    if (result) return true;
  }
  return false;
}

absl::StatusOr<HttpResponse> HttpConnection::OpenEvents(const std::string& target,
                                                        const Headers& headers) {
  bhttp::request<bhttp::empty_body> request(bhttp::verb::get, target, 11);
  request.set(bhttp::field::host, impl_->host);
  request.set(bhttp::field::accept, "text/event-stream");
  for (const auto& [name, value] : headers) request.set(name, value);
  std::ostringstream text;
  text << request;
  if (absl::Status s = impl_->Write(text.str()); !s.ok()) return s;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(64 << 20);
  beast::error_code result;
  impl_->lowest().expires_after(Chrono(impl_->timeout));
  impl_->With([&](auto& stream) {
    bhttp::async_read_header(stream, impl_->buffer, parser,
                             [&](beast::error_code ec, size_t) { result = ec; });
  });
  impl_->Run();
  if (result) return absl::UnavailableError(absl::StrCat("read header: ", result.message()));
  HttpResponse out;
  out.status = static_cast<int>(parser.get().result_int());
  CopyHeaders(parser.get(), out);
  if (out.status != 200) {
    impl_->lowest().expires_after(Chrono(impl_->timeout));
    impl_->With([&](auto& stream) {
      bhttp::async_read(stream, impl_->buffer, parser,
                        [&](beast::error_code ec, size_t) { result = ec; });
    });
    impl_->Run();
    out.body = parser.get().body();
    return out;
  }
  // The rest of the buffer is the start of the stream.
  impl_->events = beast::buffers_to_string(impl_->buffer.data());
  impl_->buffer.consume(impl_->buffer.size());
  return out;
}

absl::StatusOr<SseEvent> HttpConnection::NextEvent(absl::Duration wait) {
  absl::Time deadline = absl::Now() + wait;
  while (true) {
    size_t end = impl_->events.find("\n\n");
    if (end != std::string::npos) {
      std::string block = impl_->events.substr(0, end);
      impl_->events.erase(0, end + 2);
      SseEvent event;
      bool any = false;
      for (absl::string_view line : absl::StrSplit(block, '\n')) {
        if (line.empty() || line.front() == ':') continue;
        size_t colon = line.find(':');
        absl::string_view name = line.substr(0, colon);
        absl::string_view value = colon == absl::string_view::npos ? "" : line.substr(colon + 1);
        if (absl::StartsWith(value, " ")) value.remove_prefix(1);
        any = true;
        if (name == "event") event.event = std::string(value);
        if (name == "id") event.id = std::string(value);
        if (name == "data") {
          if (!event.data.empty()) event.data += "\n";
          event.data += std::string(value);
        }
      }
      if (!any) continue;
      if (event.event.empty()) event.event = "message";
      return event;
    }
    if (impl_->ended) return absl::NotFoundError("the event stream ended");
    if (absl::Now() >= deadline) return absl::DeadlineExceededError("no event in time");
    char scratch[16384];
    beast::error_code result;
    size_t got = 0;
    impl_->lowest().expires_after(Chrono(deadline - absl::Now()));
    impl_->With([&](auto& stream) {
      stream.async_read_some(asio::buffer(scratch), [&](beast::error_code ec, size_t n) {
        result = ec;
        got = n;
      });
    });
    impl_->Run();
    impl_->events.append(scratch, got);
    if (result == beast::error::timeout) {
      return absl::DeadlineExceededError("no event in time");
    }
    if (result) impl_->ended = true;
  }
}

absl::StatusOr<HttpResponse> HttpRequest(const std::string& address, const std::string& method,
                                         const std::string& target, const Headers& headers,
                                         const std::string& body, const std::string& ca_pem) {
  absl::StatusOr<std::unique_ptr<HttpConnection>> connection =
      HttpConnection::Open(address, ca_pem);
  if (!connection.ok()) return connection.status();
  return (*connection)->Request(method, target, headers, body);
}

}  // namespace drover::testing
