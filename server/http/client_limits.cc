// ClientLimits: see client_limits.h.
#include "server/http/client_limits.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace drover::server::http {

std::string ClientLimits::ClientOf(absl::string_view address) {
  std::string text(address);
  unsigned char v6[16];
  if (inet_pton(AF_INET6, text.c_str(), v6) == 1) {
    static constexpr unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(v6, kMapped, sizeof(kMapped)) == 0) {
      return absl::StrFormat("%d.%d.%d.%d", v6[12], v6[13], v6[14], v6[15]);
    }
    return absl::StrFormat("%x:%x:%x:%x::/64", (v6[0] << 8) | v6[1], (v6[2] << 8) | v6[3],
                           (v6[4] << 8) | v6[5], (v6[6] << 8) | v6[7]);
  }
  return text;
}

bool ClientLimits::OpenConnection(const std::string& client) {
  int& open = connections_[client];
  if (options_.max_connections_per_client > 0 && open >= options_.max_connections_per_client) {
    if (open == 0) connections_.erase(client);
    return false;
  }
  ++open;
  return true;
}

void ClientLimits::CloseConnection(const std::string& client) {
  auto it = connections_.find(client);
  if (it == connections_.end()) return;
  if (--it->second <= 0) connections_.erase(it);
}

int ClientLimits::Connections(const std::string& client) const {
  auto it = connections_.find(client);
  return it == connections_.end() ? 0 : it->second;
}

void ClientLimits::Refill(Bucket& bucket, absl::Time now) const {
  if (now <= bucket.at) return;  // a clock gone back refills nothing
  const double added = absl::FDivDuration(now - bucket.at, options_.login_interval);
  bucket.tokens = std::min<double>(options_.login_burst, bucket.tokens + added);
  bucket.at = now;
}

absl::Duration ClientLimits::TakeLogin(const std::string& client, absl::Time now) {
  if (options_.login_burst <= 0 || options_.login_interval <= absl::ZeroDuration()) {
    return absl::ZeroDuration();
  }
  auto it = logins_.find(client);
  if (it == logins_.end()) {
    if (logins_.size() >= options_.max_clients) {
      // Room first: buckets that refilled to the full burst are as good as new.
      for (auto b = logins_.begin(); b != logins_.end();) {
        Refill(b->second, now);
        b = b->second.tokens >= options_.login_burst ? logins_.erase(b) : std::next(b);
      }
      if (logins_.size() >= options_.max_clients) return options_.login_interval;
    }
    it = logins_.emplace(client, Bucket{static_cast<double>(options_.login_burst), now}).first;
  }
  Bucket& bucket = it->second;
  Refill(bucket, now);
  if (bucket.tokens >= 1) {
    bucket.tokens -= 1;
    return absl::ZeroDuration();
  }
  return options_.login_interval * (1 - bucket.tokens);
}

}  // namespace drover::server::http
