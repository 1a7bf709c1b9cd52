#include "server/http/http_rules.h"

#include <openssl/crypto.h>

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/json.h"
#include "common/utf8.h"

namespace drover::server::http {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decodes `text` ('+' as a space when `plus`). INVALID_ARGUMENT for a malformed
// escape or an encoded NUL.
absl::StatusOr<std::string> Decode(absl::string_view text, bool plus) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%') {
      int high = i + 2 < text.size() ? HexValue(text[i + 1]) : -1;
      int low = i + 2 < text.size() ? HexValue(text[i + 2]) : -1;
      if (high < 0 || low < 0) {
        return absl::InvalidArgumentError("the request target has a malformed percent escape");
      }
      char decoded = static_cast<char>(high * 16 + low);
      if (decoded == '\0') {
        return absl::InvalidArgumentError("the request target has an encoded NUL");
      }
      out.push_back(decoded);
      i += 2;
    } else if (c == '+' && plus) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

const std::vector<std::string>& NoValues() {
  static const auto* none = new std::vector<std::string>();
  return *none;
}

}  // namespace

const std::string* Target::First(absl::string_view name) const {
  auto found = query.find(std::string(name));
  return found == query.end() || found->second.empty() ? nullptr : &found->second.front();
}

const std::vector<std::string>& Target::All(absl::string_view name) const {
  auto found = query.find(std::string(name));
  return found == query.end() ? NoValues() : found->second;
}

absl::StatusOr<Target> ParseTarget(absl::string_view target) {
  if (target.empty() || target.front() != '/') {
    return absl::InvalidArgumentError("the request target must be a path starting with '/'");
  }
  Target out;
  size_t question = target.find('?');
  absl::string_view path = target.substr(0, question);
  absl::StatusOr<std::string> decoded = Decode(path, /*plus=*/false);
  if (!decoded.ok()) return decoded.status();
  if (absl::StrContains(*decoded, '\\')) {
    return absl::InvalidArgumentError("the request path may not hold a backslash");
  }
  for (absl::string_view part : absl::StrSplit(*decoded, '/')) {
    if (part == "..") {
      return absl::InvalidArgumentError("the request path may not hold a '..' component");
    }
  }
  if (!IsValidUtf8(*decoded)) {
    return absl::InvalidArgumentError("the request path is not UTF-8 once decoded");
  }
  out.path = *std::move(decoded);
  if (question == absl::string_view::npos) return out;
  for (absl::string_view pair :
       absl::StrSplit(target.substr(question + 1), '&', absl::SkipEmpty())) {
    size_t equals = pair.find('=');
    absl::StatusOr<std::string> name = Decode(pair.substr(0, equals), /*plus=*/true);
    if (!name.ok()) return name.status();
    absl::StatusOr<std::string> value =
        Decode(equals == absl::string_view::npos ? "" : pair.substr(equals + 1), true);
    if (!value.ok()) return value.status();
    if (!IsValidUtf8(*name) || !IsValidUtf8(*value)) {
      return absl::InvalidArgumentError("a query parameter is not UTF-8 once decoded");
    }
    out.query[*std::move(name)].push_back(*std::move(value));
  }
  return out;
}

bool IsWellFormedToken(absl::string_view token) {
  if (!absl::StartsWith(token, "drv_") || token.size() <= 4 || token.size() > 256) return false;
  for (char c : token.substr(4)) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
  }
  return true;
}

bool IsApiPath(absl::string_view path) {
  return path == "/api" || absl::StartsWith(path, "/api/");
}

RouteMatch MatchRoute(absl::string_view path) {
  RouteMatch match;
  auto set = [&match](Route route, absl::string_view method) {
    match.route = route;
    match.method = method;
    return match;
  };
  constexpr absl::string_view kPrefix = "/api/v1/";
  if (!absl::ConsumePrefix(&path, kPrefix)) return match;
  if (path == "login") return set(Route::kLogin, "POST");
  if (path == "logout") return set(Route::kLogout, "POST");
  if (path == "session") return set(Route::kSession, "GET");
  if (path == "jobs") return set(Route::kListJobs, "GET");
  if (path == "experiments") return set(Route::kExperiments, "GET");
  if (path == "nodes") return set(Route::kListNodes, "GET");
  if (path == "sweeps") return set(Route::kListSweeps, "GET");
  if (absl::ConsumePrefix(&path, "sweeps/")) {
    // One path segment: the sweep id (GetSweep checks its form and names a bad one).
    if (path.empty() || absl::StrContains(path, '/')) return match;
    match.sweep_id = std::string(path);
    return set(Route::kGetSweep, "GET");
  }
  if (absl::ConsumePrefix(&path, "jobs/")) {
    size_t slash = path.find('/');
    absl::string_view id = path.substr(0, slash);
    if (id.empty()) return match;
    match.job_id = std::string(id);
    if (slash == absl::string_view::npos) return set(Route::kGetJob, "GET");
    absl::string_view rest = path.substr(slash + 1);
    if (rest == "cancel") return set(Route::kCancelJob, "POST");
    if (rest == "watch") return set(Route::kWatchJob, "GET");
    if (rest == "logs") return set(Route::kJobLogs, "GET");
    if (rest == "metrics") return set(Route::kJobMetrics, "GET");
    if (rest == "metrics/watch") return set(Route::kWatchJobMetrics, "GET");
    if (rest == "outputs") return set(Route::kJobOutputs, "GET");
    if (absl::ConsumePrefix(&rest, "outputs/") && !rest.empty()) {
      match.file_path = std::string(rest);
      return set(Route::kJobOutputFile, "GET");
    }
    match.job_id.clear();
    return match;
  }
  if (absl::ConsumePrefix(&path, "nodes/")) {
    size_t slash = path.find('/');
    if (slash == 0 || slash == absl::string_view::npos) return match;
    absl::string_view action = path.substr(slash + 1);
    Route route = action == "cordon"     ? Route::kCordonNode
                  : action == "uncordon" ? Route::kUncordonNode
                  : action == "drain"    ? Route::kDrainNode
                                         : Route::kNone;
    if (route == Route::kNone) return match;
    match.node_name = std::string(path.substr(0, slash));
    return set(route, "POST");
  }
  return match;
}

int HttpStatusOf(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk: return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange: return 400;
    case absl::StatusCode::kUnauthenticated: return 401;
    case absl::StatusCode::kPermissionDenied: return 403;
    case absl::StatusCode::kNotFound: return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted: return 409;
    case absl::StatusCode::kFailedPrecondition: return 412;
    case absl::StatusCode::kResourceExhausted: return 429;
    case absl::StatusCode::kUnavailable: return 503;
    default: return 500;
  }
}

std::string ErrorBody(const absl::Status& status) {
  Json body = {{"error",
                {{"code", absl::StatusCodeToString(status.code())},
                 {"message", std::string(status.message())}}}};
  return DumpJson(body);
}

std::optional<std::string> CookieValue(absl::string_view cookie_header, absl::string_view name) {
  for (absl::string_view pair : absl::StrSplit(cookie_header, ';')) {
    pair = absl::StripAsciiWhitespace(pair);
    size_t equals = pair.find('=');
    if (equals == absl::string_view::npos) continue;
    if (absl::StripAsciiWhitespace(pair.substr(0, equals)) != name) continue;
    absl::string_view value = absl::StripAsciiWhitespace(pair.substr(equals + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
      value = value.substr(1, value.size() - 2);
    }
    return std::string(value);
  }
  return std::nullopt;
}

std::string SessionCookie(absl::string_view value, bool secure) {
  return absl::StrCat(kSessionCookie, "=", value, "; HttpOnly; SameSite=Strict; Path=/",
                      value.empty() ? "; Max-Age=0" : "", secure ? "; Secure" : "");
}

absl::Status CrossSiteCheck(const RequestOrigin& request) {
  if (request.origin.has_value()) {
    std::string own = absl::StrCat(request.tls ? "https://" : "http://", request.host);
    // Plain HTTP may be behind a proxy that terminates TLS: the page's origin is then https
    // with the same Host.
    bool proxied = !request.tls &&
                   absl::EqualsIgnoreCase(*request.origin, absl::StrCat("https://", request.host));
    if (!absl::EqualsIgnoreCase(*request.origin, own) && !proxied) {
      return absl::PermissionDeniedError(absl::StrCat(
          "cross-origin request refused: Origin '", *request.origin, "' is not droverd's own (",
          own, ")"));
    }
  }
  if (request.post && request.cookie_session && !request.login) {
    const std::string& expected = request.session_csrf;
    if (!request.csrf_header.has_value() || expected.empty() ||
        request.csrf_header->size() != expected.size() ||
        CRYPTO_memcmp(request.csrf_header->data(), expected.data(), expected.size()) != 0) {
      return absl::PermissionDeniedError(absl::StrCat(
          "a POST with a session cookie needs the header ", kCsrfHeader,
          " with the csrfToken that login or /api/v1/session returned"));
    }
  }
  return absl::OkStatus();
}

absl::string_view ContentTypeOf(absl::string_view path) {
  size_t dot = path.rfind('.');
  size_t slash = path.rfind('/');
  if (dot == absl::string_view::npos || (slash != absl::string_view::npos && dot < slash)) {
    return "application/octet-stream";
  }
  std::string ext = absl::AsciiStrToLower(path.substr(dot + 1));
  static const auto* types = new std::map<std::string, absl::string_view>{
      {"html", "text/html; charset=utf-8"},
      {"htm", "text/html; charset=utf-8"},
      {"js", "text/javascript; charset=utf-8"},
      {"mjs", "text/javascript; charset=utf-8"},
      {"css", "text/css; charset=utf-8"},
      {"json", "application/json"},
      {"map", "application/json"},
      {"txt", "text/plain; charset=utf-8"},
      {"svg", "image/svg+xml"},
      {"png", "image/png"},
      {"jpg", "image/jpeg"},
      {"jpeg", "image/jpeg"},
      {"gif", "image/gif"},
      {"webp", "image/webp"},
      {"ico", "image/x-icon"},
      {"woff", "font/woff"},
      {"woff2", "font/woff2"},
      {"wasm", "application/wasm"},
  };
  auto found = types->find(ext);
  return found == types->end() ? "application/octet-stream" : found->second;
}

}  // namespace drover::server::http
