#include "storage/sqlite_store.h"

#include <string>
#include <utility>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/storage/store_test_util.h"

namespace drover::storage {
namespace {


AuditRecord Audit(absl::Time time, std::string who, std::string method, int code = 0) {
  return {.time = time,
          .who = std::move(who),
          .who_kind = "user",
          .peer = "ipv4:127.0.0.1:5000",
          .method = std::move(method),
          .target = "j-1",
          .code = code,
          .message = code == 0 ? "" : "refused"};
}

TEST_P(StoreTest, AuditRecordsSurviveAReopenAndListNewestFirstWithFiltersAndPages) {
  const absl::Time t = absl::FromUnixSeconds(1700000000);
  {
    auto store = OpenStore();
    for (int i = 0; i < 5; ++i) {
      ASSERT_TRUE(Sync([&](auto done) {
                    store->AppendAudit(Audit(t + absl::Seconds(i), i % 2 ? "bob" : "alice",
                                             i < 3 ? "/drover.v1.JobService/SubmitJob"
                                                   : "/drover.v1.JobService/CancelJob",
                                             i == 4 ? 7 : 0),
                                       std::move(done));
                  }).ok());
    }
  }
  auto store = OpenStore();  // durable: read back after a restart
  absl::StatusOr<AuditPage> all = store->ListAudit({});
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->records.size(), 5u);
  EXPECT_EQ(all->records[0].time, t + absl::Seconds(4));
  EXPECT_EQ(all->records[0].code, 7);
  EXPECT_EQ(all->records[0].message, "refused");
  EXPECT_EQ(all->records[0].peer, "ipv4:127.0.0.1:5000");
  EXPECT_EQ(all->records[0].target, "j-1");
  EXPECT_GT(all->records[0].id, all->records[1].id);
  EXPECT_EQ(all->next_before_id, 0);

  absl::StatusOr<AuditPage> bobs = store->ListAudit({.who = "bob"});
  ASSERT_TRUE(bobs.ok());
  EXPECT_EQ(bobs->records.size(), 2u);
  absl::StatusOr<AuditPage> since = store->ListAudit({.since = t + absl::Seconds(3)});
  ASSERT_TRUE(since.ok());
  EXPECT_EQ(since->records.size(), 2u);
  // A method by its full name or its last part; LIKE's wildcards match nothing.
  for (const char* method : {"/drover.v1.JobService/SubmitJob", "SubmitJob", "JobService/SubmitJob"}) {
    absl::StatusOr<AuditPage> submits = store->ListAudit({.method = method});
    ASSERT_TRUE(submits.ok());
    EXPECT_EQ(submits->records.size(), 3u) << method;
  }
  for (const char* method : {"%", "_ubmitJob", "Submit", "\\"}) {
    absl::StatusOr<AuditPage> none = store->ListAudit({.method = method});
    ASSERT_TRUE(none.ok()) << method;
    EXPECT_TRUE(none->records.empty()) << method;
  }
  // Pages of two, then the rest.
  absl::StatusOr<AuditPage> first = store->ListAudit({.limit = 2});
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->records.size(), 2u);
  ASSERT_NE(first->next_before_id, 0);
  absl::StatusOr<AuditPage> second =
      store->ListAudit({.limit = 100, .before_id = first->next_before_id});
  ASSERT_TRUE(second.ok());
  ASSERT_EQ(second->records.size(), 3u);
  EXPECT_EQ(second->records[0].id, first->records[1].id - 1);
  // Hostile limits and times are clamped, not errors.
  for (int limit : {0, -1, 1 << 30}) {
    absl::StatusOr<AuditPage> page = store->ListAudit({.limit = limit});
    ASSERT_TRUE(page.ok()) << limit;
    EXPECT_FALSE(page->records.empty()) << limit;
  }
  absl::StatusOr<AuditPage> future = store->ListAudit({.since = absl::InfiniteFuture()});
  ASSERT_TRUE(future.ok());
  EXPECT_TRUE(future->records.empty());
  absl::StatusOr<AuditPage> past = store->ListAudit({.since = absl::FromUnixSeconds(-100)});
  ASSERT_TRUE(past.ok());
  EXPECT_EQ(past->records.size(), 5u);
}

TEST_P(StoreTest, AuditRetentionRemovesOldAndSurplusRecordsInBoundedSteps) {
  auto store = OpenStore();
  const absl::Time t = absl::FromUnixSeconds(1700000000);
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(Sync([&](auto done) {
                  store->AppendAudit(Audit(t + absl::Hours(i), "alice", "/m/M"), std::move(done));
                }).ok());
  }
  auto count = [&] {
    absl::StatusOr<AuditPage> page = store->ListAudit({.limit = 1000});
    return page.ok() ? static_cast<int>(page->records.size()) : -1;
  };
  // Older than hour 3: three records, but at most two per prune.
  ASSERT_TRUE(Sync([&](auto done) {
                store->PruneAudit(t + absl::Hours(3), 1000, 2, std::move(done));
              }).ok());
  EXPECT_EQ(count(), 8);
  ASSERT_TRUE(Sync([&](auto done) {
                store->PruneAudit(t + absl::Hours(3), 1000, 2, std::move(done));
              }).ok());
  EXPECT_EQ(count(), 7);
  // Keep the newest four, whatever their time.
  ASSERT_TRUE(Sync([&](auto done) {
                store->PruneAudit(absl::InfinitePast(), 4, 1000, std::move(done));
              }).ok());
  EXPECT_EQ(count(), 4);
  absl::StatusOr<AuditPage> left = store->ListAudit({});
  ASSERT_TRUE(left.ok());
  EXPECT_EQ(left->records.back().time, t + absl::Hours(6));
  // Nothing to remove is no error; nor is keeping zero.
  ASSERT_TRUE(Sync([&](auto done) {
                store->PruneAudit(absl::InfinitePast(), 4, 1000, std::move(done));
              }).ok());
  EXPECT_EQ(count(), 4);
  ASSERT_TRUE(Sync([&](auto done) {
                store->PruneAudit(absl::InfinitePast(), 0, 1000, std::move(done));
              }).ok());
  EXPECT_EQ(count(), 0);
}

}  // namespace
}  // namespace drover::storage
