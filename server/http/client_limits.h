// ClientLimits: what one client of the HTTP gateway may take, by its address: connections
// open at once, and logins (a token bucket). A client is an IPv4 address, or an IPv6
// address's /64 network (one host usually holds a whole /64). Pure bookkeeping: the time
// comes from the caller; owned by the gateway's loop and used only on its thread.
//
// Bounded: at most `max_clients` login buckets are kept; a bucket that refilled to the full
// burst is forgotten when room is needed. When every kept bucket is still in use (a flood
// from that many addresses), logins of new addresses wait like a spent bucket's.
#ifndef DROVER_SERVER_HTTP_CLIENT_LIMITS_H_
#define DROVER_SERVER_HTTP_CLIENT_LIMITS_H_

#include <cstddef>
#include <map>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace drover::server::http {

struct ClientLimitsOptions {
  // Connections one client may have open at once; 0: no limit of its own (the gateway's
  // total still holds).
  int max_connections_per_client = 32;
  // Logins (POST /api/v1/login with a well-formed token, right or wrong) one client may
  // make: `login_burst` at once, then one per `login_interval`. login_burst 0: no limit.
  int login_burst = 10;
  absl::Duration login_interval = absl::Seconds(6);
  // Login buckets kept at most.
  size_t max_clients = 65536;
};

class ClientLimits {
 public:
  explicit ClientLimits(ClientLimitsOptions options) : options_(options) {}

  // The client of a peer address as Asio prints it ("192.0.2.7", "2001:db8::1",
  // "::ffff:192.0.2.7"): IPv4 as is (also mapped into IPv6), IPv6 by its /64 ("2001:db8:0:0::/64").
  // Text it cannot read is its own client.
  static std::string ClientOf(absl::string_view address);

  // Counts a connection of `client`; false (and nothing counted) when it has its most.
  bool OpenConnection(const std::string& client);
  // A connection OpenConnection counted closed.
  void CloseConnection(const std::string& client);
  // Connections of `client` open now.
  int Connections(const std::string& client) const;

  // A login of `client` at `now`: zero when it may go on (and it is counted), else how long
  // until it may (a Retry-After).
  absl::Duration TakeLogin(const std::string& client, absl::Time now);

 private:
  struct Bucket {
    double tokens = 0;
    absl::Time at;  // when `tokens` was computed
  };
  // `bucket` refilled up to `now`.
  void Refill(Bucket& bucket, absl::Time now) const;

  const ClientLimitsOptions options_;
  std::map<std::string, int, std::less<>> connections_;
  std::map<std::string, Bucket, std::less<>> logins_;
};

}  // namespace drover::server::http

#endif  // DROVER_SERVER_HTTP_CLIENT_LIMITS_H_
