// Tests of server/http/client_limits.h and spool_budget.h: what one client address may take
// of the HTTP face (connections, logins), and the spool's byte budget. Time is the test's.
#include "server/http/client_limits.h"

#include <string>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "server/http/spool_budget.h"

namespace drover::server::http {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1700000000);

TEST(ClientLimitsTest, AClientIsAnIpv4AddressOrAnIpv6Slash64) {
  EXPECT_EQ(ClientLimits::ClientOf("192.0.2.7"), "192.0.2.7");
  EXPECT_EQ(ClientLimits::ClientOf("::ffff:192.0.2.7"), "192.0.2.7");
  EXPECT_EQ(ClientLimits::ClientOf("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
  EXPECT_EQ(ClientLimits::ClientOf("2001:db8:1:2:bbbb::9"), "2001:db8:1:2::/64");
  EXPECT_NE(ClientLimits::ClientOf("2001:db8:1:3::1"), "2001:db8:1:2::/64");
}

TEST(ClientLimitsTest, ConnectionsAreCappedPerClientAndFreedWhenTheyClose) {
  ClientLimits limits({.max_connections_per_client = 2});
  EXPECT_TRUE(limits.OpenConnection("a"));
  EXPECT_TRUE(limits.OpenConnection("a"));
  EXPECT_FALSE(limits.OpenConnection("a"));
  EXPECT_EQ(limits.Connections("a"), 2);
  EXPECT_TRUE(limits.OpenConnection("b"));  // another address is not held back
  limits.CloseConnection("a");
  EXPECT_TRUE(limits.OpenConnection("a"));
  limits.CloseConnection("a");
  limits.CloseConnection("a");
  limits.CloseConnection("a");  // one more close than opens: never below zero
  EXPECT_EQ(limits.Connections("a"), 0);
  EXPECT_TRUE(limits.OpenConnection("a"));
  EXPECT_TRUE(limits.OpenConnection("a"));
  EXPECT_FALSE(limits.OpenConnection("a"));
}

TEST(ClientLimitsTest, NoConnectionLimitWithZero) {
  ClientLimits limits({.max_connections_per_client = 0});
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(limits.OpenConnection("a"));
}

TEST(ClientLimitsTest, LoginsComeInABurstThenOnePerInterval) {
  ClientLimits limits({.login_burst = 3, .login_interval = absl::Seconds(6)});
  for (int i = 0; i < 3; ++i) EXPECT_EQ(limits.TakeLogin("a", kStart), absl::ZeroDuration());
  EXPECT_EQ(limits.TakeLogin("a", kStart), absl::Seconds(6));
  EXPECT_EQ(limits.TakeLogin("b", kStart), absl::ZeroDuration());  // another address logs in
  EXPECT_NEAR(absl::ToDoubleSeconds(limits.TakeLogin("a", kStart + absl::Seconds(2))), 4, 1e-6);
  EXPECT_EQ(limits.TakeLogin("a", kStart + absl::Seconds(6)), absl::ZeroDuration());
  EXPECT_GT(limits.TakeLogin("a", kStart + absl::Seconds(6)), absl::ZeroDuration());
  // After a long pause the whole burst is back, and no more.
  const absl::Time later = kStart + absl::Hours(1);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(limits.TakeLogin("a", later), absl::ZeroDuration());
  EXPECT_GT(limits.TakeLogin("a", later), absl::ZeroDuration());
}

TEST(ClientLimitsTest, AClockGoneBackGivesNoLogins) {
  ClientLimits limits({.login_burst = 1, .login_interval = absl::Seconds(6)});
  EXPECT_EQ(limits.TakeLogin("a", kStart), absl::ZeroDuration());
  EXPECT_GT(limits.TakeLogin("a", kStart - absl::Hours(1)), absl::ZeroDuration());
  EXPECT_GT(limits.TakeLogin("a", kStart + absl::Seconds(1)), absl::ZeroDuration());
}

TEST(ClientLimitsTest, NoLoginLimitWithAZeroBurst) {
  ClientLimits limits({.login_burst = 0});
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(limits.TakeLogin("a", kStart), absl::ZeroDuration());
}

TEST(ClientLimitsTest, TheBucketsKeptAreBoundedAndRefilledOnesMakeRoom) {
  ClientLimits limits({.login_burst = 2, .login_interval = absl::Seconds(6), .max_clients = 3});
  for (const char* client : {"a", "b", "c"}) {
    EXPECT_EQ(limits.TakeLogin(client, kStart), absl::ZeroDuration());
  }
  // Every kept bucket is in use: a fourth address waits rather than growing the map.
  EXPECT_GT(limits.TakeLogin("d", kStart), absl::ZeroDuration());
  // Once they refilled they are forgotten, and "d" gets its burst.
  EXPECT_EQ(limits.TakeLogin("d", kStart + absl::Seconds(6)), absl::ZeroDuration());
  EXPECT_EQ(limits.TakeLogin("d", kStart + absl::Seconds(6)), absl::ZeroDuration());
}

TEST(SpoolBudgetTest, ReservationsStayUnderTheCapAndComeBack) {
  SpoolBudget budget(100);
  EXPECT_TRUE(budget.Reserve(60));
  EXPECT_FALSE(budget.Reserve(41));
  EXPECT_TRUE(budget.Reserve(40));
  EXPECT_EQ(budget.used(), 100u);
  budget.Release(60);
  EXPECT_TRUE(budget.Reserve(50));
  EXPECT_FALSE(budget.Fits(101));
  EXPECT_TRUE(budget.Fits(100));
  // A size an archive claims beyond any disk: refused, nothing reserved, no overflow.
  EXPECT_FALSE(budget.Reserve(~uint64_t{0}));
  EXPECT_EQ(budget.used(), 90u);
  budget.Release(1000);  // more than held: never below zero
  EXPECT_EQ(budget.used(), 0u);
  SpoolBudget unlimited(0);
  EXPECT_TRUE(unlimited.Fits(~uint64_t{0}));
  EXPECT_TRUE(unlimited.Reserve(uint64_t{1} << 62));
}

}  // namespace
}  // namespace drover::server::http
