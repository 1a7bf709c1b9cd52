// Tests of agent/runtime/json.h found by fuzzing (tests/fuzz/json_fuzz.cc).
#include "agent/runtime/json.h"

#include <cmath>
#include <cstdint>
#include <limits>

#include "gtest/gtest.h"

namespace drover::agent {
namespace {

// Found by json_fuzz: AsInt of 1e308 converted a double outside int64's range, which is
// undefined behaviour (UBSan stops there; on x86 it gave INT64_MIN for a huge positive
// number).
TEST(JsonTest, AsIntSaturatesNumbersBeyondInt64) {
  absl::StatusOr<Json> parsed = Json::Parse("[1e308, -1e308, 9.3e18, 1.9, -1.9]");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const std::vector<Json>& items = parsed->items();
  ASSERT_EQ(items.size(), 5u);
  EXPECT_EQ(items[0].AsInt(), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(items[1].AsInt(), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(items[2].AsInt(), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(items[3].AsInt(), 1);
  EXPECT_EQ(items[4].AsInt(), -1);
}

TEST(JsonTest, AsIntOfNotANumberIsZero) {
  EXPECT_EQ(Json(std::numeric_limits<double>::quiet_NaN()).AsInt(), 0);
}

// Found by json_fuzz: a negative zero (here from -1.5e-400, below the smallest double) was
// written "-0", which reads back as the integer 0: the sign and the type were lost.
TEST(JsonTest, NegativeZeroReadsBackAsNegativeZero) {
  absl::StatusOr<Json> parsed = Json::Parse("[-1.5e-400, -0.0]");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->Dump(), "[-0.0,-0.0]");
  absl::StatusOr<Json> again = Json::Parse(parsed->Dump());
  ASSERT_TRUE(again.ok()) << again.status();
  ASSERT_EQ(again->items().size(), 2u);
  EXPECT_EQ(again->items()[0].type(), Json::Type::kDouble);
  EXPECT_TRUE(std::signbit(again->items()[0].AsDouble()));
}

}  // namespace
}  // namespace drover::agent
