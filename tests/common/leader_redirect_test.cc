// Following the leader (common/leader_redirect.h): a standby's answer sends a client or an
// agent only to a droverd it was configured with, never to a host the answer alone names.
#include "common/leader_redirect.h"

#include <grpcpp/support/string_ref.h>

#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace drover {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Trailing metadata with `value` under the leader key (and noise under others).
std::optional<size_t> Leader(const std::string& value, const std::vector<std::string>& known) {
  static const std::string kOther = "x-other";
  std::multimap<grpc::string_ref, grpc::string_ref> trailing;
  trailing.emplace(kOther, known.empty() ? value : known[0]);
  trailing.emplace(kLeaderMetadataKey, value);
  return KnownLeader(trailing, known);
}

TEST(LeaderRedirectTest, FollowsOnlyAConfiguredAddressExactly) {
  std::vector<std::string> known = {"head-a:7070", "head-b:7070"};
  EXPECT_EQ(Leader("head-b:7070", known), 1u);
  EXPECT_EQ(Leader("head-a:7070", known), 0u);
  // A hostile or misconfigured standby: anything else is ignored.
  for (const std::string& hostile :
       {std::string("evil.example.org:443"), std::string("head-b:70700"),
        std::string("head-b:707"), std::string("head-b:7070 "), std::string("head-b:7070\n"),
        std::string("HEAD-B:7070"), std::string("head-b:7070,evil:1"), std::string(""),
        std::string("head-b:7070\0evil:1", 18), std::string(100000, 'a')}) {
    EXPECT_EQ(Leader(hostile, known), std::nullopt) << hostile.substr(0, 40);
  }
  std::multimap<grpc::string_ref, grpc::string_ref> none;
  EXPECT_EQ(KnownLeader(none, known), std::nullopt);
  EXPECT_EQ(Leader("head-a:7070", {}), std::nullopt);
}

TEST(LeaderRedirectTest, ParsesAListOfDroverdsAndNamesTheFlagForABadOne) {
  absl::StatusOr<std::vector<std::string>> one = ParseDroverdAddresses("server", "head:7070");
  ASSERT_TRUE(one.ok());
  EXPECT_THAT(*one, ElementsAre("head:7070"));
  absl::StatusOr<std::vector<std::string>> two =
      ParseDroverdAddresses("scheduler", "head-a:7070,head-b:7070");
  ASSERT_TRUE(two.ok());
  EXPECT_THAT(*two, ElementsAre("head-a:7070", "head-b:7070"));
  for (const char* bad : {"", ",", "head-a:7070,", ",head-a:7070", "head-a:7070,,head-b:7070",
                          "head-a:7070, head-b:7070", "head-a:7070\nhead-b:7070"}) {
    absl::StatusOr<std::vector<std::string>> parsed = ParseDroverdAddresses("scheduler", bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_TRUE(absl::IsInvalidArgument(parsed.status()));
    EXPECT_THAT(parsed.status().message(), HasSubstr("--scheduler: '"));
  }
}

}  // namespace
}  // namespace drover
