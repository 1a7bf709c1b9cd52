#include "common/proto_bytes.h"

#include <cmath>
#include <string>

#include "drover/v1/job.pb.h"
#include "gtest/gtest.h"

namespace drover {
namespace {

TEST(ProtoBytesTest, EqualMessagesGiveEqualBytesWhateverTheirMapOrder) {
  v1::JobSpec a;
  v1::JobSpec b;
  for (int i = 0; i < 50; ++i) (*a.mutable_tags())["k" + std::to_string(i)] = "v";
  for (int i = 49; i >= 0; --i) (*b.mutable_tags())["k" + std::to_string(i)] = "v";
  EXPECT_EQ(SerializeDeterministic(a), SerializeDeterministic(b));

  v1::JobSpec parsed;
  ASSERT_TRUE(parsed.ParseFromString(SerializeDeterministic(a)));
  EXPECT_EQ(parsed.tags().size(), 50);
}

TEST(ProtoBytesTest, ANaNEqualsItselfAndDiffersFromANumber) {
  v1::JobSpec a;
  a.mutable_resources()->set_cpus(std::nan(""));
  v1::JobSpec b = a;
  EXPECT_EQ(SerializeDeterministic(a), SerializeDeterministic(b));
  b.mutable_resources()->set_cpus(1);
  EXPECT_NE(SerializeDeterministic(a), SerializeDeterministic(b));
}

}  // namespace
}  // namespace drover
