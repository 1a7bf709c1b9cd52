// The leader lease (Store::AcquireLeaderLease, RenewLeaderLease, LoadLeaderLease) and the
// fencing of writes, on both engines: two stores opened on one database stand for two
// droverds sharing it (on SQLite one file, which in production only one droverd opens).
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/storage/store_test_util.h"

namespace drover::storage {
namespace {

using ::testing::HasSubstr;

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);
constexpr absl::Duration kTtl = absl::Seconds(10);

absl::StatusOr<LeaderLease> AcquireSync(Store& store, const std::string& holder,
                                        const std::string& address, absl::Time now,
                                        absl::Duration ttl = kTtl) {
  absl::Notification done;
  absl::StatusOr<LeaderLease> out = absl::UnknownError("not called");
  store.AcquireLeaderLease(holder, address, now, ttl, [&](absl::StatusOr<LeaderLease> lease) {
    out = std::move(lease);
    done.Notify();
  });
  done.WaitForNotification();
  return out;
}

absl::StatusOr<LeaderLease> RenewSync(Store& store, const std::string& holder, int64_t token,
                                      absl::Time now) {
  absl::Notification done;
  absl::StatusOr<LeaderLease> out = absl::UnknownError("not called");
  store.RenewLeaderLease(holder, token, now, kTtl, [&](absl::StatusOr<LeaderLease> lease) {
    out = std::move(lease);
    done.Notify();
  });
  done.WaitForNotification();
  return out;
}

absl::Status Cordon(Store& store, const std::string& node) {
  return Sync([&](auto done) {
    store.PutNodeAdminState({.node = node, .reason = "check", .set_time = kT0}, std::move(done));
  });
}

std::vector<std::string> CordonedNodes(Store& store) {
  std::vector<std::string> names;
  absl::StatusOr<std::vector<NodeAdminState>> states = store.LoadNodeAdminStates();
  EXPECT_TRUE(states.ok()) << states.status();
  if (states.ok()) {
    for (const NodeAdminState& state : *states) names.push_back(state.node);
  }
  return names;
}

TEST_P(StoreTest, LeaderLeaseIsTakenRenewedAndRefusedWhileAnotherHoldsIt) {
  auto store = OpenStore();
  absl::StatusOr<std::optional<LeaderLease>> none = store->LoadLeaderLease();
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_FALSE(none->has_value());

  absl::StatusOr<LeaderLease> a = AcquireSync(*store, "droverd-a", "10.0.0.1:7000", kT0);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->holder, "droverd-a");
  EXPECT_EQ(a->address, "10.0.0.1:7000");
  EXPECT_EQ(a->token, 1);
  EXPECT_EQ(a->expire_time, kT0 + kTtl);

  // Another holder is refused while the lease runs, told who holds it and where.
  absl::StatusOr<LeaderLease> b = AcquireSync(*store, "droverd-b", "10.0.0.2:7000",
                                              kT0 + absl::Seconds(5));
  EXPECT_EQ(b.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(b.status().message(), HasSubstr("droverd-a"));
  EXPECT_THAT(b.status().message(), HasSubstr("10.0.0.1:7000"));

  // The holder renews under its token, and taking it again keeps the token.
  absl::StatusOr<LeaderLease> renewed = RenewSync(*store, "droverd-a", 1, kT0 + absl::Seconds(5));
  ASSERT_TRUE(renewed.ok()) << renewed.status();
  EXPECT_EQ(renewed->token, 1);
  EXPECT_EQ(renewed->address, "10.0.0.1:7000");
  EXPECT_EQ(renewed->expire_time, kT0 + absl::Seconds(15));
  absl::StatusOr<LeaderLease> again = AcquireSync(*store, "droverd-a", "10.0.0.1:7000",
                                                  kT0 + absl::Seconds(6));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->token, 1);

  // Once it ran out, another holder takes it under the next token; the old holder's renewal
  // is refused as deposed.
  b = AcquireSync(*store, "droverd-b", "10.0.0.2:7000", kT0 + absl::Seconds(16));
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->token, 2);
  absl::StatusOr<LeaderLease> deposed = RenewSync(*store, "droverd-a", 1, kT0 + absl::Seconds(17));
  EXPECT_EQ(deposed.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(deposed.status().message(), HasSubstr("droverd-b"));
  // A renewal under a token never held is refused too.
  EXPECT_EQ(RenewSync(*store, "droverd-b", 7, kT0 + absl::Seconds(17)).status().code(),
            absl::StatusCode::kFailedPrecondition);

  absl::StatusOr<std::optional<LeaderLease>> stored = store->LoadLeaderLease();
  ASSERT_TRUE(stored.ok()) << stored.status();
  ASSERT_TRUE(stored->has_value());
  EXPECT_EQ((*stored)->holder, "droverd-b");
  EXPECT_EQ((*stored)->address, "10.0.0.2:7000");
  EXPECT_EQ((*stored)->token, 2);
  EXPECT_EQ((*stored)->expire_time, kT0 + absl::Seconds(26));
}

TEST_P(StoreTest, LeaderLeaseRefusesAnEmptyHolderAndADurationThatIsNotPositive) {
  auto store = OpenStore();
  absl::StatusOr<LeaderLease> empty = AcquireSync(*store, "", "10.0.0.1:7000", kT0);
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(empty.status().message(), HasSubstr("holder"));
  absl::StatusOr<LeaderLease> zero =
      AcquireSync(*store, "droverd-a", "10.0.0.1:7000", kT0, absl::ZeroDuration());
  EXPECT_EQ(zero.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(zero.status().message(), HasSubstr("positive"));
  EXPECT_EQ(
      AcquireSync(*store, "droverd-a", "10.0.0.1:7000", kT0, -absl::Seconds(1)).status().code(),
      absl::StatusCode::kInvalidArgument);
  // Hostile text is kept as it is (values are parameters, never SQL).
  const std::string hostile = "a'; DROP TABLE leader_lease; --\n\xe2\x98\x83";
  absl::StatusOr<LeaderLease> odd = AcquireSync(*store, hostile, hostile, kT0);
  ASSERT_TRUE(odd.ok()) << odd.status();
  absl::StatusOr<std::optional<LeaderLease>> stored = store->LoadLeaderLease();
  ASSERT_TRUE(stored.ok()) << stored.status();
  ASSERT_TRUE(stored->has_value());
  EXPECT_EQ((*stored)->holder, hostile);
  EXPECT_EQ((*stored)->address, hostile);
  EXPECT_EQ((*stored)->token, 1);
}

TEST_P(StoreTest, ADeposedLeaderCommitsNothingUntilItTakesTheLeaseAgain) {
  auto a = OpenStore();
  auto b = OpenStore();
  ASSERT_TRUE(AcquireSync(*a, "droverd-a", "10.0.0.1:7000", kT0).ok());
  ASSERT_TRUE(Cordon(*a, "n1").ok());
  // A store that never took the lease writes unchecked, as a lone droverd does.
  ASSERT_TRUE(Cordon(*b, "n2").ok());

  absl::StatusOr<LeaderLease> taken =
      AcquireSync(*b, "droverd-b", "10.0.0.2:7000", kT0 + kTtl + absl::Seconds(1));
  ASSERT_TRUE(taken.ok()) << taken.status();
  EXPECT_EQ(taken->token, 2);

  // The deposed leader's writes fail, retryable, naming who leads; none is committed.
  absl::Status refused = Cordon(*a, "n3");
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable) << refused;
  EXPECT_THAT(refused.message(), HasSubstr("no longer leads"));
  EXPECT_THAT(refused.message(), HasSubstr("droverd-b"));
  absl::StatusOr<CreateJobResult> job = CreateSync(*a, NewJob());
  EXPECT_EQ(job.status().code(), absl::StatusCode::kUnavailable) << job.status();
  EXPECT_THAT(CordonedNodes(*b), ::testing::ElementsAre("n1", "n2"));
  absl::StatusOr<std::vector<v1::Job>> jobs = b->LoadUnfinishedJobs();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  EXPECT_TRUE(jobs->empty());

  // The new leader writes; the old one, once the new lease ran out, takes it again under a
  // third token and writes again, while the one it deposed commits nothing.
  ASSERT_TRUE(Cordon(*b, "n4").ok());
  absl::StatusOr<LeaderLease> back =
      AcquireSync(*a, "droverd-a", "10.0.0.1:7000", kT0 + 3 * kTtl);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->token, 3);
  ASSERT_TRUE(Cordon(*a, "n5").ok());
  EXPECT_EQ(Cordon(*b, "n6").code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(CordonedNodes(*a), ::testing::ElementsAre("n1", "n2", "n4", "n5"));
}

TEST_P(StoreTest, LeaderLeaseTokenSurvivesAReopenAndIsNeverReused) {
  {
    auto store = OpenStore();
    ASSERT_TRUE(AcquireSync(*store, "droverd-a", "10.0.0.1:7000", kT0).ok());
    ASSERT_TRUE(
        AcquireSync(*store, "droverd-b", "10.0.0.2:7000", kT0 + absl::Seconds(20)).ok());
  }
  auto store = OpenStore();
  absl::StatusOr<std::optional<LeaderLease>> stored = store->LoadLeaderLease();
  ASSERT_TRUE(stored.ok()) << stored.status();
  ASSERT_TRUE(stored->has_value());
  EXPECT_EQ((*stored)->holder, "droverd-b");
  EXPECT_EQ((*stored)->token, 2);
  absl::StatusOr<LeaderLease> next =
      AcquireSync(*store, "droverd-a", "10.0.0.1:7000", kT0 + absl::Seconds(40));
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->token, 3);
}

}  // namespace
}  // namespace drover::storage
