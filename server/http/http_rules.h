// The HTTP gateway's rules as pure functions, apart from sockets and gRPC so that unit tests
// check each one: how a request target is split and decoded, which API route it names, how a
// gRPC status becomes an HTTP status and an error body, how the session cookie is read and
// written, and when a request with a cookie session is refused as cross-site (CSRF header,
// Origin). docs/http-api.md is the reference. Pure functions; any thread.
#ifndef DROVER_SERVER_HTTP_HTTP_RULES_H_
#define DROVER_SERVER_HTTP_HTTP_RULES_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace drover::server::http {

// The session cookie's name and the CSRF header's.
inline constexpr absl::string_view kSessionCookie = "drover_session";
inline constexpr absl::string_view kCsrfHeader = "X-Drover-CSRF";

// A request target split into its path and its query.
struct Target {
  std::string path;  // percent-decoded; starts with '/'
  // Each query parameter's values in the order given (`?a=1&a=2`: {"a": {"1", "2"}}),
  // names and values percent-decoded, '+' as a space.
  std::map<std::string, std::vector<std::string>> query;

  // The first value of `name`, or nullptr.
  const std::string* First(absl::string_view name) const;
  const std::vector<std::string>& All(absl::string_view name) const;
};

// Splits and decodes `target` ("/api/v1/jobs?state=RUNNING"). INVALID_ARGUMENT for a target
// that does not start with '/', a malformed or NUL percent escape, a path with a `..`
// component or a backslash, or a path or parameter that is not UTF-8 once decoded.
absl::StatusOr<Target> ParseTarget(absl::string_view target);

// The API routes (docs/http-api.md).
enum class Route {
  kNone,  // not an API route (under /api/: 404)
  kLogin,
  kSession,
  kLogout,
  kListJobs,
  kGetJob,
  kCancelJob,
  kWatchJob,
  kJobLogs,
  kJobMetrics,
  kWatchJobMetrics,
  kJobOutputs,
  kJobOutputFile,
  kExperiments,
  kListSweeps,
  kGetSweep,
  kListNodes,
  kCordonNode,
  kUncordonNode,
  kDrainNode,
};

struct RouteMatch {
  Route route = Route::kNone;
  // The method the route takes: "GET" or "POST".
  absl::string_view method;
  std::string job_id;     // routes under /api/v1/jobs/{id}
  std::string node_name;  // routes under /api/v1/nodes/{name}
  std::string sweep_id;   // kGetSweep: /api/v1/sweeps/{id}
  std::string file_path;  // kJobOutputFile: the rest of the path after /outputs/
};

// Whether `path` (decoded) is under /api/.
bool IsApiPath(absl::string_view path);
// The route `path` names, whatever the method (the caller compares `method`); kNone for a
// path that names none.
RouteMatch MatchRoute(absl::string_view path);

// The HTTP status for a gRPC code (docs/http-api.md): INVALID_ARGUMENT and OUT_OF_RANGE 400,
// UNAUTHENTICATED 401, PERMISSION_DENIED 403, NOT_FOUND 404, ALREADY_EXISTS and ABORTED 409,
// FAILED_PRECONDITION 412, RESOURCE_EXHAUSTED 429, UNAVAILABLE 503, others 500 (OK 200).
int HttpStatusOf(absl::StatusCode code);
// `{"error": {"code": "NOT_FOUND", "message": "..."}}` for `status`.
std::string ErrorBody(const absl::Status& status);

// Whether `token` can be a drover user token: "drv_" and base64url characters, at most 256
// bytes. Anything else is refused before it reaches gRPC, whose metadata takes only
// printable ASCII (a control byte there would abort droverd).
bool IsWellFormedToken(absl::string_view token);

// The value of cookie `name` in a `Cookie` header ("a=1; drover_session=xyz"), or nullopt.
std::optional<std::string> CookieValue(absl::string_view cookie_header, absl::string_view name);
// The `Set-Cookie` value that sets the session cookie (`secure` under TLS); an empty `value`
// clears it.
std::string SessionCookie(absl::string_view value, bool secure);

// What the request says about where it comes from, for CrossSiteCheck.
struct RequestOrigin {
  bool post = false;
  bool cookie_session = false;            // authenticated by the session cookie
  std::optional<std::string> origin;      // the Origin header, when present
  std::string host;                       // the Host header
  bool tls = false;                       // the request came over TLS
  std::optional<std::string> csrf_header; // X-Drover-CSRF, when present
  std::string session_csrf;               // the session's CSRF token (cookie sessions)
  bool login = false;                     // POST /api/v1/login (no session yet)
};

// OK, or PERMISSION_DENIED naming the rule: an Origin header that is not droverd's own
// origin ("http(s)://" + Host; over plain HTTP also "https://" + Host, for a TLS proxy in
// front), on any request; a POST with a cookie session (but login)
// without the session's CSRF token in X-Drover-CSRF (compared in constant time).
absl::Status CrossSiteCheck(const RequestOrigin& request);

// The `Content-Type` of a static file by its name's extension; "application/octet-stream"
// for an unknown one.
absl::string_view ContentTypeOf(absl::string_view path);

}  // namespace drover::server::http

#endif  // DROVER_SERVER_HTTP_HTTP_RULES_H_
