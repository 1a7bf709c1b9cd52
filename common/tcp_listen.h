// A TCP listening socket from a daemon's HOST:PORT flag (--metrics-listen, --http-listen):
// the address parsed (IPv4, [IPv6], "localhost" as 127.0.0.1, port 0 for any free one), the
// acceptor opened, bound and listening, and the address it got. Errors name the flag.
#ifndef DROVER_COMMON_TCP_LISTEN_H_
#define DROVER_COMMON_TCP_LISTEN_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "boost/asio/ip/tcp.hpp"

namespace drover {

// Listens on `listen` (the value of --`flag`; `example` is a port shown in the error for a
// value that is not HOST:PORT). Returns "HOST:PORT" with the port bound ("[V6]:PORT" for
// IPv6). INVALID_ARGUMENT for a bad value, UNAVAILABLE when it cannot listen there.
absl::StatusOr<std::string> ListenOn(boost::asio::ip::tcp::acceptor& acceptor,
                                     absl::string_view flag, const std::string& listen,
                                     absl::string_view example_port);

}  // namespace drover

#endif  // DROVER_COMMON_TCP_LISTEN_H_
