// Horovod end to end: examples/horovod-pytorch as a job with `environment.horovod` on two
// test hosts x 2 processes under the mpi backend. Each node's agent builds Horovod from
// source into its environment cache (in a real container of the host image, against the
// host's torch and Open MPI, from a package folder the test downloads once), Open MPI starts the ranks through drover-rsh, and Horovod's
// allreduce keeps the parameters identical on all four ranks. A second job reuses both
// nodes' environments without building. Root only; the build takes minutes.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/distributed_fixture.h"
#include "tests/testing/subprocess.h"

namespace drover {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

int Count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// The folder droverd gives the agents as their only package index (--pip-find-links
// --pip-no-index; the test hosts reach nothing outside this machine): Horovod's source and
// the wheels of what it requires, downloaded once with the host's pip from the package
// index and kept in the build tree.
std::string HorovodPackages() {
  const std::string dir = DROVER_HOROVOD_TEST_CACHE_DIR;
  const std::string done = dir + "/complete";
  if (std::filesystem::exists(done)) return dir;
  const std::string partial = dir + ".partial";
  std::filesystem::remove_all(partial);
  auto result = testing::RunCommand(
      {"/usr/bin/python3", "-m", "pip", "download", "--disable-pip-version-check",
       "--no-input", "--no-build-isolation", "--no-binary", "horovod", "horovod==0.28.1", "-d",
       partial},
      {}, "", absl::Minutes(5));
  if (!result.ok() || result->exit_code != 0) {
    ADD_FAILURE() << "pip download horovod==0.28.1 failed (it needs the package index): "
                  << (result.ok() ? result->err + result->out : result.status().ToString());
    return "";
  }
  std::filesystem::remove_all(dir);
  std::filesystem::rename(partial, dir);
  std::ofstream(done) << "ok\n";
  return dir;
}

class HorovodE2eTest : public DistributedE2eTest {
 protected:
  void StartHorovodCluster() {
    const std::string packages = HorovodPackages();
    ASSERT_FALSE(packages.empty());
    LocalClusterTest::StartCluster(
        {.agents = 2,
         .test_hosts = true,
         .droverd_flags = {"--pip-find-links", packages, "--pip-no-index"}});
  }

  v1::JobSpec HorovodExample() {
    v1::JobSpec spec = Distributed(v1::JobSpec::MPI, 2, 2);
    spec.set_source_snapshot(Snapshot(DROVER_SOURCE_DIR "/examples/horovod-pytorch"));
    spec.set_entry_script("train.py");
    for (const char* arg : {"--epochs", "2", "--samples", "512"}) spec.add_arguments()->set_value(arg);
    spec.mutable_environment()->set_horovod(true);
    return spec;
  }
};

TEST_F(HorovodE2eTest, TheExampleRunsOnTwoNodesOfTwoRanksAndASecondJobReusesTheBuild) {
  ASSERT_NO_FATAL_FAILURE(StartHorovodCluster());
  const absl::Time submitted = absl::Now();
  const std::string first = Submit(HorovodExample());
  // Two builds of Horovod from source at once (one per node, each with all the machine's
  // cores) take 3-4 minutes on a quiet 2-core machine; a busy CI machine needs more.
  v1::Job job = WaitFor(first, v1::JobStatus::COMPLETED, absl::Minutes(20));
  const std::string prepare = Logs(first, -1, v1::PREPARE);
  ASSERT_EQ(job.status().state(), v1::JobStatus::COMPLETED)
      << job.status().message() << "\nprepare log:\n" << prepare;

  // Horovod saw the world Open MPI gave it: 4 ranks, 2 on each node.
  std::set<std::string> nodes;
  for (int rank = 0; rank < 4; ++rank) {
    EXPECT_THAT(Logs(first, rank),
                HasSubstr(absl::StrCat("horovod rank ", rank, " of 4 (local rank ", rank % 2,
                                       "), size 4 on ")))
        << Logs(first, rank, v1::STDERR);
  }
  for (const v1::RankExit& e : job.status().exits()) nodes.insert(e.node());
  EXPECT_EQ(nodes.size(), 2u);
  ExpectIdenticalParameters(first, 4);
  EXPECT_THAT(Logs(first, 0), HasSubstr("epoch 2/2 loss "));
  EXPECT_FALSE(job.status().outputs_digest().empty()) << "rank 0 saves the model";

  // Built once on each node, with Horovod's own check of what it was built with.
  EXPECT_EQ(Count(prepare, "drover: building environment "), 2) << prepare;
  EXPECT_EQ(Count(prepare, "(image host; horovod 0.28.1)"), 2) << prepare;
  // From source, from the cluster's package folder.
  EXPECT_THAT(prepare, HasSubstr("--no-binary horovod --find-links "));
  EXPECT_THAT(prepare, HasSubstr("--no-index horovod==0.28.1\n"));
  EXPECT_EQ(Count(prepare, "[X] PyTorch"), 2) << prepare;
  // MPI twice on each node: as the controller and for the tensor operations.
  EXPECT_EQ(Count(prepare, "[X] MPI"), 4) << prepare;
  EXPECT_EQ(Count(prepare, "[ ] Gloo"), 4) << prepare;

  // The same job again: both nodes use what they built.
  const absl::Time first_ended = absl::Now();
  const std::string second = Submit(HorovodExample());
  WaitFor(second, v1::JobStatus::COMPLETED, absl::Minutes(4));
  // For docs/benchmarks.md: each node's build time is in its "built in" line.
  std::cout << "[horovod] first job (two builds) " << absl::FormatDuration(first_ended - submitted)
            << ", second job (reused) " << absl::FormatDuration(absl::Now() - first_ended)
            << "\n";
  for (absl::string_view line : absl::StrSplit(prepare, '\n')) {
    if (absl::StrContains(line, " built in ")) std::cout << "[horovod] " << line << "\n";
  }
  const std::string reused = Logs(second, -1, v1::PREPARE);
  EXPECT_EQ(Count(reused, "drover: using cached environment "), 2) << reused;
  EXPECT_THAT(reused, Not(HasSubstr("building environment"))) << reused;
  EXPECT_THAT(reused, Not(HasSubstr("horovod==")));
  ExpectIdenticalParameters(second, 4);
}

}  // namespace
}  // namespace drover
