// droverd's HTTP face (issue 20, docs/http-api.md) against a real droverd, spoken to with a
// small HTTP client: login and sessions, the cross-site rules, that a user sees over HTTP
// exactly what gRPC lets them see and that the gateway's in-process calls carry no
// privilege, hostile requests, static files that never leave --web-root, the caps on event
// streams; with an agent (root), over HTTPS: a job's logs and metrics followed live and
// resumed after a reconnect without a byte or point lost or repeated, cancel by POST, and a
// big series thinned.
#include <grpcpp/client_context.h>
#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/json.h"
#include "drover/v1/job_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/cluster.h"
#include "tests/testing/http_client.h"
#include "tests/testing/local_cluster.h"
#include "tests/testing/subprocess.h"

namespace drover {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::Headers;
using testing::HttpConnection;
using testing::HttpResponse;

Json Parse(const std::string& text) {
  absl::StatusOr<Json> json = ParseJson(text);
  EXPECT_TRUE(json.ok()) << json.status() << ": " << text;
  return json.ok() ? *json : Json();
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// What the HTTP tests share: droverd with --http-listen, users made with the CLI, logins.
class HttpFixture : public testing::LocalClusterTest {
 protected:
  explicit HttpFixture(bool needs_root) : LocalClusterTest(needs_root) {}

  void StartWithHttp(testing::ClusterOptions options, bool plain) {
    http_ = absl::StrCat("127.0.0.1:", testing::FreeLoopbackPort());
    web_root_ = dir_.path() + "/web";
    std::filesystem::create_directories(web_root_ + "/assets");
    std::ofstream(web_root_ + "/index.html") << "<!doctype html><title>Drover</title>";
    std::ofstream(web_root_ + "/assets/app.js") << "console.log('drover');";
    options.droverd_flags.insert(options.droverd_flags.end(),
                                 {"--http-listen", http_, "--web-root", web_root_});
    if (plain) options.droverd_flags.push_back("--http-plain");
    StartCluster(std::move(options));
    if (!plain) ca_pem_ = ReadAll(droverd_->ca_file());
  }

  // Creates a user with the CLI (as the test admin) and returns their token.
  std::string CreateUser(const std::string& name, const std::string& role) {
    testing::CommandResult r = RunCli({"user", "create", name, "--role", role});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return std::string(absl::StripAsciiWhitespace(r.out));
  }

  std::unique_ptr<HttpConnection> Connect() {
    absl::StatusOr<std::unique_ptr<HttpConnection>> c = HttpConnection::Open(http_, ca_pem_);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *std::move(c) : nullptr;
  }

  HttpResponse Call(const std::string& method, const std::string& target,
                    const Headers& headers = {}, const std::string& body = "") {
    absl::StatusOr<HttpResponse> r = testing::HttpRequest(http_, method, target, headers, body,
                                                          ca_pem_);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : HttpResponse{};
  }

  struct Session {
    std::string cookie;  // "drover_session=..."
    std::string csrf;
    Headers get() const { return {{"Cookie", cookie}}; }
    Headers post() const { return {{"Cookie", cookie}, {"X-Drover-CSRF", csrf}}; }
  };

  Session Login(const std::string& token) {
    HttpResponse r = Call("POST", "/api/v1/login", {{"Content-Type", "application/json"}},
                          DumpJson(Json{{"token", token}}));
    EXPECT_EQ(r.status, 200) << r.body;
    Session s;
    std::string set_cookie = r.Header("set-cookie");
    s.cookie = set_cookie.substr(0, set_cookie.find(';'));
    s.csrf = JsonString(Parse(r.body)["csrfToken"]);
    return s;
  }

  static Headers Bearer(const std::string& token) {
    return {{"Authorization", "Bearer " + token}};
  }

  std::string SubmitAs(const std::string& token, const v1::JobSpec& spec) {
    grpc::ClientContext context;
    v1::SubmitJobRequest request;
    *request.mutable_spec() = spec;
    v1::SubmitJobResponse response;
    grpc::Status status = v1::JobService::NewStub(testing::TlsChannel(droverd_->address(), "",
                                                                      token))
                              ->SubmitJob(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.job().id();
  }

  std::string http_;
  std::string web_root_;
  std::string ca_pem_;  // empty: plain HTTP
};

// droverd alone (no agent, no root), plain HTTP on loopback: jobs stay queued.
class HttpApiE2eTest : public HttpFixture {
 protected:
  HttpApiE2eTest() : HttpFixture(/*needs_root=*/false) {}
  void SetUp() override {
    HttpFixture::SetUp();
    if (IsSkipped()) return;
    StartWithHttp({.agents = 0, .datastore_root = false}, /*plain=*/true);
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
class HttpJobE2eTest : public HttpFixture {
 protected:
  HttpJobE2eTest() : HttpFixture(/*needs_root=*/true) {}
  void SetUp() override {
    HttpFixture::SetUp();
    if (IsSkipped()) return;
    StartWithHttp({.agent_flags = {"--metrics-interval", "200ms"}}, /*plain=*/false);
  }

  // Reads events until `stop` says so or the stream ends; fails on an error event.
  std::vector<testing::SseEvent> ReadEvents(HttpConnection& c,
                                            const std::function<bool(const testing::SseEvent&)>& stop,
                                            absl::Duration wait = absl::Seconds(60)) {
    std::vector<testing::SseEvent> events;
    absl::Time deadline = absl::Now() + wait;
    while (absl::Now() < deadline) {
      absl::StatusOr<testing::SseEvent> e = c.NextEvent(deadline - absl::Now());
      if (absl::IsNotFound(e.status())) break;
      EXPECT_TRUE(e.ok()) << e.status();
      if (!e.ok()) break;
      EXPECT_NE(e->event, "error") << e->data;
      events.push_back(*e);
      if (stop(*e)) break;
    }
    return events;
  }
};

TEST_F(HttpJobE2eTest, FollowsLogsAndMetricsLiveAndResumesWithoutLosingOrRepeating) {
  std::string alice = CreateUser("alice", "user");
  std::string id = SubmitAs(
      alice, Shell("i=0; while [ $i -lt 60 ]; do echo \"line $i \xc3\xa9\"; "
                   "printf '{\"n\":\"loss\",\"s\":%d,\"t\":1764170000,\"v\":%d.5}\\n' $i $i "
                   ">> \"$DROVER_METRICS_DIR/rank-$DROVER_RANK.metrics\"; "
                   "i=$((i+1)); sleep 0.1; done"));
  Session s = Login(alice);
  // HTTPS: the cookie is Secure.
  HttpResponse login = Call("POST", "/api/v1/login", {}, DumpJson(Json{{"token", alice}}));
  EXPECT_THAT(login.Header("set-cookie"), HasSubstr("; Secure"));
  std::string expected;
  for (int i = 0; i < 60; ++i) absl::StrAppend(&expected, "line ", i, " \xc3\xa9\n");

  // Metrics, live: the first points come while the job runs (droverd may not have heard
  // yet that every rank started: STARTING).
  auto metrics = Connect();
  absl::StatusOr<HttpResponse> opened =
      metrics->OpenEvents("/api/v1/jobs/" + id + "/metrics/watch?source=USER&name=loss", s.get());
  ASSERT_TRUE(opened.ok()) << opened.status();
  ASSERT_EQ(opened->status, 200) << opened->body;
  std::vector<int64_t> steps;
  auto take_points = [&steps](const testing::SseEvent& e) {
    if (e.event != "metrics") return;
    Json data = Parse(e.data);
    for (const Json& series : JsonItems(data["series"])) {
      EXPECT_EQ(series["name"], "loss");
      const Json::array_t& values = JsonItems(series["values"]);
      const Json::array_t& column = JsonItems(series["steps"]);
      ASSERT_EQ(values.size(), column.size());
      for (size_t k = 0; k < column.size(); ++k) {
        int64_t step = std::stoll(JsonString(column[k]));
        EXPECT_DOUBLE_EQ(JsonDouble(values[k]), static_cast<double>(step) + 0.5);
        steps.push_back(step);
      }
    }
  };
  std::vector<testing::SseEvent> first_metrics =
      ReadEvents(*metrics, [](const testing::SseEvent& e) { return e.event == "metrics"; });
  ASSERT_FALSE(first_metrics.empty());
  EXPECT_THAT(Get(id).status().state(),
              ::testing::AnyOf(v1::JobStatus::STARTING, v1::JobStatus::RUNNING))
      << "the first points came late";
  for (const auto& e : first_metrics) take_points(e);
  std::string metrics_id = first_metrics.back().id;
  ASSERT_FALSE(metrics_id.empty());
  metrics.reset();  // the client goes away

  // Logs, live, with a reconnect in the middle.
  std::map<int64_t, std::string> text_at;  // by offset
  int64_t next = 0;
  auto take_log = [&](const testing::SseEvent& e) {
    if (e.event != "log") return;
    Json data = Parse(e.data);
    EXPECT_EQ(data["attempt"], "1");
    EXPECT_EQ(data["rank"], 0);
    EXPECT_EQ(data["stream"], "STDOUT");
    int64_t offset = std::stoll(JsonString(data["offset"]));
    EXPECT_EQ(offset, next) << "a byte lost or repeated at " << offset;
    const std::string& text = JsonString(data["text"]);
    next = offset + static_cast<int64_t>(text.size());
    text_at[offset] = text;
  };
  auto logs = Connect();
  opened = logs->OpenEvents("/api/v1/jobs/" + id + "/logs?stream=STDOUT", s.get());
  ASSERT_TRUE(opened.ok()) << opened.status();
  ASSERT_EQ(opened->status, 200) << opened->body;
  int seen = 0;
  std::vector<testing::SseEvent> before = ReadEvents(*logs, [&seen](const testing::SseEvent& e) {
    return e.event == "log" && ++seen >= 5;
  });
  ASSERT_FALSE(before.empty());
  EXPECT_THAT(Get(id).status().state(),
              ::testing::AnyOf(v1::JobStatus::STARTING, v1::JobStatus::RUNNING))
      << "the first lines came late";
  for (const auto& e : before) take_log(e);
  std::string last_id = before.back().id;
  EXPECT_EQ(last_id, absl::StrCat("1:0:STDOUT:", next));
  logs.reset();
  absl::SleepFor(absl::Milliseconds(500));  // more lines come meanwhile
  logs = Connect();
  opened = logs->OpenEvents("/api/v1/jobs/" + id + "/logs?stream=STDOUT",
                            {{"Cookie", s.cookie}, {"Last-Event-ID", last_id}});
  ASSERT_TRUE(opened.ok()) << opened.status();
  ASSERT_EQ(opened->status, 200) << opened->body;
  std::vector<testing::SseEvent> after =
      ReadEvents(*logs, [](const testing::SseEvent& e) { return e.event == "end"; });
  ASSERT_FALSE(after.empty());
  for (const auto& e : after) take_log(e);
  ASSERT_EQ(after.back().event, "end");
  EXPECT_EQ(Parse(after.back().data)["job"]["status"]["state"], "COMPLETED");
  std::string text;
  for (const auto& [offset, piece] : text_at) text += piece;
  EXPECT_EQ(text, expected);
  EXPECT_EQ(text, Logs(id, 0));
  EXPECT_TRUE(absl::IsNotFound(logs->NextEvent(absl::Seconds(5)).status()));

  // The metrics resumed after the job ended: the rest, once.
  metrics = Connect();
  opened = metrics->OpenEvents("/api/v1/jobs/" + id + "/metrics/watch?source=USER&name=loss",
                               {{"Cookie", s.cookie}, {"Last-Event-ID", metrics_id}});
  ASSERT_TRUE(opened.ok()) << opened.status();
  std::vector<testing::SseEvent> rest =
      ReadEvents(*metrics, [](const testing::SseEvent& e) { return e.event == "end"; });
  for (const auto& e : rest) take_points(e);
  ASSERT_FALSE(rest.empty());
  EXPECT_EQ(rest.back().event, "end");
  std::vector<int64_t> all(60);
  for (int i = 0; i < 60; ++i) all[i] = i;
  EXPECT_EQ(steps, all);

  // The whole series, exact (fewer points than maxPoints).
  HttpResponse whole =
      Call("GET", "/api/v1/jobs/" + id + "/metrics?source=USER&name=loss", s.get());
  ASSERT_EQ(whole.status, 200) << whole.body;
  Json series = Parse(whole.body)["series"];
  ASSERT_EQ(series.size(), 1u) << whole.body;
  EXPECT_EQ(series[0]["totalPoints"], "60");
  EXPECT_EQ(series[0].count("thinned"), 0u);
  EXPECT_EQ(JsonItems(series[0]["steps"]).size(), 60u);
  // The system series are there too.
  HttpResponse system = Call("GET", "/api/v1/jobs/" + id + "/metrics?source=SYSTEM", s.get());
  EXPECT_THAT(system.body, HasSubstr("memory_peak_bytes"));
}

TEST_F(HttpJobE2eTest, AReaderThatFallsBehindStillGetsEveryByte) {
  // 20 MB of output: far more than the socket buffers and the 1 MiB the gateway queues, so
  // the stream must pause while the client does not read, and go on when it does.
  std::string id = Submit(Shell("head -c 20000000 /dev/zero | tr '\\0' 'a'"));
  WaitFor(id, v1::JobStatus::COMPLETED, absl::Seconds(120));
  auto c = Connect();
  absl::StatusOr<HttpResponse> opened = c->OpenEvents(
      "/api/v1/jobs/" + id + "/logs?stream=STDOUT&follow=0", Bearer(testing::TestAdminTokenValue()));
  ASSERT_TRUE(opened.ok()) << opened.status();
  ASSERT_EQ(opened->status, 200) << opened->body;
  absl::SleepFor(absl::Seconds(3));  // not reading: the server's queue fills and it pauses
  int64_t next = 0;
  bool ended = false;
  while (!ended) {
    absl::StatusOr<testing::SseEvent> e = c->NextEvent(absl::Seconds(30));
    ASSERT_TRUE(e.ok()) << e.status() << " at " << next;
    if (e->event == "end") {
      ended = true;
      break;
    }
    ASSERT_EQ(e->event, "log") << e->data;
    Json data = Parse(e->data);
    ASSERT_EQ(std::stoll(JsonString(data["offset"])), next);
    const std::string& text = JsonString(data["text"]);
    ASSERT_EQ(text.find_first_not_of('a'), std::string::npos);
    next += static_cast<int64_t>(text.size());
  }
  EXPECT_EQ(next, 20000000);
}

TEST_F(HttpJobE2eTest, ServesTheOutputsListAndEachFilesBytesToTheJobsReadersOnly) {
  std::string alice = CreateUser("alice", "user");
  std::string bob = CreateUser("bob", "user");
  // 3 MB of bytes no text tool would keep (NUL, 0xff, no newline), in several gRPC chunks.
  std::string id = SubmitAs(
      alice, Shell("printf 'a\\000b\\377' > $DROVER_OUTPUT_DIR/x.bin; "
                   "head -c 3000000 /dev/zero | tr '\\0' '\\377' >> $DROVER_OUTPUT_DIR/x.bin; "
                   "printf 'end' >> $DROVER_OUTPUT_DIR/x.bin; "
                   "mkdir $DROVER_OUTPUT_DIR/sub; echo hello > $DROVER_OUTPUT_DIR/sub/y.txt"));
  WaitFor(id, v1::JobStatus::COMPLETED, absl::Seconds(120));
  std::string x_bin = std::string("a\0b\xff", 4) + std::string(3000000, '\xff') + "end";
  const std::string outputs = "/api/v1/jobs/" + id + "/outputs";

  Session s = Login(alice);
  HttpResponse list = Call("GET", outputs, s.get());
  ASSERT_EQ(list.status, 200) << list.body;
  EXPECT_EQ(Parse(list.body),
            Parse(R"({"files": [{"path": "sub/y.txt", "size": "6"},
                                {"path": "x.bin", "size": "3000007"}]})"));

  HttpResponse x = Call("GET", outputs + "/x.bin", s.get());
  ASSERT_EQ(x.status, 200) << x.body.substr(0, 200);
  EXPECT_EQ(x.body.size(), x_bin.size());
  EXPECT_TRUE(x.body == x_bin) << "the downloaded x.bin differs from what the job wrote";
  EXPECT_EQ(x.Header("content-type"), "application/octet-stream");
  EXPECT_EQ(x.Header("content-disposition"), "attachment; filename=\"x.bin\"; filename*=UTF-8''x.bin");
  EXPECT_EQ(x.Header("content-length"), "3000007");
  HttpResponse y = Call("GET", outputs + "/sub/y.txt", Bearer(alice));
  ASSERT_EQ(y.status, 200) << y.body;
  EXPECT_EQ(y.body, "hello\n");
  EXPECT_EQ(y.Header("content-disposition"), "attachment; filename=\"y.txt\"; filename*=UTF-8''y.txt");
  EXPECT_EQ(Call("GET", outputs + "/./sub//y.txt", s.get()).body, "hello\n");

  // Refused, each naming what it refused: traversal, a folder, a missing file.
  for (const char* path : {"/sub/../x.bin", "/%2e%2e/%2e%2e/etc/passwd", "/..",
                                  "/sub/%2E%2E/x.bin"}) {
    HttpResponse r = Call("GET", outputs + path, s.get());
    EXPECT_EQ(r.status, 400) << path << " " << r.body;
    EXPECT_THAT(r.body, HasSubstr("'..'")) << path;
  }
  EXPECT_EQ(Call("GET", outputs + "/x%00.bin", s.get()).status, 400);
  HttpResponse folder = Call("GET", outputs + "/sub", s.get());
  EXPECT_EQ(folder.status, 400) << folder.body;
  EXPECT_THAT(folder.body, HasSubstr("'sub'"));
  EXPECT_THAT(folder.body, HasSubstr("a folder"));
  HttpResponse missing = Call("GET", outputs + "/nope.bin", s.get());
  EXPECT_EQ(missing.status, 404) << missing.body;
  EXPECT_THAT(missing.body, HasSubstr("'nope.bin'"));

  // Another user is refused as for the job itself; an admin reads them.
  Session b = Login(bob);
  EXPECT_EQ(Call("GET", "/api/v1/jobs/" + id, b.get()).status, 403);
  for (const std::string& target : {outputs, outputs + "/x.bin", outputs + "/nope.bin"}) {
    HttpResponse r = Call("GET", target, b.get());
    EXPECT_EQ(r.status, 403) << target << " " << r.body;
    EXPECT_EQ(r.body.find("\xff\xff"), std::string::npos);
  }
  EXPECT_EQ(Call("GET", outputs + "/sub/y.txt", Bearer(testing::TestAdminTokenValue())).body,
            "hello\n");
}

TEST_F(HttpJobE2eTest, CancelByPostCancelsTheRunningJob) {
  std::string alice = CreateUser("alice", "user");
  std::string id = SubmitAs(alice, Shell("echo started; exec sleep 300"));
  WaitFor(id, v1::JobStatus::RUNNING);
  Session s = Login(alice);
  HttpResponse r = Call("POST", "/api/v1/jobs/" + id + "/cancel", s.post(),
                        DumpJson(Json{{"reason", "stopped from the web page"}}));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_THAT(JsonString(Parse(r.body)["status"]["state"]), ::testing::StartsWith("CANCEL"));
  v1::Job job = WaitFor(id, v1::JobStatus::CANCELED);
  EXPECT_THAT(job.status().message(), HasSubstr("stopped from the web page"));
  HttpResponse again = Call("GET", "/api/v1/jobs/" + id, s.get());
  EXPECT_EQ(Parse(again.body)["status"]["state"], "CANCELED");
}

TEST_F(HttpJobE2eTest, ABigSeriesIsThinnedForTheChartAndExactWhenItFits) {
  std::string id = Submit(Shell(
      "awk 'BEGIN { for (i = 0; i < 200000; i++) "
      "printf \"{\\\"n\\\":\\\"loss\\\",\\\"s\\\":%d,\\\"t\\\":1764170000,"
      "\\\"v\\\":%d}\\n\", i, (i == 123457 ? 1000000 : i % 1000) }' "
      ">> \"$DROVER_METRICS_DIR/rank-$DROVER_RANK.metrics\""));
  WaitFor(id, v1::JobStatus::COMPLETED, absl::Seconds(120));
  const Headers admin = Bearer(testing::TestAdminTokenValue());
  absl::Time start = absl::Now();
  HttpResponse thinned =
      Call("GET", "/api/v1/jobs/" + id + "/metrics?source=USER&name=loss&maxPoints=1000", admin);
  absl::Duration took = absl::Now() - start;
  ASSERT_EQ(thinned.status, 200) << thinned.body;
  Json series = Parse(thinned.body)["series"][0];
  EXPECT_EQ(series["totalPoints"], "200000");
  EXPECT_EQ(series["thinned"], true);
  EXPECT_EQ(series["method"], "minmax");
  const Json::array_t& steps = JsonItems(series["steps"]);
  const Json::array_t& values = JsonItems(series["values"]);
  ASSERT_LE(steps.size(), 1000u);
  ASSERT_GE(steps.size(), 500u);
  EXPECT_EQ(steps.front(), "0");
  EXPECT_EQ(steps.back(), "199999");
  int64_t previous = -1;
  bool spike = false;
  for (size_t k = 0; k < steps.size(); ++k) {
    int64_t step = std::stoll(JsonString(steps[k]));
    EXPECT_GT(step, previous);
    previous = step;
    if (step == 123457) spike = JsonDouble(values[k]) == 1000000;
  }
  EXPECT_TRUE(spike) << "the spike was thinned away";
  std::cout << "thinned 200000 points to " << steps.size() << " in " << took << "\n";
  // A range that fits is exact.
  HttpResponse range = Call(
      "GET", "/api/v1/jobs/" + id + "/metrics?name=loss&source=USER&fromStep=1000&toStep=1999",
      admin);
  Json exact = Parse(range.body)["series"][0];
  EXPECT_EQ(exact["totalPoints"], "1000");
  EXPECT_EQ(exact.count("thinned"), 0u);
  ASSERT_EQ(JsonItems(exact["steps"]).size(), 1000u);
  EXPECT_EQ(exact["steps"][0], "1000");
  EXPECT_EQ(exact["values"][999], 999);
  EXPECT_EQ(Call("GET", "/api/v1/jobs/" + id + "/metrics?maxPoints=20001", admin).status, 400);
  EXPECT_EQ(Call("GET", "/api/v1/jobs/" + id + "/metrics?fromStep=x", admin).status, 400);
}

}  // namespace
}  // namespace drover
