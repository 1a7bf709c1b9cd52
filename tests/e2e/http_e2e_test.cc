// droverd's HTTP face (issue 20, docs/http-api.md) against a real droverd, spoken to with a
// small HTTP client: login and sessions, the cross-site rules, that a user sees over HTTP
// exactly what gRPC lets them see and that the gateway's in-process calls carry no
// privilege, hostile requests, static files that never leave --web-root, the caps on event
// streams. A job followed over HTTPS is in http_job_e2e_test.cc.
#include "tests/e2e/http_e2e_fixture.h"

namespace drover::http_e2e {
namespace {

// droverd alone (no agent, no root), plain HTTP on loopback: jobs stay queued.
class HttpApiE2eTest : public HttpFixture {
 protected:
  HttpApiE2eTest() : HttpFixture(/*needs_root=*/false) {}
  void SetUp() override {
    HttpFixture::SetUp();
    if (IsSkipped()) return;
    // The tests of the overall caps open hundreds of connections from one address: no
    // per-address cap here (http_limits_e2e_test.cc tests that one).
    StartWithHttp({.agents = 0,
                   .droverd_flags = {"--http-max-connections-per-client", "0"},
                   .datastore_root = false},
                  /*plain=*/true);
  }

  v1::JobSpec Queued() { return Shell("echo never runs"); }
};

TEST_F(HttpApiE2eTest, LoginSetsAStrictHttpOnlyCookieAndRefusesBadTokens) {
  std::string alice = CreateUser("alice", "user");
  HttpResponse ok = Call("POST", "/api/v1/login", {}, DumpJson(Json{{"token", alice}}));
  ASSERT_EQ(ok.status, 200) << ok.body;
  std::string cookie = ok.Header("set-cookie");
  EXPECT_THAT(cookie, HasSubstr("drover_session="));
  EXPECT_THAT(cookie, HasSubstr("HttpOnly"));
  EXPECT_THAT(cookie, HasSubstr("SameSite=Strict"));
  EXPECT_THAT(cookie, HasSubstr("Path=/"));
  EXPECT_THAT(cookie, Not(HasSubstr("Secure")));  // plain HTTP
  EXPECT_THAT(cookie, Not(HasSubstr(alice)));
  Json body = Parse(ok.body);
  EXPECT_EQ(body["user"]["name"], "alice");
  EXPECT_EQ(body["user"]["role"], "USER");
  EXPECT_EQ(JsonString(body["csrfToken"]).size(), 43u);
  Session s{cookie.substr(0, cookie.find(';')), JsonString(body["csrfToken"])};
  HttpResponse session = Call("GET", "/api/v1/session", s.get());
  EXPECT_EQ(session.status, 200);
  EXPECT_EQ(Parse(session.body)["csrfToken"], s.csrf);

  // Bad tokens, and bodies that are no login.
  for (const std::string& bad :
       {DumpJson(Json{{"token", "drv_" + std::string(43, 'A')}}), DumpJson(Json{{"token", "x"}}),
        DumpJson(Json{{"token", alice + "x"}})}) {
    HttpResponse r = Call("POST", "/api/v1/login", {}, bad);
    EXPECT_EQ(r.status, 401) << bad << " " << r.body;
    EXPECT_EQ(r.Header("set-cookie"), "");
    EXPECT_EQ(Parse(r.body)["error"]["code"], "UNAUTHENTICATED");
  }
  for (const std::string& malformed : {std::string("{\"token\": "), std::string("[1,2]"),
                                       std::string("{\"token\": 5}"), std::string("\xff\xfe"),
                                       std::string(100, '[')}) {
    HttpResponse r = Call("POST", "/api/v1/login", {}, malformed);
    EXPECT_EQ(r.status, 400) << malformed << " " << r.body;
    EXPECT_EQ(Parse(r.body)["error"]["code"], "INVALID_ARGUMENT");
  }
  HttpResponse huge = Call("POST", "/api/v1/login", {}, std::string(100 * 1024, ' '));
  EXPECT_EQ(huge.status, 413);
  // Tokens gRPC metadata could not carry (control bytes, non-ASCII): refused, droverd lives.
  for (const std::string& hostile : {std::string("{\"token\": \"drv_\\u0001\\u00ff\"}"),
                                     std::string("{\"token\": \"drv_a\\nb\"}"),
                                     std::string("{\"token\": \"drv_caf\xc3\xa9\"}")}) {
    HttpResponse r = Call("POST", "/api/v1/login", {}, hostile);
    EXPECT_EQ(r.status, 401) << hostile << " " << r.body;
  }
  // Bytes HTTP allows in a header but gRPC metadata does not: 401; control bytes HTTP
  // itself refuses: 400.
  for (const auto& [value, status] : std::vector<std::pair<std::string, int>>{
           {"Bearer drv_\xff\xfe", 401}, {"Bearer drv_a\tb", 401}, {"Bearer drv_\x01\x7f", 400}}) {
    auto c = Connect();
    ASSERT_TRUE(c->Send("GET /api/v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: " + value +
                        "\r\n\r\n")
                    .ok());
    absl::StatusOr<HttpResponse> r = c->ReadResponse();
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, status) << value;
  }
  EXPECT_EQ(Call("POST", "/api/v1/login", {}, DumpJson(Json{{"token", alice}})).status, 200);
}

TEST_F(HttpApiE2eTest, RequestsWithoutASessionAreRefused) {
  std::string alice = CreateUser("alice", "user");
  std::string id = SubmitAs(alice, Queued());
  for (const std::string& target :
       {std::string("/api/v1/jobs"), "/api/v1/jobs/" + id, "/api/v1/jobs/" + id + "/logs",
        "/api/v1/jobs/" + id + "/watch", "/api/v1/jobs/" + id + "/metrics", std::string("/api/v1/nodes"),
        std::string("/api/v1/experiments"), std::string("/api/v1/session")}) {
    HttpResponse none = Call("GET", target);
    EXPECT_EQ(none.status, 401) << target << " " << none.body;
    EXPECT_EQ(Parse(none.body)["error"]["code"], "UNAUTHENTICATED");
    HttpResponse forged = Call("GET", target, {{"Cookie", "drover_session=" + std::string(43, 'x')}});
    EXPECT_EQ(forged.status, 401) << target;
    HttpResponse bad_bearer = Call("GET", target, Bearer("drv_nope"));
    EXPECT_EQ(bad_bearer.status, 401) << target;
  }
  EXPECT_EQ(Call("POST", "/api/v1/jobs/" + id + "/cancel").status, 401);
  // With a session, and with a bearer token, the same requests are answered.
  Session s = Login(alice);
  EXPECT_EQ(Call("GET", "/api/v1/jobs/" + id, s.get()).status, 200);
  HttpResponse listed = Call("GET", "/api/v1/jobs", Bearer(alice));
  ASSERT_EQ(listed.status, 200);
  EXPECT_EQ(Parse(listed.body)["jobs"][0]["id"], id);
  EXPECT_EQ(Parse(listed.body)["jobs"][0]["status"]["state"], "QUEUED");
  // Logout ends the session.
  EXPECT_EQ(Call("POST", "/api/v1/logout", s.post()).status, 204);
  EXPECT_EQ(Call("GET", "/api/v1/jobs/" + id, s.get()).status, 401);
}

TEST_F(HttpApiE2eTest, PostsWithACookieSessionNeedTheCsrfHeaderAndDroverdsOrigin) {
  std::string alice = CreateUser("alice", "user");
  std::string id = SubmitAs(alice, Queued());
  Session s = Login(alice);
  const std::string cancel = "/api/v1/jobs/" + id + "/cancel";
  HttpResponse missing = Call("POST", cancel, s.get());
  EXPECT_EQ(missing.status, 403) << missing.body;
  EXPECT_THAT(missing.body, HasSubstr("X-Drover-CSRF"));
  HttpResponse wrong =
      Call("POST", cancel, {{"Cookie", s.cookie}, {"X-Drover-CSRF", std::string(43, 'a')}});
  EXPECT_EQ(wrong.status, 403);
  Headers foreign = s.post();
  foreign.push_back({"Origin", "http://evil.example"});
  EXPECT_EQ(Call("POST", cancel, foreign).status, 403);
  EXPECT_EQ(Call("GET", "/api/v1/jobs", {{"Cookie", s.cookie}, {"Origin", "null"}}).status, 403);
  EXPECT_EQ(Call("POST", "/api/v1/login", {{"Origin", "http://evil.example"}},
                 DumpJson(Json{{"token", alice}}))
                .status,
            403);
  EXPECT_EQ(Get(id).status().state(), v1::JobStatus::QUEUED);  // nothing was cancelled
  Headers own = s.post();
  own.push_back({"Origin", "http://" + http_});
  HttpResponse ok = Call("POST", cancel, own, DumpJson(Json{{"reason", "from the page"}}));
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(Parse(ok.body)["status"]["state"], "CANCELED");
  EXPECT_EQ(Get(id).status().state(), v1::JobStatus::CANCELED);
  EXPECT_THAT(Get(id).status().message(), HasSubstr("from the page"));
}

TEST_F(HttpApiE2eTest, AUserSeesOnlyTheirOwnJobsAsOverGrpc) {
  std::string alice = CreateUser("alice", "user");
  std::string bob = CreateUser("bob", "user");
  std::string viewer = CreateUser("vera", "viewer");
  v1::JobSpec spec = Queued();
  spec.set_experiment("mnist");
  std::string alices = SubmitAs(alice, spec);
  Session b = Login(bob);
  for (const std::string& target :
       {"/api/v1/jobs/" + alices, "/api/v1/jobs/" + alices + "/watch",
        "/api/v1/jobs/" + alices + "/logs", "/api/v1/jobs/" + alices + "/metrics",
        "/api/v1/jobs/" + alices + "/metrics/watch", "/api/v1/jobs/" + alices + "/outputs",
        "/api/v1/jobs/" + alices + "/outputs/x.bin"}) {
    HttpResponse r = Call("GET", target, b.get());
    EXPECT_EQ(r.status, 403) << target << " " << r.body;
    EXPECT_EQ(Parse(r.body)["error"]["code"], "PERMISSION_DENIED");
  }
  EXPECT_EQ(Call("POST", "/api/v1/jobs/" + alices + "/cancel", b.post()).status, 403);
  EXPECT_EQ(Get(alices).status().state(), v1::JobStatus::QUEUED);
  HttpResponse list = Call("GET", "/api/v1/jobs", b.get());
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(Parse(list.body).count("jobs"), 0u) << list.body;
  EXPECT_EQ(Call("GET", "/api/v1/jobs?owner=alice", b.get()).status, 403);
  HttpResponse experiments = Call("GET", "/api/v1/experiments", b.get());
  EXPECT_EQ(Parse(experiments.body)["experiments"].size(), 0u) << experiments.body;
  EXPECT_EQ(Call("GET", "/api/v1/jobs/j-999999", b.get()).status, 404);
  EXPECT_EQ(Call("GET", "/api/v1/jobs/j-999999/outputs", b.get()).status, 404);
  // Alice's own job has no outputs while it is queued.
  HttpResponse none = Call("GET", "/api/v1/jobs/" + alices + "/outputs", Bearer(alice));
  EXPECT_EQ(none.status, 404) << none.body;
  EXPECT_THAT(none.body, HasSubstr("has no outputs"));
  // A viewer reads every job; alice her own, with her experiment.
  EXPECT_EQ(Call("GET", "/api/v1/jobs/" + alices, Bearer(viewer)).status, 200);
  HttpResponse mine = Call("GET", "/api/v1/experiments", Bearer(alice));
  Json e = Parse(mine.body)["experiments"];
  ASSERT_EQ(e.size(), 1u) << mine.body;
  EXPECT_EQ(e[0]["name"], "mnist");
  EXPECT_EQ(e[0]["runs"], 1);
  EXPECT_FALSE(JsonString(e[0]["lastSubmitTime"]).empty());
  HttpResponse filtered =
      Call("GET", "/api/v1/jobs?state=QUEUED&state=RUNNING&experiment=mnist", Bearer(alice));
  EXPECT_EQ(Parse(filtered.body)["jobs"].size(), 1u);
  EXPECT_EQ(Call("GET", "/api/v1/jobs?state=NOPE", Bearer(alice)).status, 400);
  EXPECT_EQ(Call("GET", "/api/v1/jobs?pageSize=x", Bearer(alice)).status, 400);
}

TEST_F(HttpApiE2eTest, TheGatewaysInProcessCallsCarryNoPrivilege) {
  std::string alice = CreateUser("alice", "user");
  Session a = Login(alice);
  // Admin calls as a user: refused, as over gRPC.
  for (const char* action : {"cordon", "uncordon", "drain"}) {
    HttpResponse r = Call("POST", absl::StrCat("/api/v1/nodes/n1/", action), a.post());
    EXPECT_EQ(r.status, 403) << action << " " << r.body;
  }
  // The nodes list is for every user; as admin the action reaches droverd (no such node).
  EXPECT_EQ(Call("GET", "/api/v1/nodes", a.get()).status, 200);
  HttpResponse admin = Call("POST", "/api/v1/nodes/n-none/cordon",
                            Bearer(testing::TestAdminTokenValue()));
  EXPECT_EQ(admin.status, 404) << admin.body;
  // An in-process call made without a token is nobody (never the admin socket's admin).
  EXPECT_EQ(Call("GET", "/api/v1/nodes", {{"Authorization", "Bearer "}}).status, 401);
  EXPECT_EQ(Call("GET", "/api/v1/nodes", {{"drover-in-process-key", "guess"}}).status, 401);
  // A revoked user's session ends with the next request.
  std::string bob = CreateUser("bob", "user");
  Session b = Login(bob);
  EXPECT_EQ(Call("GET", "/api/v1/jobs", b.get()).status, 200);
  testing::CommandResult revoked = RunCli({"user", "revoke", "bob"});
  ASSERT_EQ(revoked.exit_code, 0) << revoked.err;
  EXPECT_EQ(Call("GET", "/api/v1/jobs", b.get()).status, 401);
  EXPECT_EQ(Call("GET", "/api/v1/session", b.get()).status, 401);
}

TEST_F(HttpApiE2eTest, HostileRequestsAreRefusedAndTheServerGoesOn) {
  std::string alice = CreateUser("alice", "user");
  // A huge header: 431, connection closed.
  {
    auto c = Connect();
    ASSERT_TRUE(c->Send(absl::StrCat("GET /api/v1/jobs HTTP/1.1\r\nHost: x\r\nX-Big: ",
                                     std::string(64 * 1024, 'a'), "\r\n\r\n"))
                    .ok());
    absl::StatusOr<HttpResponse> big = c->ReadResponse();
    ASSERT_TRUE(big.ok()) << big.status();
    EXPECT_EQ(big->status, 431);
    EXPECT_TRUE(c->ClosedWithin(absl::Seconds(5)));
  }
  // Path traversal, raw and encoded.
  for (const char* target : {"/../../etc/passwd", "/assets/%2e%2e/%2e%2e/etc/passwd",
                             "/api/v1/jobs/..%2f..%2fetc", "/x%00y"}) {
    auto c = Connect();
    ASSERT_TRUE(c->Send(absl::StrCat("GET ", target, " HTTP/1.1\r\nHost: x\r\n\r\n")).ok());
    absl::StatusOr<HttpResponse> r = c->ReadResponse();
    ASSERT_TRUE(r.ok()) << target << " " << r.status();
    EXPECT_EQ(r->status, 400) << target;
    EXPECT_THAT(r->body, Not(HasSubstr("root:")));
  }
  // Garbage instead of HTTP.
  {
    auto c = Connect();
    ASSERT_TRUE(c->Send("\x16\x03\x01 not http at all\r\n\r\n").ok());
    absl::StatusOr<HttpResponse> r = c->ReadResponse();
    if (r.ok()) {
      EXPECT_EQ(r->status, 400);
    }
    EXPECT_TRUE(c->ClosedWithin(absl::Seconds(5)));
  }
  // Unknown routes and wrong methods.
  EXPECT_EQ(Call("GET", "/api/v1/nope", Bearer(alice)).status, 404);
  HttpResponse method = Call("DELETE", "/api/v1/jobs", Bearer(alice));
  EXPECT_EQ(method.status, 405);
  EXPECT_EQ(method.Header("allow"), "GET");
  EXPECT_EQ(Call("GET", "/api/v1/jobs/j-1/metrics?maxPoints=1000000", Bearer(alice)).status, 400);
  EXPECT_EQ(Call("GET", "/api/v1/jobs/j-1/logs?resume=garbage", Bearer(alice)).status, 404);
  // A client that trickles its request is dropped after the read timeout (10 s).
  {
    auto c = Connect();
    ASSERT_TRUE(c->Send("GET /api/v1/jobs HTTP/1.1\r\nHost: x\r\n").ok());
    EXPECT_TRUE(c->ClosedWithin(absl::Seconds(15)));
  }
  // Keep-alive: several requests on one connection.
  {
    auto c = Connect();
    for (int i = 0; i < 3; ++i) {
      absl::StatusOr<HttpResponse> r = c->Request("GET", "/api/v1/jobs", Bearer(alice));
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_EQ(r->status, 200);
    }
  }
  EXPECT_EQ(Call("GET", "/api/v1/jobs", Bearer(alice)).status, 200);
}

TEST_F(HttpApiE2eTest, StaticFilesNeverLeaveTheWebRoot) {
  std::filesystem::create_symlink("/etc/passwd", web_root_ + "/leak");
  std::filesystem::create_symlink("/etc", web_root_ + "/etcdir");
  std::filesystem::create_symlink("index.html", web_root_ + "/inner-link");
  ::mkfifo((web_root_ + "/fifo").c_str(), 0644);
  HttpResponse index = Call("GET", "/");
  ASSERT_EQ(index.status, 200);
  EXPECT_EQ(index.body, "<!doctype html><title>Drover</title>");
  EXPECT_EQ(index.Header("content-type"), "text/html; charset=utf-8");
  EXPECT_THAT(index.Header("content-security-policy"), HasSubstr("default-src 'self'"));
  EXPECT_THAT(index.Header("content-security-policy"), Not(HasSubstr("unsafe-inline")));
  EXPECT_EQ(index.Header("x-content-type-options"), "nosniff");
  EXPECT_EQ(index.Header("referrer-policy"), "no-referrer");
  EXPECT_EQ(index.Header("x-frame-options"), "DENY");
  HttpResponse js = Call("GET", "/assets/app.js");
  EXPECT_EQ(js.status, 200);
  EXPECT_EQ(js.Header("content-type"), "text/javascript; charset=utf-8");
  EXPECT_EQ(js.body, "console.log('drover');");
  // The app's own routes are the app.
  HttpResponse route = Call("GET", "/runs/j-42");
  EXPECT_EQ(route.status, 200);
  EXPECT_EQ(route.body, index.body);
  // Links (out of the root or not), a fifo and a folder are never served nor listed.
  for (const char* target : {"/leak", "/etcdir/passwd", "/etcdir", "/inner-link", "/fifo",
                             "/assets", "/assets/"}) {
    HttpResponse r = Call("GET", target);
    EXPECT_EQ(r.status, 404) << target << " " << r.body;
    EXPECT_THAT(r.body, Not(HasSubstr("root:")));
    EXPECT_THAT(r.body, Not(HasSubstr("app.js")));
  }
  HttpResponse head = Call("HEAD", "/assets/app.js");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.Header("content-length"), "22");
  EXPECT_EQ(head.body, "");
  EXPECT_EQ(Call("POST", "/assets/app.js").status, 405);
}

TEST_F(HttpApiE2eTest, WatchStreamsTheJobUntilItEnds) {
  std::string alice = CreateUser("alice", "user");
  std::string id = SubmitAs(alice, Queued());
  Session s = Login(alice);
  auto c = Connect();
  absl::StatusOr<HttpResponse> opened = c->OpenEvents("/api/v1/jobs/" + id + "/watch", s.get());
  ASSERT_TRUE(opened.ok()) << opened.status();
  ASSERT_EQ(opened->status, 200) << opened->body;
  EXPECT_EQ(opened->Header("content-type"), "text/event-stream");
  absl::StatusOr<testing::SseEvent> first = c->NextEvent();
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->event, "job");
  EXPECT_EQ(Parse(first->data)["status"]["state"], "QUEUED");
  ASSERT_EQ(Call("POST", "/api/v1/jobs/" + id + "/cancel", s.post()).status, 200);
  std::string last;
  while (true) {
    absl::StatusOr<testing::SseEvent> e = c->NextEvent();
    if (absl::IsNotFound(e.status())) break;
    ASSERT_TRUE(e.ok()) << e.status();
    last = JsonString(Parse(e->data)["status"]["state"]);
  }
  EXPECT_EQ(last, "CANCELED");
}

TEST_F(HttpApiE2eTest, AThousandEventStreamsAreCappedAndTheirSlotsComeBack) {
  // The test holds a thousand sockets.
  rlimit limit;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &limit), 0);
  if (limit.rlim_cur < 4096) {
    limit.rlim_cur = std::min<rlim_t>(limit.rlim_max, 4096);
    setrlimit(RLIMIT_NOFILE, &limit);
  }
  std::string alice = CreateUser("alice", "user");
  std::string id = SubmitAs(alice, Queued());
  Session s = Login(alice);
  std::vector<std::unique_ptr<HttpConnection>> open;
  int streams = 0, too_many = 0, refused = 0;
  for (int i = 0; i < 1000; ++i) {
    absl::StatusOr<std::unique_ptr<HttpConnection>> c = HttpConnection::Open(http_, ca_pem_);
    if (!c.ok()) {
      ++refused;
      continue;
    }
    absl::StatusOr<HttpResponse> r = (*c)->OpenEvents("/api/v1/jobs/" + id + "/watch", s.get());
    if (!r.ok() || r->status == 503) {
      ++refused;
    } else if (r->status == 429) {
      ++too_many;
      EXPECT_EQ(Parse(r->body)["error"]["code"], "RESOURCE_EXHAUSTED");
    } else if (r->status == 200) {
      ++streams;
    } else {
      ADD_FAILURE() << r->status << " " << r->body;
    }
    open.push_back(*std::move(c));
  }
  EXPECT_EQ(streams, 16);  // per session
  EXPECT_GT(too_many, 0);
  EXPECT_GT(refused, 0);  // over 256 connections
  EXPECT_EQ(streams + too_many + refused, 1000);
  // Another user still gets a stream; once the first ones close, so does alice.
  std::string bob = CreateUser("bob", "user");
  std::string bobs = SubmitAs(bob, Queued());
  open.clear();
  absl::Time deadline = absl::Now() + absl::Seconds(20);
  bool again = false;
  while (!again && absl::Now() < deadline) {
    auto c = Connect();
    absl::StatusOr<HttpResponse> r = c->OpenEvents("/api/v1/jobs/" + id + "/watch", s.get());
    again = r.ok() && r->status == 200;
    if (!again) absl::SleepFor(absl::Milliseconds(200));
  }
  EXPECT_TRUE(again);
  auto c = Connect();
  absl::StatusOr<HttpResponse> r = c->OpenEvents("/api/v1/jobs/" + bobs + "/watch", Bearer(bob));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 200);
}

TEST_F(HttpApiE2eTest, ManyOpenStreamsDoNotStallTheRestOfTheApi) {
  // More streams than gRPC's cap of calls per connection (100): the in-process channel must
  // not queue the other requests behind them.
  std::vector<std::unique_ptr<HttpConnection>> open;
  std::string last_job;
  for (int u = 0; u < 8; ++u) {
    std::string token = CreateUser(absl::StrCat("user", u), "user");
    last_job = SubmitAs(token, Queued());
    for (int i = 0; i < 16; ++i) {
      auto c = Connect();
      absl::StatusOr<HttpResponse> r =
          c->OpenEvents("/api/v1/jobs/" + last_job + "/watch", Bearer(token));
      ASSERT_TRUE(r.ok()) << r.status();
      ASSERT_EQ(r->status, 200) << u << " " << i << " " << r->body;
      absl::StatusOr<testing::SseEvent> e = c->NextEvent(absl::Seconds(10));
      ASSERT_TRUE(e.ok()) << "stream " << open.size() << ": " << e.status();
      open.push_back(std::move(c));
    }
  }
  absl::Time start = absl::Now();
  HttpResponse list = Call("GET", "/api/v1/jobs", Bearer(testing::TestAdminTokenValue()));
  EXPECT_EQ(list.status, 200);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_EQ(Parse(list.body)["jobs"].size(), 8u);
}

// droverd and an agent (root), over HTTPS with droverd's certificate (the default).

}  // namespace
}  // namespace drover::http_e2e
