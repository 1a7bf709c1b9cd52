// The API routes of the HTTP gateway (docs/http-api.md): who the caller is, the cross-site
// rules, and the unary routes; the event streams are in http_events.cc.
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/archive/sha256.h"
#include "common/grpc_status.h"
#include "common/json.h"
#include "server/http/http_api.h"
#include "server/http/http_calls.h"

namespace drover::server::http {
namespace internal {

std::string ToJson(const google::protobuf::Message& message) {
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(message, &out).ok()) return "{}";
  return out;
}

void ReplyStatus(HttpGateway::Loop& loop, const ApiRequest& request, Exchange& exchange,
                 const grpc::Status& status) {
  absl::Status error = FromGrpcStatus(status);
  // A token gRPC refuses (its user was revoked) ends the sessions made with it.
  if (absl::IsUnauthenticated(error) && request.session.has_value()) {
    loop.sessions.EndToken(request.token);
  }
  exchange.Respond(ErrorResponse(HttpStatusOf(error.code()), error));
}

absl::StatusOr<int64_t> IntParam(const Target& target, absl::string_view name, int64_t fallback,
                                 int64_t min, int64_t max) {
  const std::string* value = target.First(name);
  if (value == nullptr || value->empty()) return fallback;
  int64_t parsed = 0;
  if (!absl::SimpleAtoi(*value, &parsed) || parsed < min || parsed > max) {
    return absl::InvalidArgumentError(absl::StrCat("query parameter '", name, "': '", *value,
                                                   "' is not a number from ", min, " to ", max));
  }
  return parsed;
}

absl::StatusOr<bool> BoolParam(const Target& target, absl::string_view name, bool fallback) {
  const std::string* value = target.First(name);
  if (value == nullptr || value->empty()) return fallback;
  std::string lower = absl::AsciiStrToLower(*value);
  if (lower == "1" || lower == "true" || lower == "yes") return true;
  if (lower == "0" || lower == "false" || lower == "no") return false;
  return absl::InvalidArgumentError(
      absl::StrCat("query parameter '", name, "': '", *value, "' is not 0 or 1"));
}

namespace {

using google::protobuf::util::JsonParseOptions;

// The body's JSON object (an empty body: an empty object). INVALID_ARGUMENT otherwise.
absl::StatusOr<Json> BodyObject(const StringRequest& request) {
  if (request.body().empty()) return Json::object();
  absl::StatusOr<Json> body = ParseJson(request.body(), {.max_bytes = 64 * 1024, .max_depth = 8});
  if (!body.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("the request body is not JSON: ",
                                                   body.status().message()));
  }
  if (!body->is_object()) {
    return absl::InvalidArgumentError("the request body must be a JSON object");
  }
  return body;
}

void Reply(Exchange& exchange, std::string body, int status = 200) {
  exchange.Respond(JsonResponse(std::move(body), status));
}

void ReplyError(Exchange& exchange, const absl::Status& status) {
  exchange.Respond(ErrorResponse(HttpStatusOf(status.code()), status));
}

// What login and /session answer.
std::string SessionBody(const v1::User& user, const std::string& csrf) {
  return absl::StrCat("{\"user\":", ToJson(user), ",\"csrfToken\":", DumpJson(Json(csrf)), "}");
}

void Login(HttpGateway::Loop& loop, std::shared_ptr<Exchange> exchange, ApiRequest request) {
  absl::StatusOr<Json> body = BodyObject(request.http);
  if (!body.ok()) return ReplyError(*exchange, body.status());
  const Json* token = JsonFind(*body, "token");
  if (token == nullptr || !token->is_string() || JsonString(*token).empty() ||
      JsonString(*token).size() > 512) {
    return ReplyError(*exchange, absl::InvalidArgumentError(
                                     "the body must be {\"token\": \"<a user token>\"}, the "
                                     "token drover user create or drover user token printed"));
  }
  std::string user_token = JsonString(*token);
  if (!IsWellFormedToken(user_token)) {
    return ReplyError(*exchange, absl::UnauthenticatedError(
                                     "that is not a drover token (drv_...); use the token drover "
                                     "user create or drover user token printed"));
  }
  // Every try that could be a token counts, right or wrong: guessing tokens from one address
  // is slowed to a crawl (a malformed body never reaches gRPC and counts nothing).
  if (absl::Duration wait = loop.client_limits.TakeLogin(exchange->client(), loop.clock.Now());
      wait > absl::ZeroDuration()) {
    const int64_t seconds =
        std::max<int64_t>(1, absl::ToInt64Seconds(absl::Ceil(wait, absl::Seconds(1))));
    StringResponse response = ErrorResponse(
        429, absl::ResourceExhaustedError(absl::StrCat(
                 "too many logins from your address; try again in ", seconds, " s")));
    response.set(bhttp::field::retry_after, absl::StrCat(seconds));
    return exchange->Respond(std::move(response));
  }
  CallUnary<v1::WhoAmIRequest, v1::User>(
      loop, user_token, v1::WhoAmIRequest(),
      [&loop](auto* context, auto* req, auto* resp, auto done) {
        loop.admin->async()->WhoAmI(context, req, resp, std::move(done));
      },
      [&loop, exchange, user_token, tls = request.tls](const grpc::Status& status,
                                                      v1::User& user) {
        if (!status.ok()) {
          absl::Status error = FromGrpcStatus(status);
          // A wrong token is 401 whatever gRPC said about it.
          if (absl::IsPermissionDenied(error)) {
            error = absl::UnauthenticatedError(error.message());
          }
          return ReplyError(*exchange, error);
        }
        SessionInfo session;
        absl::StatusOr<std::string> id = loop.sessions.Create(user_token, user.name(), &session);
        if (!id.ok()) return ReplyError(*exchange, id.status());
        StringResponse response = JsonResponse(SessionBody(user, session.csrf_token));
        response.set(bhttp::field::set_cookie, SessionCookie(*id, tls));
        exchange->Respond(std::move(response));
      });
}

void Session(HttpGateway::Loop& loop, std::shared_ptr<Exchange> exchange, ApiRequest request) {
  if (!request.session.has_value()) {
    return ReplyError(*exchange, absl::UnauthenticatedError("not logged in"));
  }
  std::string csrf = request.session->csrf_token;
  auto shared = std::make_shared<ApiRequest>(std::move(request));
  CallUnary<v1::WhoAmIRequest, v1::User>(
      loop, shared->token, v1::WhoAmIRequest(),
      [&loop](auto* context, auto* req, auto* resp, auto done) {
        loop.admin->async()->WhoAmI(context, req, resp, std::move(done));
      },
      [&loop, exchange, shared, csrf](const grpc::Status& status, v1::User& user) {
        if (!status.ok()) return ReplyStatus(loop, *shared, *exchange, status);
        Reply(*exchange, SessionBody(user, csrf));
      });
}

// Calls a unary method and answers with its response as JSON.
template <class Request, class Response, class Start>
void Forward(HttpGateway::Loop& loop, std::shared_ptr<Exchange> exchange,
             std::shared_ptr<ApiRequest> request, Request message, Start start) {
  CallUnary<Request, Response>(
      loop, request->token, std::move(message), start,
      [&loop, exchange, request](const grpc::Status& status, Response& response) {
        if (!status.ok()) return ReplyStatus(loop, *request, *exchange, status);
        Reply(*exchange, ToJson(response));
      });
}

absl::StatusOr<v1::ListJobsRequest> ListJobsRequestOf(const Target& target) {
  v1::ListJobsRequest list;
  for (const std::string& state : target.All("state")) {
    v1::JobStatus::State parsed;
    if (!v1::JobStatus::State_Parse(state, &parsed)) {
      return absl::InvalidArgumentError(
          absl::StrCat("query parameter 'state': '", state,
                       "' is not a job state; use one such as RUNNING or QUEUED"));
    }
    list.add_states(parsed);
  }
  if (const std::string* v = target.First("experiment")) list.set_experiment(*v);
  if (const std::string* v = target.First("tag")) list.set_tag(*v);
  if (const std::string* v = target.First("owner")) list.set_owner(*v);
  if (const std::string* v = target.First("pageToken")) list.set_page_token(*v);
  if (const std::string* v = target.First("arrayId")) list.set_array_id(*v);
  if (const std::string* v = target.First("groupArrays")) {
    if (*v != "true" && *v != "false") {
      return absl::InvalidArgumentError(absl::StrCat(
          "query parameter 'groupArrays': '", absl::CHexEscape(v->substr(0, 64)),
          "' is not a boolean; use true or false"));
    }
    list.set_group_arrays(*v == "true");
  }
  absl::StatusOr<int64_t> size = IntParam(target, "pageSize", 0, 0, 1000);
  if (!size.ok()) return size.status();
  list.set_page_size(static_cast<int32_t>(*size));
  return list;
}

absl::StatusOr<v1::ListSweepsRequest> ListSweepsRequestOf(const Target& target) {
  v1::ListSweepsRequest list;
  for (const std::string& state : target.All("state")) {
    v1::SweepStatus::State parsed;
    if (!v1::SweepStatus::State_Parse(state, &parsed) ||
        parsed == v1::SweepStatus::STATE_UNSPECIFIED) {
      return absl::InvalidArgumentError(
          absl::StrCat("query parameter 'state': '", absl::CHexEscape(state.substr(0, 64)),
                       "' is not a sweep state; use one such as RUNNING or COMPLETED"));
    }
    list.add_states(parsed);
  }
  if (const std::string* v = target.First("owner")) list.set_owner(*v);
  if (const std::string* v = target.First("pageToken")) list.set_page_token(*v);
  absl::StatusOr<int64_t> size = IntParam(target, "pageSize", 0, 0, 1000);
  if (!size.ok()) return size.status();
  list.set_page_size(static_cast<int32_t>(*size));
  return list;
}

void CancelJob(HttpGateway::Loop& loop, std::shared_ptr<Exchange> exchange,
               std::shared_ptr<ApiRequest> request) {
  absl::StatusOr<Json> body = BodyObject(request->http);
  if (!body.ok()) return ReplyError(*exchange, body.status());
  v1::CancelJobRequest cancel;
  cancel.set_job_id(request->route.job_id);
  if (const Json* reason = JsonFind(*body, "reason")) {
    if (!reason->is_string()) {
      return ReplyError(*exchange, absl::InvalidArgumentError("'reason' must be a string"));
    }
    cancel.set_reason(JsonString(*reason));
  }
  Forward<v1::CancelJobRequest, v1::Job>(
      loop, exchange, request, std::move(cancel),
      [&loop](auto* context, auto* req, auto* resp, auto done) {
        loop.jobs->async()->CancelJob(context, req, resp, std::move(done));
      });
}

void NodeAction(HttpGateway::Loop& loop, std::shared_ptr<Exchange> exchange,
                std::shared_ptr<ApiRequest> request) {
  absl::StatusOr<Json> body = BodyObject(request->http);
  if (!body.ok()) return ReplyError(*exchange, body.status());
  v1::NodeRequest node;
  node.set_name(request->route.node_name);
  if (const Json* reason = JsonFind(*body, "reason"); reason != nullptr && reason->is_string()) {
    node.set_reason(JsonString(*reason));
  }
  Route route = request->route.route;
  Forward<v1::NodeRequest, v1::Node>(
      loop, exchange, request, std::move(node),
      [&loop, route](auto* context, auto* req, auto* resp, auto done) {
        if (route == Route::kCordonNode) {
          loop.admin->async()->CordonNode(context, req, resp, std::move(done));
        } else if (route == Route::kUncordonNode) {
          loop.admin->async()->UncordonNode(context, req, resp, std::move(done));
        } else {
          loop.admin->async()->DrainNode(context, req, resp, std::move(done));
        }
      });
}

// GET /metrics: one GetMetrics with `max_points`, which reads, cuts to the step range and
// thins every series in the job service; here only the JSON is made.
constexpr int kMaxMetricReads = 4;  // answered at once: each one reads whole series
constexpr int64_t kMaxChartPoints = 20000;  // per series

// Releases the loop's metric read slot when the answer is done.
struct MetricReadSlot {
  explicit MetricReadSlot(HttpGateway::Loop& l) : loop(l) { ++loop.metric_reads; }
  ~MetricReadSlot() { --loop.metric_reads; }
  HttpGateway::Loop& loop;
};

void GetMetrics(HttpGateway::Loop& loop, std::shared_ptr<Exchange> exchange,
                std::shared_ptr<ApiRequest> request) {
  if (loop.metric_reads >= kMaxMetricReads) {
    return ReplyError(*exchange, absl::ResourceExhaustedError(
                                     "droverd is answering other metric reads; try again in "
                                     "a moment"));
  }
  absl::StatusOr<v1::GetMetricsRequest> metrics = MetricsRequestOf(*request);
  if (!metrics.ok()) return ReplyError(*exchange, metrics.status());
  const Target& target = request->target;
  absl::StatusOr<int64_t> max_points = IntParam(target, "maxPoints", 2000, 1, kMaxChartPoints);
  if (!max_points.ok()) return ReplyError(*exchange, max_points.status());
  metrics->set_max_points(static_cast<int32_t>(*max_points));
  constexpr int64_t kLastStep = std::numeric_limits<int64_t>::max();
  absl::StatusOr<int64_t> from = IntParam(target, "fromStep", 0, 0, kLastStep);
  if (!from.ok()) return ReplyError(*exchange, from.status());
  absl::StatusOr<int64_t> to = IntParam(target, "toStep", kLastStep, 0, kLastStep);
  if (!to.ok()) return ReplyError(*exchange, to.status());
  if (*from > *to) {
    return ReplyError(*exchange, absl::InvalidArgumentError(absl::StrCat(
                                     "query parameters 'fromStep' ", *from, " and 'toStep' ",
                                     *to, ": the range is empty; give fromStep <= toStep")));
  }
  if (target.First("fromStep") != nullptr) metrics->set_from_step(*from);
  if (target.First("toStep") != nullptr) metrics->set_to_step(*to);
  auto slot = std::make_shared<MetricReadSlot>(loop);
  CallUnary<v1::GetMetricsRequest, v1::GetMetricsResponse>(
      loop, request->token, *std::move(metrics),
      [&loop](auto* context, auto* req, auto* resp, auto done) {
        loop.jobs->async()->GetMetrics(context, req, resp, std::move(done));
      },
      [&loop, exchange, request, slot](const grpc::Status& status,
                                       v1::GetMetricsResponse& answer) {
        if (!status.ok()) return ReplyStatus(loop, *request, *exchange, status);
        // The members always there, even when zero (the API's promise, docs/http-api.md).
        std::string body = absl::StrCat("{\"attempt\":\"", answer.attempt(), "\",\"series\":[");
        bool first = true;
        for (const v1::MetricSeries& series : answer.series()) {
          absl::StrAppend(&body, first ? "" : ",", ToJson(series));
          first = false;
        }
        Json tags = Json::object();
        for (const auto& [name, value] : answer.tags()) tags[name] = value;
        absl::StrAppend(&body, "],\"tags\":", DumpJson(tags), ",\"skippedLines\":\"",
                        answer.skipped_lines(), "\",\"droppedRecords\":\"",
                        answer.dropped_records(), "\",\"cappedStreams\":",
                        answer.capped_streams(), "}");
        Reply(*exchange, std::move(body));
      });
}

// GET /experiments: the caller's visible jobs, page by page, grouped by experiment.
struct ExperimentsGather {
  v1::ListJobsRequest request;
  struct Experiment {
    int64_t runs = 0;
    google::protobuf::Timestamp last;
  };
  std::map<std::string, Experiment> experiments;
  int pages = 0;
};

constexpr int kMaxExperimentPages = 50;  // of 1000 jobs

void GatherExperiments(HttpGateway::Loop& loop, std::shared_ptr<Exchange> exchange,
                       std::shared_ptr<ApiRequest> request,
                       std::shared_ptr<ExperimentsGather> gather) {
  CallUnary<v1::ListJobsRequest, v1::ListJobsResponse>(
      loop, request->token, gather->request,
      [&loop](auto* context, auto* req, auto* resp, auto done) {
        loop.jobs->async()->ListJobs(context, req, resp, std::move(done));
      },
      [&loop, exchange, request, gather](const grpc::Status& status,
                                         v1::ListJobsResponse& page) {
        if (!status.ok()) return ReplyStatus(loop, *request, *exchange, status);
        for (const v1::Job& job : page.jobs()) {
          if (job.spec().experiment().empty()) continue;
          ExperimentsGather::Experiment& e = gather->experiments[job.spec().experiment()];
          ++e.runs;
          const auto& created = job.create_time();
          if (created.seconds() > e.last.seconds() ||
              (created.seconds() == e.last.seconds() && created.nanos() > e.last.nanos())) {
            e.last = created;
          }
        }
        if (!page.next_page_token().empty() && ++gather->pages < kMaxExperimentPages) {
          gather->request.set_page_token(page.next_page_token());
          return GatherExperiments(loop, exchange, request, gather);
        }
        std::vector<std::pair<std::string, ExperimentsGather::Experiment>> sorted(
            gather->experiments.begin(), gather->experiments.end());
        std::stable_sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
          return std::make_pair(a.second.last.seconds(), a.second.last.nanos()) >
                 std::make_pair(b.second.last.seconds(), b.second.last.nanos());
        });
        std::string body = "{\"experiments\":[";
        bool first = true;
        for (const auto& [name, e] : sorted) {
          std::string time = ToJson(e.last);  // a quoted RFC 3339 string
          absl::StrAppend(&body, first ? "" : ",", "{\"name\":", DumpJson(Json(name)),
                          ",\"runs\":", e.runs, ",\"lastSubmitTime\":", time, "}");
          first = false;
        }
        body += "]}";
        Reply(*exchange, std::move(body));
      });
}

}  // namespace

absl::StatusOr<v1::GetMetricsRequest> MetricsRequestOf(const ApiRequest& request) {
  const Target& target = request.target;
  v1::GetMetricsRequest metrics;
  metrics.set_job_id(request.route.job_id);
  absl::StatusOr<int64_t> attempt =
      IntParam(target, "attempt", 0, 0, std::numeric_limits<int64_t>::max());
  if (!attempt.ok()) return attempt.status();
  metrics.set_attempt(*attempt);
  for (const std::string& name : target.All("name")) metrics.add_names(name);
  for (const std::string& rank : target.All("rank")) {
    int32_t parsed = 0;
    if (!absl::SimpleAtoi(rank, &parsed) || parsed < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("query parameter 'rank': '", rank, "' is not a rank (0, 1, ...)"));
    }
    metrics.add_ranks(parsed);
  }
  for (const std::string& source : target.All("source")) {
    v1::MetricSeries::Source parsed;
    if (!v1::MetricSeries::Source_Parse(source, &parsed) ||
        parsed == v1::MetricSeries::SOURCE_UNSPECIFIED) {
      return absl::InvalidArgumentError(absl::StrCat(
          "query parameter 'source': '", source, "' is not USER or SYSTEM"));
    }
    metrics.add_sources(parsed);
  }
  return metrics;
}

}  // namespace internal

void HttpGateway::Loop::HandleApi(std::shared_ptr<internal::Exchange> exchange,
                                  internal::ApiRequest request) {
  using internal::bhttp::field;
  const internal::StringRequest& http = request.http;
  const RouteMatch& route = request.route;
  if (route.route == Route::kNone) {
    return internal::ReplyError(
        *exchange, absl::NotFoundError(absl::StrCat("no API route ", request.target.path,
                                                    "; see docs/http-api.md")));
  }
  absl::string_view method(http.method_string().data(), http.method_string().size());
  if (method != route.method) {
    internal::StringResponse response = internal::ErrorResponse(
        405, absl::InvalidArgumentError(
                 absl::StrCat(request.target.path, " takes ", route.method, ", not ", method)));
    response.set(field::allow, internal::beast::string_view(route.method.data(),
                                                           route.method.size()));
    return exchange->Respond(std::move(response));
  }
  auto header = [&http](field name) -> std::optional<std::string> {
    auto found = http.find(name);
    if (found == http.end()) return std::nullopt;
    return std::string(found->value());
  };
  // Who calls: a bearer token (scripts), or the session cookie (browsers).
  bool bearer = false;
  if (std::optional<std::string> authorization = header(field::authorization)) {
    if (absl::StartsWith(*authorization, "Bearer ")) {
      request.token = authorization->substr(7);
      if (!request.token.empty() && !IsWellFormedToken(request.token)) {
        return internal::ReplyError(
            *exchange, absl::UnauthenticatedError(
                           "the Authorization header is not 'Bearer drv_...'; pass the token "
                           "drover user create printed"));
      }
      request.stream_key = absl::StrCat("t:", archive::Sha256Digest(request.token));
      bearer = true;
    }
  }
  if (!bearer) {
    if (std::optional<std::string> cookies = header(field::cookie)) {
      if (std::optional<std::string> id = CookieValue(*cookies, kSessionCookie)) {
        request.session = sessions.Find(*id);
        if (request.session.has_value()) {
          request.token = request.session->token;
          request.stream_key = absl::StrCat("s:", request.session->key);
        }
      }
    }
    RequestOrigin origin;
    origin.post = http.method() == internal::bhttp::verb::post;
    origin.cookie_session = request.session.has_value();
    origin.origin = header(field::origin);
    origin.host = header(field::host).value_or("");
    origin.tls = request.tls;
    {
      auto found = http.find(internal::beast::string_view(kCsrfHeader.data(), kCsrfHeader.size()));
      origin.csrf_header = found == http.end() ? std::nullopt
                                               : std::optional<std::string>(found->value());
    }
    if (request.session.has_value()) origin.session_csrf = request.session->csrf_token;
    origin.login = route.route == Route::kLogin;
    if (absl::Status allowed = CrossSiteCheck(origin); !allowed.ok()) {
      return internal::ReplyError(*exchange, allowed);
    }
  }
  switch (route.route) {
    case Route::kLogin:
      return internal::Login(*this, std::move(exchange), std::move(request));
    case Route::kLogout: {
      if (request.session.has_value()) sessions.End(request.session->key);
      internal::StringResponse response;
      response.result(internal::bhttp::status::no_content);
      response.set(field::cache_control, "no-store");
      response.set(field::set_cookie, SessionCookie("", request.tls));
      return exchange->Respond(std::move(response));
    }
    case Route::kSession:
      return internal::Session(*this, std::move(exchange), std::move(request));
    default:
      break;
  }
  if (request.token.empty()) {
    return internal::ReplyError(
        *exchange, absl::UnauthenticatedError(
                       "log in first (POST /api/v1/login), or pass Authorization: Bearer <token>"));
  }
  auto shared = std::make_shared<internal::ApiRequest>(std::move(request));
  const std::string& job_id = shared->route.job_id;
  switch (shared->route.route) {
    case Route::kListJobs: {
      absl::StatusOr<v1::ListJobsRequest> list = internal::ListJobsRequestOf(shared->target);
      if (!list.ok()) return internal::ReplyError(*exchange, list.status());
      return internal::Forward<v1::ListJobsRequest, v1::ListJobsResponse>(
          *this, exchange, shared, *std::move(list),
          [this](auto* context, auto* req, auto* resp, auto done) {
            jobs->async()->ListJobs(context, req, resp, std::move(done));
          });
    }
    case Route::kGetJob: {
      v1::GetJobRequest get;
      get.set_job_id(job_id);
      return internal::Forward<v1::GetJobRequest, v1::Job>(
          *this, exchange, shared, std::move(get),
          [this](auto* context, auto* req, auto* resp, auto done) {
            jobs->async()->GetJob(context, req, resp, std::move(done));
          });
    }
    case Route::kCancelJob:
      return internal::CancelJob(*this, exchange, shared);
    case Route::kWatchJob:
    case Route::kJobLogs:
    case Route::kWatchJobMetrics:
      return internal::ServeEvents(*this, exchange, shared);
    case Route::kJobMetrics:
      return internal::GetMetrics(*this, exchange, shared);
    case Route::kExperiments: {
      auto gather = std::make_shared<internal::ExperimentsGather>();
      gather->request.set_page_size(1000);
      return internal::GatherExperiments(*this, exchange, shared, gather);
    }
    case Route::kListSweeps: {
      absl::StatusOr<v1::ListSweepsRequest> list = internal::ListSweepsRequestOf(shared->target);
      if (!list.ok()) return internal::ReplyError(*exchange, list.status());
      return internal::Forward<v1::ListSweepsRequest, v1::ListSweepsResponse>(
          *this, exchange, shared, *std::move(list),
          [this](auto* context, auto* req, auto* resp, auto done) {
            sweeps->async()->ListSweeps(context, req, resp, std::move(done));
          });
    }
    case Route::kGetSweep: {
      v1::GetSweepRequest get;
      get.set_sweep_id(shared->route.sweep_id);
      return internal::Forward<v1::GetSweepRequest, v1::Sweep>(
          *this, exchange, shared, std::move(get),
          [this](auto* context, auto* req, auto* resp, auto done) {
            sweeps->async()->GetSweep(context, req, resp, std::move(done));
          });
    }
    case Route::kListNodes:
      return internal::Forward<v1::ListNodesRequest, v1::ListNodesResponse>(
          *this, exchange, shared, v1::ListNodesRequest(),
          [this](auto* context, auto* req, auto* resp, auto done) {
            admin->async()->ListNodes(context, req, resp, std::move(done));
          });
    case Route::kCordonNode:
    case Route::kUncordonNode:
    case Route::kDrainNode:
      return internal::NodeAction(*this, exchange, shared);
    case Route::kJobOutputs:
    case Route::kJobOutputFile:
      return internal::ServeOutputs(*this, exchange, shared);
    default:
      return internal::ReplyError(*exchange, absl::NotFoundError("no such API route"));
  }
}

}  // namespace drover::server::http
