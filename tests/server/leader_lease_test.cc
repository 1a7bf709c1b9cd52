// LeaseKeeper (server/leader_lease.h): how a droverd stands by, takes over and notices that
// it lost the leader lease. Two SqliteStores opened on one file stand for two droverds on
// one database (the lease works alike on both engines: tests/storage/store_lease_test.cc).
// Wall time, as droverd's lease uses it; every wait polls with a deadline.
#include "server/leader_lease.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "storage/sqlite_store.h"
#include "tests/testing/temp_dir.h"

namespace drover::server {
namespace {

class LeaderLeaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (auto* store : {&a_, &b_}) {
      auto opened = storage::SqliteStore::Open({.path = dir_.path() + "/drover.db"});
      ASSERT_TRUE(opened.ok()) << opened.status();
      *store = *std::move(opened);
    }
  }
  void TearDown() override {
    if (a_ != nullptr) a_->Close();
    if (b_ != nullptr) b_->Close();
  }

  testing::TempDir dir_;
  std::unique_ptr<storage::Store> a_;
  std::unique_ptr<storage::Store> b_;
};

TEST_F(LeaderLeaseTest, StandsByNamingTheLeaderUntilStopped) {
  LeaseKeeper leader(*a_, {.holder = "a", .address = "head-a:7070", .ttl = absl::Seconds(30)});
  ASSERT_TRUE(leader.Acquire(nullptr, [](const std::string&) {}).ok());
  EXPECT_EQ(leader.token(), 1);

  LeaseKeeper standby(*b_, {.holder = "b", .address = "head-b:7070", .ttl = absl::Seconds(3)});
  absl::Notification stop;
  std::vector<std::string> named;
  absl::Status result = standby.Acquire(&stop, [&](const std::string& leader_address) {
    named.push_back(leader_address);
    if (named.size() == 2) stop.Notify();
  });
  EXPECT_TRUE(absl::IsCancelled(result)) << result;
  ASSERT_EQ(named.size(), 2u);
  EXPECT_EQ(named[0], "head-a:7070");
  EXPECT_EQ(named[1], "head-a:7070");
  leader.Stop();
}

TEST_F(LeaderLeaseTest, StandbyLeadsAtOnceWhenTheLeaderStopsAndReleases) {
  LeaseKeeper leader(*a_, {.holder = "a", .address = "head-a:7070", .ttl = absl::Seconds(60)});
  ASSERT_TRUE(leader.Acquire(nullptr, [](const std::string&) {}).ok());
  leader.StartRenewing([](absl::Status status) { ADD_FAILURE() << "lost: " << status; });

  LeaseKeeper standby(*b_, {.holder = "b", .address = "head-b:7070", .ttl = absl::Seconds(3)});
  absl::Notification standing_by;
  absl::Status result;
  std::thread waiter([&] {
    result = standby.Acquire(nullptr, [&](const std::string&) {
      if (!standing_by.HasBeenNotified()) standing_by.Notify();
    });
  });
  ASSERT_TRUE(standing_by.WaitForNotificationWithTimeout(absl::Seconds(30)));
  absl::Time released = absl::Now();
  // A graceful stop gives the lease up: the standby need not wait the 60 s it had left.
  leader.Stop(/*release=*/true);
  waiter.join();
  EXPECT_TRUE(result.ok()) << result;
  EXPECT_LT(absl::Now() - released, absl::Seconds(10));
  EXPECT_EQ(standby.token(), 2);  // a takeover: the next fencing token
  absl::StatusOr<std::optional<storage::LeaderLease>> stored = b_->LoadLeaderLease();
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_EQ((*stored)->holder, "b");
  EXPECT_EQ((*stored)->address, "head-b:7070");
}

TEST_F(LeaderLeaseTest, RestartedLeaderTakesItsOwnLeaseBackUnderTheSameToken) {
  {
    LeaseKeeper first(*a_, {.holder = "a", .address = "head-a:7070", .ttl = absl::Seconds(60)});
    ASSERT_TRUE(first.Acquire(nullptr, [](const std::string&) {}).ok());
  }  // crashed: never released
  LeaseKeeper again(*a_, {.holder = "a", .address = "head-a:7070", .ttl = absl::Seconds(60)});
  absl::Time start = absl::Now();
  ASSERT_TRUE(again.Acquire(nullptr, [](const std::string&) { ADD_FAILURE() << "stood by"; }).ok());
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_EQ(again.token(), 1);
}

TEST_F(LeaderLeaseTest, DeposedLeaderIsToldOnceAndItsWritesAreRefused) {
  LeaseKeeper leader(*a_, {.holder = "a", .address = "head-a:7070", .ttl = absl::Seconds(1)});
  ASSERT_TRUE(leader.Acquire(nullptr, [](const std::string&) {}).ok());
  absl::Mutex mu;
  std::vector<absl::Status> lost;
  leader.StartRenewing([&](absl::Status status) {
    absl::MutexLock lock(&mu);
    lost.push_back(status);
  });
  // Another droverd takes the lease (as if this one's had run out: its clock is ahead).
  absl::Notification taken;
  b_->AcquireLeaderLease("b", "head-b:7070", absl::Now() + absl::Minutes(1), absl::Minutes(5),
                         [&](absl::StatusOr<storage::LeaderLease> lease) {
                           EXPECT_TRUE(lease.ok()) << lease.status();
                           taken.Notify();
                         });
  taken.WaitForNotification();
  absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (absl::Now() < deadline) {
    absl::MutexLock lock(&mu);
    if (!lost.empty()) break;
    mu.AwaitWithTimeout(absl::Condition(+[](std::vector<absl::Status>* l) { return !l->empty(); },
                                        &lost),
                        absl::Milliseconds(100));
  }
  {
    absl::MutexLock lock(&mu);
    ASSERT_EQ(lost.size(), 1u);
    EXPECT_TRUE(absl::IsFailedPrecondition(lost[0])) << lost[0];
  }
  // The old leader's store refuses what it would write.
  absl::Notification written;
  absl::Status write;
  a_->PutNodeAdminState({.node = "n1", .reason = "late"}, [&](absl::Status s) {
    write = s;
    written.Notify();
  });
  written.WaitForNotification();
  EXPECT_TRUE(absl::IsUnavailable(write)) << write;
  leader.Stop();
  absl::MutexLock lock(&mu);
  EXPECT_EQ(lost.size(), 1u);
}

TEST_F(LeaderLeaseTest, LeaderThatCannotRenewStopsBeforeItsLeaseRunsOut) {
  LeaseKeeper leader(*a_, {.holder = "a", .address = "head-a:7070", .ttl = absl::Seconds(1)});
  ASSERT_TRUE(leader.Acquire(nullptr, [](const std::string&) {}).ok());
  absl::Time acquired = absl::Now();
  absl::Notification lost;
  absl::Status why;
  a_->Close();  // the database out of reach: every renewal fails
  leader.StartRenewing([&](absl::Status status) {
    why = status;
    lost.Notify();
  });
  ASSERT_TRUE(lost.WaitForNotificationWithTimeout(absl::Seconds(20)));
  // Told before the lease it holds (1 s from its last renewal) runs out.
  EXPECT_LT(absl::Now() - acquired, absl::Seconds(1) + absl::Milliseconds(300));
  EXPECT_TRUE(absl::IsUnavailable(why)) << why;
  leader.Stop();
}

}  // namespace
}  // namespace drover::server
