// The HTTP gateway's login sessions: what a browser's `drover_session` cookie stands for.
// A session holds the user token the browser logged in with (every API call is made with
// it, so gRPC checks the user, their role and a revocation on each call) and a CSRF token.
// Session ids are 256 random bits from the kernel's CSPRNG, sent once in the cookie and kept
// here only as their SHA-256, so that a dump of droverd's memory holds no usable id. A
// session ends `idle` after its last use, `absolute` after the login, at logout, or when
// EndUser is told its token was refused. At most `max_sessions` are kept; a login beyond
// ends the least recently used one. Memory only: a restart of droverd ends every session.
//
// Not thread-safe: owned by the gateway's loop thread. Time comes from the Clock.
#ifndef DROVER_SERVER_HTTP_HTTP_SESSIONS_H_
#define DROVER_SERVER_HTTP_HTTP_SESSIONS_H_

#include <cstddef>
#include <map>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace drover::server::http {

struct SessionLimits {
  absl::Duration idle = absl::Hours(12);
  absl::Duration absolute = absl::Hours(24 * 7);
  size_t max_sessions = 10'000;
};

// What a live session gives a request.
struct SessionInfo {
  std::string key;         // the id's hash: names the session without being it
  std::string token;       // the user token every call is made with
  std::string csrf_token;  // what X-Drover-CSRF must carry
  std::string user;        // the user's name at login
};

class SessionStore {
 public:
  SessionStore(const Clock& clock, SessionLimits limits = {}) : clock_(clock), limits_(limits) {}

  // A new session for `token` (already checked by the caller) of `user`. Returns the id for
  // the cookie; `info` gets the session. INTERNAL when the kernel's random source fails.
  absl::StatusOr<std::string> Create(absl::string_view token, absl::string_view user,
                                     SessionInfo* info);
  // The live session of cookie value `id` (its last use now), or nullopt for an unknown,
  // malformed or expired id (an expired one is removed).
  std::optional<SessionInfo> Find(absl::string_view id);
  // Ends the session named by its key (SessionInfo::key); nothing when there is none.
  void End(absl::string_view key);
  // Ends every session made with `token` (its user was revoked, or the token refused).
  void EndToken(absl::string_view token);
  size_t size() const { return sessions_.size(); }

 private:
  struct Session {
    SessionInfo info;
    absl::Time created;
    absl::Time last_used;
  };
  const Clock& clock_;
  const SessionLimits limits_;
  std::map<std::string, Session, std::less<>> sessions_;  // by SessionInfo::key
};

// 32 bytes from the kernel's CSPRNG, base64url without padding (43 characters). INTERNAL
// when getrandom(2) fails.
absl::StatusOr<std::string> RandomToken();

}  // namespace drover::server::http

#endif  // DROVER_SERVER_HTTP_HTTP_SESSIONS_H_
