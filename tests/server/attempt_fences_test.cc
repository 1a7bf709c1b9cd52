// AttemptFences (server/attempt_fences.h) alone: what a node may send, store and read,
// from attempts set as the core sets them.
#include "server/attempt_fences.h"

#include "gtest/gtest.h"

namespace drover::server {
namespace {

v1::AttemptRef Ref(const std::string& job_id, int64_t epoch) {
  v1::AttemptRef ref;
  ref.set_job_id(job_id);
  ref.set_epoch(epoch);
  return ref;
}

class AttemptFencesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    job_.set_id("j-1");
    job_.mutable_spec()->set_process_count_per_node(2);
    job_.mutable_spec()->set_source_snapshot("sha256:snap");
    attempt_.epoch = 2;
    attempt_.nodes = {"n0", "n1"};
    attempt_.image_digest = "sha256:image";
    fences_.Set("j-1", &attempt_, &job_);
  }

  v1::Job job_;
  scheduler::AttemptState attempt_;
  AttemptFences fences_;
};

TEST_F(AttemptFencesTest, AcceptsLogsOnlyOfTheCurrentAttemptFromItsNodesStillInIt) {
  EXPECT_TRUE(fences_.AcceptsLogs("n0", Ref("j-1", 2)));
  EXPECT_FALSE(fences_.AcceptsLogs("n0", Ref("j-1", 1)));  // a stale epoch
  EXPECT_FALSE(fences_.AcceptsLogs("n9", Ref("j-1", 2)));
  EXPECT_FALSE(fences_.AcceptsLogs("n0", Ref("j-2", 2)));
  attempt_.ended.insert("n0");  // lost, or ended its part
  fences_.Set("j-1", &attempt_, &job_);
  EXPECT_FALSE(fences_.AcceptsLogs("n0", Ref("j-1", 2)));
  EXPECT_FALSE(fences_.IsForeignAttempt("n0", Ref("j-1", 2)));  // it was one of its nodes
  EXPECT_TRUE(fences_.IsForeignAttempt("n9", Ref("j-1", 2)));
}

TEST_F(AttemptFencesTest, EachNodeSendsOnlyItsOwnRanks) {
  EXPECT_TRUE(fences_.HasStream("n1", Ref("j-1", 2), 2, v1::STDOUT));
  EXPECT_TRUE(fences_.HasStream("n1", Ref("j-1", 2), 3, v1::STDERR));
  EXPECT_FALSE(fences_.HasStream("n1", Ref("j-1", 2), 1, v1::STDOUT));
  // PREPARE and SYSTEM_METRICS are by node rank.
  EXPECT_TRUE(fences_.HasStream("n1", Ref("j-1", 2), 1, v1::PREPARE));
  EXPECT_FALSE(fences_.HasStream("n1", Ref("j-1", 2), 2, v1::SYSTEM_METRICS));
  // A job the loop does not hold: no layout, any rank.
  fences_.Set("j-1", &attempt_, nullptr);
  EXPECT_TRUE(fences_.HasStream("n1", Ref("j-1", 2), 0, v1::STDOUT));
}

TEST_F(AttemptFencesTest, NodesReadTheBlobsOfTheAttemptsTheyRun) {
  EXPECT_EQ(fences_.JobReadingBlob("n0", "sha256:snap"), "j-1");
  EXPECT_EQ(fences_.JobReadingBlob("n0", "sha256:image"), "j-1");
  EXPECT_EQ(fences_.JobReadingBlob("n0", "sha256:other"), "");
  EXPECT_EQ(fences_.JobReadingBlob("n9", "sha256:snap"), "");
  EXPECT_TRUE(fences_.RunsAnAttempt("n1"));
  EXPECT_TRUE(fences_.RunsPartOf("n1", "j-1"));
  EXPECT_EQ(fences_.BlobsInUse(),
            (absl::flat_hash_set<std::string>{"sha256:snap", "sha256:image"}));
}

TEST_F(AttemptFencesTest, AJobWithoutAnAttemptHasNoFence) {
  fences_.Set("j-1", nullptr, &job_);
  EXPECT_FALSE(fences_.AcceptsLogs("n0", Ref("j-1", 2)));
  EXPECT_FALSE(fences_.IsForeignAttempt("n9", Ref("j-1", 2)));
  EXPECT_FALSE(fences_.RunsAnAttempt("n0"));
  EXPECT_TRUE(fences_.BlobsInUse().empty());
}

}  // namespace
}  // namespace drover::server
