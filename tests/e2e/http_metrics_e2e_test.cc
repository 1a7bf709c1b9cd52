// droverd's HTTP face, GET /metrics (issue 20, docs/http-api.md): query parameters a client
// gets wrong, or sends to hurt, are refused with a 400 that names the parameter, before any
// series is read; droverd goes on answering. (A thinned series and an exact range of a
// running job are in http_job_e2e_test.cc.)
#include "tests/e2e/http_e2e_fixture.h"

namespace drover::http_e2e {
namespace {

// droverd alone (no agent, no root), plain HTTP on loopback: the job stays queued.
class HttpMetricsE2eTest : public HttpFixture {
 protected:
  HttpMetricsE2eTest() : HttpFixture(/*needs_root=*/false) {}
  void SetUp() override {
    HttpFixture::SetUp();
    if (IsSkipped()) return;
    StartWithHttp({.agents = 0, .datastore_root = false}, /*plain=*/true);
  }
};

TEST_F(HttpMetricsE2eTest, HostileRangesAndPointCountsGetAClear400) {
  std::string alice = CreateUser("alice", "user");
  std::string id = SubmitAs(alice, Shell("echo never runs"));
  const std::string base = "/api/v1/jobs/" + id + "/metrics?";
  struct Case {
    std::string query;
    std::string names;  // what the error message must name
  };
  const std::vector<Case> cases = {
      {"maxPoints=1000000000", "maxPoints"},         // 10^9 buckets
      {"maxPoints=20001", "maxPoints"},
      {"maxPoints=0", "maxPoints"},
      {"maxPoints=-4", "maxPoints"},
      {"maxPoints=NaN", "maxPoints"},
      {"maxPoints=1e3", "maxPoints"},
      {"fromStep=-1", "fromStep"},                  // steps are never negative
      {"toStep=-9223372036854775808", "toStep"},
      {"fromStep=NaN", "fromStep"},
      {"toStep=Infinity", "toStep"},
      {"fromStep=1e30", "fromStep"},
      {"toStep=99999999999999999999999", "toStep"},  // past int64
      {"fromStep=0x10", "fromStep"},
      {"fromStep=5&toStep=4", "fromStep"},          // an empty range
      {"fromStep=9223372036854775807&toStep=0", "fromStep"},
      {"rank=-1", "rank"},
      {"source=BOTH", "source"},
      {"attempt=-1", "attempt"},
  };
  for (const Case& c : cases) {
    HttpResponse r = Call("GET", base + c.query, Bearer(alice));
    EXPECT_EQ(r.status, 400) << c.query << ": " << r.body;
    EXPECT_THAT(r.body, HasSubstr(c.names)) << c.query;
  }
  // The widest range and the most points a chart may ask are fine (the job has no points
  // yet), and droverd still answers.
  HttpResponse widest = Call(
      "GET", base + "fromStep=0&toStep=9223372036854775807&maxPoints=20000", Bearer(alice));
  EXPECT_EQ(widest.status, 200) << widest.body;
  EXPECT_THAT(widest.body, HasSubstr("\"series\":[]"));
  EXPECT_EQ(Call("GET", base + "fromStep=7&toStep=7&maxPoints=1", Bearer(alice)).status, 200);
  EXPECT_EQ(Call("GET", "/api/v1/jobs", Bearer(alice)).status, 200);
}

}  // namespace
}  // namespace drover::http_e2e
