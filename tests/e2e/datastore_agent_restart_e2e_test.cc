// rclone datastores across agent restarts (datastore_fixture.h): agents ended (SIGKILL,
// SIGTERM) while a job reads and writes through a mount: the next agent takes the mount
// over (also from the old agent's mount namespace, which the job's container keeps), the
// job goes on in the same attempt and its files reach the server, also when it ended while
// no agent ran; an rclone that died meanwhile ends the job naming the datastore. Root only.
#include <signal.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/datastore_fixture.h"

namespace drover {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

TEST_F(DatastoreE2eTest, JobGoesOnThroughItsMountAcrossAnAgentKilledWithSigkill) {
  // The agent in a mount namespace of its own: the next one gets another.
  StartCluster(1);
  CreateDatastore("dav", /*allow_write=*/true);
  std::string id = SubmitScratchJob();
  ASSERT_FALSE(HasFailure());
  RestartAgentWhileTheJobRuns(id, SIGKILL, /*end_while_away=*/false);
}

TEST_F(DatastoreE2eTest, JobThatEndedWhileTheStoppedAgentWasAwayHasItsWritesUploaded) {
  agent_args_ = {"--jobs-on-exit", "keep"};  // SIGTERM leaves the job running
  StartCluster(1);
  CreateDatastore("dav", /*allow_write=*/true);
  std::string id = SubmitScratchJob();
  ASSERT_FALSE(HasFailure());
  RestartAgentWhileTheJobRuns(id, SIGTERM, /*end_while_away=*/true);
}

TEST_F(DatastoreE2eTest, MountOfAKilledAgentInTheNodesNamespaceIsTakenOverByTheNextOne) {
  // As on a real node: the agent in the host's mount namespace, which the next one shares.
  StartCluster(1, /*own_mount_namespace=*/false);
  CreateDatastore("dav", /*allow_write=*/true);
  std::string id = SubmitScratchJob();
  ASSERT_FALSE(HasFailure());
  RestartAgentWhileTheJobRuns(id, SIGKILL, /*end_while_away=*/false);
}

TEST_F(DatastoreE2eTest, RcloneThatDiedWhileNoAgentRanEndsTheJobNamingTheDatastore) {
  StartCluster(1);
  CreateDatastore("dav", /*allow_write=*/true);
  std::string id = SubmitScratchJob();
  ASSERT_FALSE(HasFailure());
  std::vector<pid_t> rclone = RcloneProcesses(work_dirs_[0]);
  ASSERT_THAT(rclone, ::testing::SizeIs(1));
  agents_[0]->Signal(SIGKILL);
  ASSERT_TRUE(agents_[0]->Wait(absl::Seconds(30)).ok());
  kill(rclone[0], SIGKILL);  // the mount inside the job's container is dead now
  StartAgent(0);
  v1::Job job = WaitFor(id, v1::JobStatus::FAILED);
  EXPECT_EQ(job.status().cause(), v1::JobStatus::NODE_LOST);
  EXPECT_THAT(job.status().message(),
              HasSubstr(absl::StrCat("datastore 'dav': its rclone process (pid ", rclone[0],
                                     ") ended while no drover-agent ran")));
  ExpectNothingMountedOn(0);
  EXPECT_FALSE(fs::exists(absl::StrCat(work_dirs_[0], "/mounts/", id, "-1")));
}

}  // namespace
}  // namespace drover
