// `drover audit` against FakeDroverClient: filters become the request, pages are followed
// up to --limit, bad flags are usage errors, refusals exit 7.
#include <algorithm>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cli/cli_fixture.h"

namespace drover::cli {
namespace {

using ::testing::HasSubstr;

int Count(const std::string& text, char c) {
  return static_cast<int>(std::count(text.begin(), text.end(), c));
}

v1::AuditRecord Record(int64_t id, const std::string& who, const std::string& method, int code,
                       const std::string& message = "") {
  v1::AuditRecord record;
  record.set_id(id);
  record.mutable_time()->set_seconds(1'000'000 + id);
  record.set_who(who);
  record.set_who_kind(who.empty() ? "anonymous" : "user");
  record.set_peer("ipv4:10.0.0.5:4000");
  record.set_method(method);
  record.set_target("j-" + std::to_string(id));
  record.set_code(code);
  record.set_message(message);
  return record;
}

TEST_F(CliTest, AuditPrintsWhoWhatFromWhereAndTheResult) {
  server_.audit.push_back(Record(2, "alice", "/drover.v1.JobService/CancelJob", 7,
                                 "CordonNode needs the role admin"));
  server_.audit.push_back(Record(1, "", "/drover.v1.JobService/SubmitJob", 0));
  ASSERT_EQ(Run({"audit"}), 0) << err();
  EXPECT_EQ(out(),
            "TIME                 WHO          FROM                METHOD                TARGET  RESULT\n"
            "1970-01-12 13:46:42  alice        ipv4:10.0.0.5:4000  JobService/CancelJob  j-2     "
            "PERMISSION_DENIED: CordonNode needs the role admin\n"
            "1970-01-12 13:46:41  (anonymous)  ipv4:10.0.0.5:4000  JobService/SubmitJob  j-1     OK\n");
  ASSERT_EQ(Run({"audit", "--json"}), 0) << err();
  EXPECT_THAT(out(), HasSubstr("\"who\":\"alice\""));
  EXPECT_THAT(out(), HasSubstr("\"method\":\"/drover.v1.JobService/CancelJob\""));
}

TEST_F(CliTest, AuditSendsItsFiltersAndFollowsPagesUpToTheLimit) {
  for (int i = 2500; i > 0; --i) server_.audit.push_back(Record(i, "bob", "/m/M", 0));
  ASSERT_EQ(Run({"audit", "--since", "1h", "--user", "bob", "--method", "SubmitJob", "--limit",
                 "1200", "--json"}),
            0)
      << err();
  ASSERT_EQ(server_.audit_requests.size(), 2u);
  const v1::ListAuditRecordsRequest& first = server_.audit_requests[0];
  EXPECT_EQ(first.since().seconds(), 1'000'100 - 3600);
  EXPECT_EQ(first.who(), "bob");
  EXPECT_EQ(first.method(), "SubmitJob");
  EXPECT_EQ(first.page_size(), 1000);
  EXPECT_EQ(server_.audit_requests[1].page_size(), 200);
  EXPECT_EQ(Count(out(), '\n'), 1200 + 2);  // [ ... ]
  // A huge limit takes every page and stops at the last.
  server_.audit_requests.clear();
  ASSERT_EQ(Run({"audit", "--limit", "9223372036854775807", "--since", "7d"}), 0) << err();
  EXPECT_EQ(server_.audit_requests.size(), 3u);
  EXPECT_EQ(server_.audit_requests[0].since().seconds(), 1'000'100 - 7 * 86400);
  EXPECT_EQ(Count(out(), '\n'), 2500 + 1);
}

TEST_F(CliTest, AuditRefusesBadFlagsBeforeCallingDroverd) {
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"audit", "--since", "yesterday"},
                                             {"audit", "--since", "-1h"},
                                             {"audit", "--since", "0s"},
                                             {"audit", "--since", "99999999999d"},
                                             {"audit", "--since", "1970-01-01T00:00:00Z"},
                                             {"audit", "--limit", "0"},
                                             {"audit", "--limit", "-5"},
                                             {"audit", "extra"}}) {
    EXPECT_EQ(Run(args), 2) << args[1] << " " << (args.size() > 2 ? args[2] : "");
  }
  EXPECT_TRUE(server_.audit_requests.empty());
  EXPECT_EQ(Run({"audit", "--since", "2026-05-01T12:00:00Z"}), 0) << err();
  EXPECT_EQ(Run({"audit", "--help"}), 0);
  EXPECT_THAT(out(), HasSubstr("--since"));
  EXPECT_THAT(out(), HasSubstr("  7   not allowed"));
}

TEST_F(CliTest, AuthRefusalsExitSevenWithWhatToDo) {
  server_.errors.push_back(absl::PermissionDeniedError(
      "ListAuditRecords needs the role admin; user 'vic' has the role viewer (an admin changes it)"));
  EXPECT_EQ(Run({"audit"}), 7);
  ExpectOneErrorLine("needs the role admin");
  server_.errors.push_back(absl::UnauthenticatedError("this call needs a user token; pass it with --token, DROVER_TOKEN or drover login"));
  EXPECT_EQ(Run({"list"}), 7);
  ExpectOneErrorLine("drover login");
}

TEST_F(CliTest, GcRunsTheRetentionPassAndSaysWhatItRemoved) {
  server_.gc_response.set_blobs_removed(3);
  server_.gc_response.set_blob_bytes_removed(3 << 20);
  server_.gc_response.set_blobs_kept(10);
  server_.gc_response.set_blob_bytes_kept(int64_t{5} << 30);
  server_.gc_response.set_jobs_logs_removed(2);
  server_.gc_response.set_log_bytes_removed(1536);
  server_.gc_response.set_jobs_marked(1);
  server_.gc_response.set_jobs_deferred(4);
  server_.gc_response.mutable_took()->set_nanos(250'000'000);
  ASSERT_EQ(Run({"gc", "--dry-run"}), 0) << err();
  ASSERT_EQ(server_.gc_requests.size(), 1u);
  EXPECT_TRUE(server_.gc_requests[0].dry_run());
  EXPECT_EQ(out(),
            "would remove 3 blobs (3 MiB); kept 10 (5 GiB)\n"
            "would remove the logs of 2 jobs (1.5 KiB)\n"
            "would mark 1 jobs as having lost their snapshot or outputs\n"
            "4 jobs left for the next pass (a pass changes a bounded number)\n"
            "took 0.250s\n");
  ASSERT_EQ(Run({"gc"}), 0) << err();
  EXPECT_FALSE(server_.gc_requests[1].dry_run());
  EXPECT_THAT(out(), HasSubstr("removed 3 blobs"));
  EXPECT_EQ(Run({"gc", "extra"}), 2);
}

}  // namespace
}  // namespace drover::cli
