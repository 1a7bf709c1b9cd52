// Tests of common/json.h: the one JSON reader, for documents that may be hostile (image
// configs, runc's output, the metric lines a job writes). Earlier cases were found by
// fuzzing (tests/fuzz/json_fuzz.cc).
#include "common/json.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace drover {
namespace {

// Found by json_fuzz: AsInt of 1e308 converted a double outside int64's range, which is
// undefined behaviour (UBSan stops there; on x86 it gave INT64_MIN for a huge positive
// number).
TEST(JsonTest, IntSaturatesNumbersBeyondInt64) {
  absl::StatusOr<Json> parsed =
      ParseJson("[1e308, -1e308, 9.3e18, 1.9, -1.9, 18446744073709551615, 99999999999999999999]");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const Json::array_t& items = JsonItems(*parsed);
  ASSERT_EQ(items.size(), 7u);
  EXPECT_EQ(JsonInt(items[0]), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(JsonInt(items[1]), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(JsonInt(items[2]), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(JsonInt(items[3]), 1);
  EXPECT_EQ(JsonInt(items[4]), -1);
  EXPECT_EQ(JsonInt(items[5]), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(JsonInt(items[6]), std::numeric_limits<int64_t>::max());
}

TEST(JsonTest, IntOfNotANumberIsZero) {
  EXPECT_EQ(JsonInt(Json(std::numeric_limits<double>::quiet_NaN())), 0);
}

// Found by json_fuzz: a negative zero (here from -1.5e-400, below the smallest double) was
// written "-0", which reads back as the integer 0: the sign and the type were lost.
TEST(JsonTest, NegativeZeroReadsBackAsNegativeZero) {
  absl::StatusOr<Json> parsed = ParseJson("[-1.5e-400, -0.0]");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(DumpJson(*parsed), "[-0.0,-0.0]");
  absl::StatusOr<Json> again = ParseJson(DumpJson(*parsed));
  ASSERT_TRUE(again.ok()) << again.status();
  ASSERT_EQ(JsonItems(*again).size(), 2u);
  EXPECT_TRUE(JsonItems(*again)[0].is_number_float());
  EXPECT_TRUE(std::signbit(JsonDouble(JsonItems(*again)[0])));
}

TEST(JsonTest, AccessorsGiveZeroValuesForOtherTypes) {
  absl::StatusOr<Json> parsed = ParseJson(R"({"s":"text","n":7,"b":true,"a":[1],"o":{}})");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const Json* s = JsonFind(*parsed, "s");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(JsonString(*s), "text");
  EXPECT_EQ(JsonInt(*s), 0);
  EXPECT_FALSE(JsonBool(*s));
  EXPECT_TRUE(JsonItems(*s).empty());
  EXPECT_TRUE(JsonMembers(*s).empty());
  EXPECT_EQ(JsonFind(*s, "s"), nullptr);
  EXPECT_EQ(JsonString(*JsonFind(*parsed, "n")), "");
  EXPECT_EQ(JsonInt(*JsonFind(*parsed, "n")), 7);
  EXPECT_TRUE(JsonBool(*JsonFind(*parsed, "b")));
  EXPECT_EQ(JsonItems(*JsonFind(*parsed, "a")).size(), 1u);
  EXPECT_EQ(JsonFind(*parsed, "missing"), nullptr);
  EXPECT_EQ(JsonMembers(*parsed).size(), 5u);
}

TEST(JsonTest, LastOfAMemberNamedTwiceCounts) {
  absl::StatusOr<Json> parsed = ParseJson(R"({"a":1,"a":{"b":2}})");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(DumpJson(*parsed), R"({"a":{"b":2}})");
}

TEST(JsonTest, WritesEscapesAndReadsThemBack) {
  Json value = Json::object();
  value["s"] = "quote\" back\\ nl\n tab\t ctl\x01 utf8 \xc3\xa9";
  EXPECT_EQ(DumpJson(value), "{\"s\":\"quote\\\" back\\\\ nl\\n tab\\t ctl\\u0001 utf8 \xc3\xa9\"}");
  absl::StatusOr<Json> back = ParseJson(DumpJson(value));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, value);
  EXPECT_EQ(DumpJson(Json::array({1, "a"}), 2), "[\n  1,\n  \"a\"\n]");
}

TEST(JsonTest, WritesBytesThatAreNotUtf8AsReplacementCharacters) {
  Json value = Json::array({std::string("a\xFF" "b")});
  EXPECT_EQ(DumpJson(value), "[\"a\xEF\xBF\xBD" "b\"]");
  EXPECT_EQ(DumpJson(Json(std::numeric_limits<double>::infinity())), "null");
}

// The nasty inputs: each is refused quickly with a short message that does not echo the
// document, and none crashes or throws.
TEST(JsonTest, RefusesNestingPastTheLimitWithoutRecursing) {
  std::string deep(100000, '[');
  deep += std::string(100000, ']');
  absl::StatusOr<Json> parsed = ParseJson(deep);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(parsed.status().message().find("nesting deeper than 256"), std::string::npos)
      << parsed.status();
  std::string objects;
  for (int i = 0; i < 100000; ++i) objects += "{\"a\":";
  EXPECT_FALSE(ParseJson(objects).ok());

  std::string at_limit = std::string(256, '[') + std::string(256, ']');
  EXPECT_TRUE(ParseJson(at_limit).ok());
  EXPECT_FALSE(ParseJson("[" + at_limit + "]").ok());
  EXPECT_TRUE(ParseJson("[[[]]]", {.max_depth = 3}).ok());
  EXPECT_FALSE(ParseJson("[[[[]]]]", {.max_depth = 3}).ok());
}

TEST(JsonTest, RefusesDocumentsOverTheSizeCapBeforeReadingThem) {
  std::string big = "\"" + std::string(1000, 'x') + "\"";
  absl::StatusOr<Json> parsed = ParseJson(big, {.max_bytes = 1000});
  ASSERT_FALSE(parsed.ok());
  EXPECT_NE(parsed.status().message().find("exceeds the cap of 1000 bytes"), std::string::npos)
      << parsed.status();
  EXPECT_TRUE(ParseJson(big, {.max_bytes = 1002}).ok());
}

TEST(JsonTest, AnUnterminatedHugeStringIsRefusedWithAShortMessage) {
  std::string text = "[\"" + std::string(15 << 20, 'x');  // 15 MiB, under the default cap
  absl::Time start = absl::Now();
  absl::StatusOr<Json> parsed = ParseJson(text);
  ASSERT_FALSE(parsed.ok());
  EXPECT_LT(parsed.status().message().size(), 300u) << parsed.status().message().substr(0, 300);
  EXPECT_EQ(parsed.status().message().find("xxxx"), std::string::npos);
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

TEST(JsonTest, RefusesNumbersJsonDoesNotHave) {
  for (const char* text : {"NaN", "[NaN]", "Infinity", "-Infinity", "[1e999]", "[-1e999]",
                           "1e99999999999999999999", "+1", "01", "1.", ".5", "0x10"}) {
    absl::StatusOr<Json> parsed = ParseJson(text);
    EXPECT_FALSE(parsed.ok()) << text;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << text;
  }
  // A huge number is refused without the message quoting its digits.
  std::string digits = "1" + std::string(100000, '0');
  absl::StatusOr<Json> parsed = ParseJson(digits);
  ASSERT_FALSE(parsed.ok());
  EXPECT_LT(parsed.status().message().size(), 300u);
  // Too small to be told from zero is zero, as strtod has it.
  absl::StatusOr<Json> tiny = ParseJson("1e-99999");
  ASSERT_TRUE(tiny.ok()) << tiny.status();
  EXPECT_EQ(JsonDouble(*tiny), 0);
}

TEST(JsonTest, RefusesStringsThatAreNotUtf8) {
  for (const std::string& text :
       {std::string("\"\xFF\""), std::string("\"cpu_\xE3ores\""), std::string("\"\xC0\xAF\""),
        std::string("\"\xED\xA0\x80\""), std::string(R"("\ud800")"), std::string(R"("\udfff")"),
        std::string(R"("\ud800\u0041")"), std::string("{\"\xFF\":1}"),
        std::string("\"tab\tinside\"")}) {
    EXPECT_FALSE(ParseJson(text).ok()) << text;
  }
  absl::StatusOr<Json> pair = ParseJson(R"("\u00e9\ud83d\ude00\u0000")");
  ASSERT_TRUE(pair.ok()) << pair.status();
  EXPECT_EQ(JsonString(*pair), std::string("\xC3\xA9\xF0\x9F\x98\x80\0", 7));
}

TEST(JsonTest, RefusesTrailingTextAndEmptyInput) {
  for (const char* text : {"", " ", "{} {}", "[1]x", "{\"a\":1,}", "[1,]", "/* c */ 1", "tru"}) {
    EXPECT_FALSE(ParseJson(text).ok()) << text;
  }
  EXPECT_TRUE(ParseJson(" \t\r\n{}\n").ok());
}

}  // namespace
}  // namespace drover
