// The fixture of droverd's HTTP face's end-to-end tests (http_e2e_test.cc: identity,
// cross-site rules, hostile requests, static files, stream caps; http_job_e2e_test.cc: a
// job with an agent followed over HTTPS): a real droverd with --http-listen, spoken to with
// a small HTTP client.
#ifndef DROVER_TESTS_E2E_HTTP_E2E_FIXTURE_H_
#define DROVER_TESTS_E2E_HTTP_E2E_FIXTURE_H_

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

namespace drover::http_e2e {


using ::testing::HasSubstr;
using ::testing::Not;
using testing::Headers;
using testing::HttpConnection;
using testing::HttpResponse;

inline Json Parse(const std::string& text) {
  absl::StatusOr<Json> json = ParseJson(text);
  EXPECT_TRUE(json.ok()) << json.status() << ": " << text;
  return json.ok() ? *json : Json();
}

inline std::string ReadAll(const std::string& path) {
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

}  // namespace drover::http_e2e

#endif  // DROVER_TESTS_E2E_HTTP_E2E_FIXTURE_H_
