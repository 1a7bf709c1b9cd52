// drover-bench sim-cluster (bench/sim_cluster_bench.h) against a real droverd, small: three
// fake nodes on the agent protocol over TLS take a queue of single-process, multi-process
// and two-node gang jobs, and one probe node its probes. Every job must be assigned exactly
// once and end COMPLETED in droverd, so that the benchmark cannot rot into measuring
// nothing. Bad options are refused naming the flag.
#include <cstdlib>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "bench/sim_cluster_bench.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/cluster.h"
#include "tests/testing/local_cluster.h"

namespace drover {
namespace {

using ::testing::HasSubstr;

class SimClusterE2eTest : public testing::LocalClusterTest {
 protected:
  SimClusterE2eTest()
      // Nodes join with certificates droverd signs: its own CA.
      : LocalClusterTest(testing::ClusterOptions{.agents = 0,
                                                 .tls = testing::DroverdProcess::Tls::kOwnCa},
                         /*needs_root=*/false) {}

  bench::SimClusterOptions SmallRun() {
    bench::SimClusterOptions o;
    o.server = droverd_->address();
    o.ca_file = droverd_->ca_file();
    o.droverd_pid = droverd_->pid();
    o.nodes = 3;
    o.cpus_per_node = 4;
    o.memory_mib_per_node = 4096;
    o.jobs = 20;
    o.gang_percent = 20;
    o.array_chunk = 4;
    o.min_run = absl::Milliseconds(20);
    o.max_run = absl::Milliseconds(200);
    o.probe_nodes = 1;
    o.probe_interval = absl::Milliseconds(100);
    o.duration = absl::ZeroDuration();
    o.timeout = absl::Seconds(60);
    o.verify = true;
    return o;
  }

  void SetUp() override {
    LocalClusterTest::SetUp();
    // The bench makes the nodes' join tokens with an admin's token, as from a shell.
    setenv("DROVER_TOKEN", testing::TestAdminTokenValue().c_str(), 1);
  }
};

TEST_F(SimClusterE2eTest, EveryQueuedJobIsAssignedOnceAndCompletes) {
  const bench::SimClusterOptions options = SmallRun();
  absl::StatusOr<bench::SimClusterResult> r = bench::RunSimCluster(options);
  ASSERT_TRUE(r.ok()) << r.status() << "\n" << droverd_->ReadLog();
  EXPECT_EQ(r->jobs, 20);
  EXPECT_EQ(r->placements, 20);
  EXPECT_EQ(r->completed, 20);
  EXPECT_EQ(r->queued_left, 0);
  // Four tasks of one array of two-node gangs: each placement two assignments.
  EXPECT_EQ(r->gang_placements, 4);
  EXPECT_EQ(r->assignments, 20 + 4 + r->probe.count);
  EXPECT_EQ(r->duplicate_assignments, 0);
  EXPECT_EQ(r->reassigned_jobs, 0);
  EXPECT_EQ(r->streams_broken, 0);
  EXPECT_EQ(r->not_completed, 0);
  EXPECT_GT(r->probe.count, 0);
  EXPECT_EQ(r->probes_unassigned, 0);
  EXPECT_GT(r->placements_per_second, 0);
  // droverd was measured (its pid given).
  EXPECT_GT(r->rss_idle_kib, 0);
  EXPECT_GT(r->droverd_cpu_seconds, 0);
  const std::string text = bench::SimClusterResultText(options, *r);
  EXPECT_THAT(text, HasSubstr("placements         20 in"));
  EXPECT_THAT(bench::SimClusterResultJson(options, *r), HasSubstr("\"placements\":20,"));
}

TEST(SimClusterOptionsTest, RefusesBadOptionsNamingTheFlag) {
  auto refused = [](auto change) {
    bench::SimClusterOptions o;
    o.server = "127.0.0.1:1";
    o.ca_file = "/nonexistent";
    change(o);
    absl::StatusOr<bench::SimClusterResult> r = bench::RunSimCluster(o);
    EXPECT_TRUE(absl::IsInvalidArgument(r.status())) << r.status();
    return std::string(r.status().message());
  };
  EXPECT_THAT(refused([](auto& o) { o.server = ""; }), HasSubstr("--server"));
  EXPECT_THAT(refused([](auto& o) { o.server = "unix:/run/drover.sock"; }), HasSubstr("TLS"));
  EXPECT_THAT(refused([](auto& o) { o.nodes = 0; }), HasSubstr("--nodes: 0"));
  EXPECT_THAT(refused([](auto& o) { o.nodes = 1000000; }), HasSubstr("--nodes"));
  EXPECT_THAT(refused([](auto& o) { o.cpus_per_node = -1; }), HasSubstr("--cpus-per-node"));
  EXPECT_THAT(refused([](auto& o) { o.memory_mib_per_node = 0; }),
              HasSubstr("--memory-mib-per-node"));
  EXPECT_THAT(refused([](auto& o) { o.gpus_per_node = 65; }), HasSubstr("--gpus-per-node"));
  EXPECT_THAT(refused([](auto& o) { o.jobs = -5; }), HasSubstr("--jobs"));
  EXPECT_THAT(refused([](auto& o) { o.gang_percent = 101; }), HasSubstr("--gang-percent"));
  EXPECT_THAT(refused([](auto& o) { o.nodes = 1; }), HasSubstr("gangs need at least 2 nodes"));
  EXPECT_THAT(refused([](auto& o) { o.array_chunk = 0; }), HasSubstr("--array-chunk"));
  EXPECT_THAT(refused([](auto& o) { o.max_run = o.min_run - absl::Seconds(1); }),
              HasSubstr("--min-run"));
  EXPECT_THAT(refused([](auto& o) { o.probe_interval = absl::ZeroDuration(); }),
              HasSubstr("--probe-interval"));
  EXPECT_THAT(refused([](auto& o) { o.duration = absl::Seconds(-1); }), HasSubstr("--duration"));
  EXPECT_THAT(refused([](auto& o) { o.verify = true; }), HasSubstr("--duration 0"));
  EXPECT_THAT(refused([](auto& o) { o.join_concurrency = 0; }), HasSubstr("--join-concurrency"));
  EXPECT_THAT(refused([](auto& o) { o.node_prefix = "Bad/../x"; }), HasSubstr("--node-prefix"));
  EXPECT_THAT(refused([](auto& o) { o.node_prefix = std::string(41, 'a'); }),
              HasSubstr("--node-prefix"));
  EXPECT_THAT(refused([](auto& o) { o.labels["drover-sim"] = "x"; }), HasSubstr("--label"));
  // Options right, CA unreadable: the CA file is named.
  EXPECT_THAT(refused([](auto&) {}), HasSubstr("--ca"));
}

}  // namespace
}  // namespace drover
