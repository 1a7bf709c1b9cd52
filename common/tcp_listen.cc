#include "common/tcp_listen.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "boost/asio/ip/address.hpp"

namespace drover {

absl::StatusOr<std::string> ListenOn(boost::asio::ip::tcp::acceptor& acceptor,
                                     absl::string_view flag, const std::string& listen,
                                     absl::string_view example_port) {
  namespace asio = boost::asio;
  using tcp = asio::ip::tcp;
  size_t colon = listen.rfind(':');
  int port = -1;
  std::string host = colon == std::string::npos ? "" : listen.substr(0, colon);
  if (colon == std::string::npos || !absl::SimpleAtoi(listen.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, ": '", listen,
                                                   "' is not HOST:PORT; for example 0.0.0.0:",
                                                   example_port, " or 127.0.0.1:0"));
  }
  bool v6 = host.size() >= 2 && host.front() == '[' && host.back() == ']';
  if (v6) host = host.substr(1, host.size() - 2);
  if (host == "localhost") host = "127.0.0.1";
  boost::system::error_code ec;
  asio::ip::address address = v6 ? asio::ip::address(asio::ip::make_address_v6(host, ec))
                                  : asio::ip::address(asio::ip::make_address_v4(host, ec));
  if (ec) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", flag, ": '", host, "' is not a numeric IP address; use one such as 0.0.0.0"));
  }
  tcp::endpoint wanted(address, static_cast<uint16_t>(port));
  acceptor.open(wanted.protocol(), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(wanted, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("--", flag, ": cannot listen on ", listen, ": ", ec.message()));
  }
  tcp::endpoint bound = acceptor.local_endpoint(ec);
  return v6 ? absl::StrCat("[", host, "]:", bound.port()) : absl::StrCat(host, ":", bound.port());
}

}  // namespace drover
