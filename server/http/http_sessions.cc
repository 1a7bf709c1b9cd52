#include "server/http/http_sessions.h"

#include <sys/random.h>

#include <cerrno>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/archive/sha256.h"

namespace drover::server::http {

absl::StatusOr<std::string> RandomToken() {
  unsigned char bytes[32];
  size_t got = 0;
  while (got < sizeof bytes) {
    ssize_t n = getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return absl::InternalError("cannot read the kernel's random source (getrandom)");
    got += static_cast<size_t>(n);
  }
  std::string encoded;
  absl::WebSafeBase64Escape(
      absl::string_view(reinterpret_cast<const char*>(bytes), sizeof bytes), &encoded);
  return encoded;
}

absl::StatusOr<std::string> SessionStore::Create(absl::string_view token, absl::string_view user,
                                                 SessionInfo* info) {
  absl::StatusOr<std::string> id = RandomToken();
  if (!id.ok()) return id.status();
  absl::StatusOr<std::string> csrf = RandomToken();
  if (!csrf.ok()) return csrf.status();
  const absl::Time now = clock_.Now();
  while (!sessions_.empty() && sessions_.size() >= limits_.max_sessions) {
    auto oldest = sessions_.begin();
    for (auto it = sessions_.begin(); it != sessions_.end(); ++it) {
      if (it->second.last_used < oldest->second.last_used) oldest = it;
    }
    sessions_.erase(oldest);
  }
  Session session;
  session.info.key = archive::Sha256Digest(*id);
  session.info.token = std::string(token);
  session.info.csrf_token = *std::move(csrf);
  session.info.user = std::string(user);
  session.created = now;
  session.last_used = now;
  *info = session.info;
  sessions_[session.info.key] = std::move(session);
  return id;
}

std::optional<SessionInfo> SessionStore::Find(absl::string_view id) {
  if (id.size() != 43) return std::nullopt;  // not one of ours; not worth hashing
  auto found = sessions_.find(archive::Sha256Digest(id));
  if (found == sessions_.end()) return std::nullopt;
  const absl::Time now = clock_.Now();
  Session& session = found->second;
  if (now - session.last_used >= limits_.idle || now - session.created >= limits_.absolute) {
    sessions_.erase(found);
    return std::nullopt;
  }
  session.last_used = now;
  return session.info;
}

void SessionStore::End(absl::string_view key) {
  auto found = sessions_.find(key);
  if (found != sessions_.end()) sessions_.erase(found);
}

void SessionStore::EndToken(absl::string_view token) {
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    it = it->second.info.token == token ? sessions_.erase(it) : std::next(it);
  }
}

}  // namespace drover::server::http
