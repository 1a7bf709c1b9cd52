// The HTTP gateway's pure rules (server/http/http_rules.h, http_sessions.h,
// event_cursors.h): target parsing and routing, the error mapping, cookies and the
// cross-site rules, sessions, and the resume positions of event streams.
#include "server/http/http_rules.h"

#include "absl/time/time.h"
#include "common/json.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/http/event_cursors.h"
#include "server/http/http_sessions.h"
#include "tests/testing/fake_clock.h"

namespace drover::server::http {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(HttpRulesTest, ParsesPathAndRepeatedQueryParameters) {
  absl::StatusOr<Target> target =
      ParseTarget("/api/v1/jobs?state=RUNNING&state=QUEUED&tag=lr%3D0.1&experiment=a+b&x");
  ASSERT_TRUE(target.ok()) << target.status();
  EXPECT_EQ(target->path, "/api/v1/jobs");
  EXPECT_THAT(target->All("state"), ElementsAre("RUNNING", "QUEUED"));
  EXPECT_EQ(*target->First("tag"), "lr=0.1");
  EXPECT_EQ(*target->First("experiment"), "a b");
  EXPECT_EQ(*target->First("x"), "");
  EXPECT_EQ(target->First("owner"), nullptr);
  EXPECT_TRUE(target->All("owner").empty());
}

TEST(HttpRulesTest, RefusesTraversalAndMalformedEscapes) {
  for (const char* bad : {"/../etc/passwd", "/a/%2e%2e/b", "/a/..", "/x%2", "/x%zz", "/x%00y",
                          "/a\\b", "relative", "", "/a%5c..%5cb"}) {
    EXPECT_FALSE(ParseTarget(bad).ok()) << bad;
  }
  EXPECT_TRUE(ParseTarget("/assets/app..js").ok());
  EXPECT_TRUE(ParseTarget("/").ok());
}

TEST(HttpRulesTest, RefusesTargetsThatAreNotUtf8) {
  EXPECT_FALSE(ParseTarget("/a%ff").ok());
  EXPECT_FALSE(ParseTarget("/api/v1/jobs?experiment=%c3").ok());
  EXPECT_FALSE(ParseTarget("/api/v1/jobs?%ff=1").ok());
  EXPECT_TRUE(ParseTarget("/api/v1/jobs?experiment=caf%c3%a9").ok());
}

TEST(HttpRulesTest, OnlyWellFormedTokensReachGrpc) {
  EXPECT_TRUE(IsWellFormedToken("drv_2UX5qfyKyhVJIzaeZ9ZbaIbQoAC0UosmHMr77iolwkQ"));
  EXPECT_TRUE(IsWellFormedToken("drv_a-b_c"));
  for (const std::string& bad :
       {std::string("drv_"), std::string("drv_\x01"), std::string("drv_\xff"), std::string("x"),
        std::string("drv_a b"), std::string("drv_a\tb"), std::string("drv_a\r\nX: y"),
        std::string("Bearer drv_a"), "drv_" + std::string(253, 'a'), std::string("drv_a=")}) {
    EXPECT_FALSE(IsWellFormedToken(bad)) << bad;
  }
  EXPECT_TRUE(IsWellFormedToken("drv_" + std::string(252, 'a')));
}

TEST(HttpRulesTest, RoutesEveryApiPath) {
  EXPECT_EQ(MatchRoute("/api/v1/login").route, Route::kLogin);
  EXPECT_EQ(MatchRoute("/api/v1/login").method, "POST");
  EXPECT_EQ(MatchRoute("/api/v1/session").method, "GET");
  EXPECT_EQ(MatchRoute("/api/v1/jobs").route, Route::kListJobs);
  RouteMatch job = MatchRoute("/api/v1/jobs/j-42");
  EXPECT_EQ(job.route, Route::kGetJob);
  EXPECT_EQ(job.job_id, "j-42");
  EXPECT_EQ(MatchRoute("/api/v1/jobs/j-42/cancel").route, Route::kCancelJob);
  EXPECT_EQ(MatchRoute("/api/v1/jobs/j-42/cancel").method, "POST");
  EXPECT_EQ(MatchRoute("/api/v1/jobs/j-42/watch").route, Route::kWatchJob);
  EXPECT_EQ(MatchRoute("/api/v1/jobs/j-42/logs").route, Route::kJobLogs);
  EXPECT_EQ(MatchRoute("/api/v1/jobs/j-42/metrics").route, Route::kJobMetrics);
  EXPECT_EQ(MatchRoute("/api/v1/jobs/j-42/metrics/watch").route, Route::kWatchJobMetrics);
  EXPECT_EQ(MatchRoute("/api/v1/jobs/j-42/outputs").route, Route::kJobOutputs);
  RouteMatch file = MatchRoute("/api/v1/jobs/j-42/outputs/outputs/model.pt");
  EXPECT_EQ(file.route, Route::kJobOutputFile);
  EXPECT_EQ(file.file_path, "outputs/model.pt");
  EXPECT_EQ(MatchRoute("/api/v1/experiments").route, Route::kExperiments);
  EXPECT_EQ(MatchRoute("/api/v1/nodes").route, Route::kListNodes);
  RouteMatch drain = MatchRoute("/api/v1/nodes/n1/drain");
  EXPECT_EQ(drain.route, Route::kDrainNode);
  EXPECT_EQ(drain.node_name, "n1");
  EXPECT_EQ(MatchRoute("/api/v1/nodes/n1/cordon").route, Route::kCordonNode);
  EXPECT_EQ(MatchRoute("/api/v1/nodes/n1/uncordon").route, Route::kUncordonNode);
  for (const char* none : {"/api/v1/jobs/", "/api/v1/jobs/j-1/nope", "/api/v2/jobs", "/api",
                           "/api/v1/nodes/n1", "/api/v1/nodes//drain", "/index.html"}) {
    EXPECT_EQ(MatchRoute(none).route, Route::kNone) << none;
  }
  EXPECT_TRUE(IsApiPath("/api/v1/x"));
  EXPECT_TRUE(IsApiPath("/api"));
  EXPECT_FALSE(IsApiPath("/apix"));
  EXPECT_FALSE(IsApiPath("/runs/j-1"));
}

TEST(HttpRulesTest, MapsGrpcCodesToHttpStatuses) {
  EXPECT_EQ(HttpStatusOf(absl::StatusCode::kInvalidArgument), 400);
  EXPECT_EQ(HttpStatusOf(absl::StatusCode::kUnauthenticated), 401);
  EXPECT_EQ(HttpStatusOf(absl::StatusCode::kPermissionDenied), 403);
  EXPECT_EQ(HttpStatusOf(absl::StatusCode::kNotFound), 404);
  EXPECT_EQ(HttpStatusOf(absl::StatusCode::kAlreadyExists), 409);
  EXPECT_EQ(HttpStatusOf(absl::StatusCode::kAborted), 409);
  EXPECT_EQ(HttpStatusOf(absl::StatusCode::kFailedPrecondition), 412);
  EXPECT_EQ(HttpStatusOf(absl::StatusCode::kResourceExhausted), 429);
  EXPECT_EQ(HttpStatusOf(absl::StatusCode::kUnavailable), 503);
  EXPECT_EQ(HttpStatusOf(absl::StatusCode::kInternal), 500);
  EXPECT_EQ(HttpStatusOf(absl::StatusCode::kUnknown), 500);
}

TEST(HttpRulesTest, ErrorBodyIsJsonWithCodeAndMessage) {
  absl::StatusOr<Json> body =
      ParseJson(ErrorBody(absl::NotFoundError("job 'j-1' \"quoted\" \xff")));
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ((*body)["error"]["code"], "NOT_FOUND");
  EXPECT_THAT(std::string((*body)["error"]["message"]), HasSubstr("\"quoted\""));
}

TEST(HttpRulesTest, ReadsTheSessionCookie) {
  EXPECT_EQ(CookieValue("a=1; drover_session=xyz; b=2", kSessionCookie), "xyz");
  EXPECT_EQ(CookieValue("drover_session=\"q\"", kSessionCookie), "q");
  EXPECT_EQ(CookieValue("xdrover_session=1; a=2", kSessionCookie), std::nullopt);
  EXPECT_EQ(CookieValue("", kSessionCookie), std::nullopt);
  EXPECT_EQ(CookieValue(";;=;drover_session", kSessionCookie), std::nullopt);
}

TEST(HttpRulesTest, SessionCookieIsHttpOnlyStrictAndSecureUnderTls) {
  EXPECT_EQ(SessionCookie("abc", false), "drover_session=abc; HttpOnly; SameSite=Strict; Path=/");
  EXPECT_EQ(SessionCookie("abc", true),
            "drover_session=abc; HttpOnly; SameSite=Strict; Path=/; Secure");
  EXPECT_THAT(SessionCookie("", false), HasSubstr("Max-Age=0"));
}

RequestOrigin Post(std::optional<std::string> csrf) {
  RequestOrigin r;
  r.post = true;
  r.cookie_session = true;
  r.host = "drover.example:8443";
  r.tls = true;
  r.csrf_header = std::move(csrf);
  r.session_csrf = "secret-csrf";
  return r;
}

TEST(HttpRulesTest, PostWithCookieSessionNeedsTheCsrfToken) {
  EXPECT_TRUE(CrossSiteCheck(Post("secret-csrf")).ok());
  EXPECT_TRUE(absl::IsPermissionDenied(CrossSiteCheck(Post(std::nullopt))));
  EXPECT_TRUE(absl::IsPermissionDenied(CrossSiteCheck(Post("secret-csrX"))));
  EXPECT_TRUE(absl::IsPermissionDenied(CrossSiteCheck(Post(""))));
  RequestOrigin get = Post(std::nullopt);
  get.post = false;
  EXPECT_TRUE(CrossSiteCheck(get).ok());
  RequestOrigin login = Post(std::nullopt);
  login.login = true;
  EXPECT_TRUE(CrossSiteCheck(login).ok());
  RequestOrigin no_session = Post(std::nullopt);
  no_session.cookie_session = false;
  EXPECT_TRUE(CrossSiteCheck(no_session).ok());
}

TEST(HttpRulesTest, AnOriginMustBeDroverdsOwn) {
  RequestOrigin r = Post("secret-csrf");
  r.origin = "https://drover.example:8443";
  EXPECT_TRUE(CrossSiteCheck(r).ok());
  r.origin = "https://evil.example";
  EXPECT_TRUE(absl::IsPermissionDenied(CrossSiteCheck(r)));
  r.origin = "http://drover.example:8443";  // not the scheme it was served by
  EXPECT_TRUE(absl::IsPermissionDenied(CrossSiteCheck(r)));
  RequestOrigin proxied = r;
  proxied.tls = false;
  proxied.origin = "https://drover.example:8443";  // a TLS proxy in front of plain HTTP
  EXPECT_TRUE(CrossSiteCheck(proxied).ok());
  proxied.origin = "https://other.example:8443";
  EXPECT_TRUE(absl::IsPermissionDenied(CrossSiteCheck(proxied)));
  r.origin = "null";
  EXPECT_TRUE(absl::IsPermissionDenied(CrossSiteCheck(r)));
  r.login = true;  // login too
  EXPECT_TRUE(absl::IsPermissionDenied(CrossSiteCheck(r)));
}

TEST(HttpRulesTest, ContentTypesByExtension) {
  EXPECT_EQ(ContentTypeOf("index.html"), "text/html; charset=utf-8");
  EXPECT_EQ(ContentTypeOf("assets/app.1234.js"), "text/javascript; charset=utf-8");
  EXPECT_EQ(ContentTypeOf("a.CSS"), "text/css; charset=utf-8");
  EXPECT_EQ(ContentTypeOf("logo.svg"), "image/svg+xml");
  EXPECT_EQ(ContentTypeOf("x.d/README"), "application/octet-stream");
  EXPECT_EQ(ContentTypeOf("noext"), "application/octet-stream");
}

TEST(HttpSessionsTest, SessionsExpireWhenIdleAndAfterTheirAbsoluteLife) {
  testing::FakeClock clock;
  SessionStore store(clock, {.idle = absl::Hours(12), .absolute = absl::Hours(24 * 7),
                             .max_sessions = 100});
  SessionInfo info;
  absl::StatusOr<std::string> id = store.Create("drv_token", "alice", &info);
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->size(), 43u);
  EXPECT_NE(info.key, *id);  // only the hash is kept
  EXPECT_EQ(info.csrf_token.size(), 43u);
  ASSERT_TRUE(store.Find(*id).has_value());
  EXPECT_EQ(store.Find(*id)->token, "drv_token");
  EXPECT_EQ(store.Find(*id)->user, "alice");
  // Used every 11 hours: lives on, until 7 days after the login.
  for (int i = 0; i < 15; ++i) {
    clock.Advance(absl::Hours(11));
    ASSERT_TRUE(store.Find(*id).has_value()) << i;
  }
  clock.Advance(absl::Hours(4));  // 169 h
  EXPECT_FALSE(store.Find(*id).has_value());
  EXPECT_EQ(store.size(), 0u);
  absl::StatusOr<std::string> idle = store.Create("drv_token", "alice", &info);
  clock.Advance(absl::Hours(12));
  EXPECT_FALSE(store.Find(*idle).has_value());
}

TEST(HttpSessionsTest, EndsSessionsByKeyAndByToken) {
  testing::FakeClock clock;
  SessionStore store(clock);
  SessionInfo a, b, c;
  std::string id_a = *store.Create("drv_one", "alice", &a);
  std::string id_b = *store.Create("drv_one", "alice", &b);
  std::string id_c = *store.Create("drv_two", "bob", &c);
  EXPECT_NE(id_a, id_b);
  EXPECT_NE(a.csrf_token, b.csrf_token);
  store.End(a.key);
  EXPECT_FALSE(store.Find(id_a).has_value());
  EXPECT_TRUE(store.Find(id_b).has_value());
  store.EndToken("drv_one");
  EXPECT_FALSE(store.Find(id_b).has_value());
  EXPECT_TRUE(store.Find(id_c).has_value());
  EXPECT_FALSE(store.Find("").has_value());
  EXPECT_FALSE(store.Find(std::string(43, 'A')).has_value());
  EXPECT_FALSE(store.Find(c.key).has_value());  // the key is not the id
}

TEST(HttpSessionsTest, AFullStoreEndsTheLeastRecentlyUsedSession) {
  testing::FakeClock clock;
  SessionStore store(clock, {.max_sessions = 2});
  SessionInfo info;
  std::string first = *store.Create("drv_1", "a", &info);
  clock.Advance(absl::Seconds(1));
  std::string second = *store.Create("drv_2", "b", &info);
  clock.Advance(absl::Seconds(1));
  ASSERT_TRUE(store.Find(first).has_value());  // now the more recent
  clock.Advance(absl::Seconds(1));
  std::string third = *store.Create("drv_3", "c", &info);
  EXPECT_EQ(store.size(), 2u);
  EXPECT_TRUE(store.Find(first).has_value());
  EXPECT_FALSE(store.Find(second).has_value());
  EXPECT_TRUE(store.Find(third).has_value());
}

TEST(EventCursorsTest, Utf8PrefixLeavesOutAnIncompleteTail) {
  EXPECT_EQ(CompleteUtf8Prefix("abc"), 3u);
  EXPECT_EQ(CompleteUtf8Prefix("ab\xc3"), 2u);
  EXPECT_EQ(CompleteUtf8Prefix("ab\xc3\xa9"), 4u);
  EXPECT_EQ(CompleteUtf8Prefix("a\xe2\x82"), 1u);
  EXPECT_EQ(CompleteUtf8Prefix("a\xe2\x82\xac"), 4u);
  EXPECT_EQ(CompleteUtf8Prefix("\xf0\x9f\x98"), 0u);
  EXPECT_EQ(CompleteUtf8Prefix("\x80\x80\x80\x80"), 4u);  // invalid: sent as is
  EXPECT_EQ(CompleteUtf8Prefix(""), 0u);
}

std::string Concat(const std::vector<LogPiece>& pieces) {
  std::string out;
  for (const LogPiece& p : pieces) out += p.bytes;
  return out;
}

TEST(EventCursorsTest, LogCursorResumesWithoutRepeatingOrLosingBytes) {
  LogCursor cursor;
  std::vector<LogPiece> first = cursor.Take(1, 0, v1::STDOUT, 0, "hello ");
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].offset, 0);
  EXPECT_EQ(first[0].id, "1:0:STDOUT:6");
  std::vector<LogPiece> second = cursor.Take(1, 1, v1::STDERR, 0, "err");
  EXPECT_EQ(second[0].id, "1:0:STDOUT:6,1:1:STDERR:3");
  // The client reconnects with that id; the gRPC stream starts over from offset 0.
  absl::StatusOr<LogCursor> resumed = LogCursor::Parse(second[0].id);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(resumed->attempt(), 1);
  EXPECT_TRUE(resumed->Take(1, 0, v1::STDOUT, 0, "hello ").empty());
  std::vector<LogPiece> rest = resumed->Take(1, 0, v1::STDOUT, 0, "hello world");
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].offset, 6);
  EXPECT_EQ(rest[0].bytes, "world");
  EXPECT_TRUE(resumed->Take(1, 1, v1::STDERR, 0, "err").empty());
  EXPECT_EQ(Concat(resumed->Take(1, 1, v1::STDERR, 3, "or")), "or");
  // An earlier attempt gives nothing.
  EXPECT_TRUE(resumed->Take(0, 0, v1::STDOUT, 0, "x").empty());
}

TEST(EventCursorsTest, LogCursorHoldsBackASplitCharacter) {
  LogCursor cursor;
  std::vector<LogPiece> a = cursor.Take(1, 0, v1::STDOUT, 0, "caf\xc3");
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].bytes, "caf");
  EXPECT_EQ(a[0].id, "1:0:STDOUT:3");
  std::vector<LogPiece> b = cursor.Take(1, 0, v1::STDOUT, 4, "\xa9!");
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].offset, 3);
  EXPECT_EQ(b[0].bytes, "\xc3\xa9!");
  EXPECT_EQ(b[0].id, "1:0:STDOUT:6");
  // A tail never completed is sent when the attempt ends.
  cursor.Take(1, 0, v1::STDOUT, 6, "\xe2\x82");
  std::vector<LogPiece> flushed = cursor.Flush();
  ASSERT_EQ(flushed.size(), 1u);
  EXPECT_EQ(flushed[0].offset, 6);
  EXPECT_EQ(flushed[0].id, "1:0:STDOUT:8");
}

TEST(EventCursorsTest, LogCursorMovesToANewAttempt) {
  LogCursor cursor;
  cursor.Take(1, 0, v1::STDOUT, 0, "one\xc3");
  std::vector<LogPiece> pieces = cursor.Take(2, 0, v1::STDOUT, 0, "two");
  ASSERT_EQ(pieces.size(), 2u);
  EXPECT_EQ(pieces[0].attempt, 1);
  EXPECT_EQ(pieces[0].bytes, "\xc3");
  EXPECT_EQ(pieces[1].attempt, 2);
  EXPECT_EQ(pieces[1].id, "2:0:STDOUT:3");
  cursor.StartAttempt(3);
  EXPECT_EQ(cursor.Id(), "3:");
  absl::StatusOr<LogCursor> parsed = LogCursor::Parse("3:");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->attempt(), 3);
}

TEST(EventCursorsTest, LogCursorRefusesMalformedIds) {
  for (const char* bad : {"x", "1", "0:", "1:0:STDOUT", "1:0:BOGUS:3", "1:-1:STDOUT:3",
                          "1:0:STDOUT:-3", "1:0:STDOUT:3,2:0:STDERR:1", "1:0:STDOUT:3:4",
                          ",", "1:0:STDOUT:99999999999999999999999"}) {
    EXPECT_FALSE(LogCursor::Parse(bad).ok()) << bad;
  }
  EXPECT_TRUE(LogCursor::Parse("").ok());
}

v1::MetricSeries Points(const std::string& name, int32_t rank, int64_t from, int64_t count) {
  v1::MetricSeries s;
  s.set_name(name);
  s.set_source(v1::MetricSeries::USER);
  s.set_rank(rank);
  for (int64_t i = from; i < from + count; ++i) {
    s.add_steps(i);
    s.add_values(static_cast<double>(i));
    s.add_times(static_cast<double>(i));
  }
  return s;
}

TEST(EventCursorsTest, MetricsCursorSendsOnlyPointsTheClientLacks) {
  MetricsCursor cursor;
  cursor.set_attempt(1);
  v1::MetricSeries a = Points("loss", 0, 0, 5);
  EXPECT_TRUE(cursor.Take(a));
  EXPECT_EQ(a.steps_size(), 5);
  v1::MetricSeries b = Points("loss", 0, 5, 3);
  EXPECT_TRUE(cursor.Take(b));
  std::string token = cursor.Token();
  absl::StatusOr<MetricsCursor> resumed = MetricsCursor::Parse(token);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(resumed->attempt(), 1);
  // The new stream starts over: 6 points the client has, then 4 of which it has 2.
  v1::MetricSeries again = Points("loss", 0, 0, 6);
  EXPECT_FALSE(resumed->Take(again));
  EXPECT_EQ(again.steps_size(), 0);
  v1::MetricSeries more = Points("loss", 0, 6, 4);
  EXPECT_TRUE(resumed->Take(more));
  EXPECT_THAT(std::vector<int64_t>(more.steps().begin(), more.steps().end()),
              ElementsAre(8, 9));
  EXPECT_EQ(more.values_size(), 2);
  EXPECT_EQ(more.times_size(), 2);
  EXPECT_EQ(more.values(0), 8.0);
  v1::MetricSeries other = Points("acc", 1, 0, 2);
  EXPECT_TRUE(resumed->Take(other));
  EXPECT_EQ(other.steps_size(), 2);
  EXPECT_FALSE(MetricsCursor::Parse("!!!").ok());
  EXPECT_FALSE(MetricsCursor::Parse("eA").ok());  // "x": no attempt
  EXPECT_TRUE(MetricsCursor::Parse("").ok());
}

}  // namespace
}  // namespace drover::server::http
