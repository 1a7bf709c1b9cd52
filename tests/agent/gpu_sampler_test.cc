// GPU use samples: nvidia-smi's utilization and memory output read, and GpuSampler against a
// fake nvidia-smi (a shell script): readings by UUID, only the node's GPUs, the agent's
// Prometheus gauges, readings older than an attempt ignored (timed by the agent's clock,
// a fake one here, also when it jumps back), a failing nvidia-smi.
#include "agent/gpu_sampler.h"

#include <sys/stat.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/metrics.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/subprocess.h"

namespace drover::agent {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(ParseGpuSampleCsvTest, ReadsUtilizationAndMemoryByUuid) {
  absl::Time at = absl::FromUnixSeconds(1700000000);
  absl::StatusOr<std::map<std::string, GpuSample>> samples = ParseGpuSampleCsv(
      "GPU-aaaa, 87, 30120, 81559\nGPU-bbbb, 0 %, 1 MiB, 81559 MiB\n", at);
  ASSERT_TRUE(samples.ok()) << samples.status();
  ASSERT_EQ(samples->size(), 2u);
  const GpuSample& a = samples->at("GPU-aaaa");
  EXPECT_EQ(a.utilization_percent, 87);
  EXPECT_EQ(a.memory_used_bytes, 30120.0 * 1048576);
  EXPECT_EQ(a.memory_total_bytes, 81559.0 * 1048576);
  EXPECT_EQ(a.at, at);
  EXPECT_EQ(samples->at("GPU-bbbb").utilization_percent, 0);
  EXPECT_EQ(samples->at("GPU-bbbb").memory_used_bytes, 1048576);
}

TEST(ParseGpuSampleCsvTest, UnknownValuesAreMinusOne) {
  // What nvidia-smi prints for a GPU in MIG mode or without support.
  absl::StatusOr<std::map<std::string, GpuSample>> samples =
      ParseGpuSampleCsv("GPU-aaaa, [N/A], [Not Supported], 81559\n", absl::Now());
  ASSERT_TRUE(samples.ok()) << samples.status();
  EXPECT_EQ(samples->at("GPU-aaaa").utilization_percent, -1);
  EXPECT_EQ(samples->at("GPU-aaaa").memory_used_bytes, -1);
}

TEST(ParseGpuSampleCsvTest, BadLinesAreNamed) {
  for (const char* bad : {"GPU-aaaa, 87, 30120\n", "GPU-aaaa, lots, 1, 2\n", ", 1, 2, 3\n",
                          "GPU-aaaa, 1, -5, 3\n"}) {
    absl::StatusOr<std::map<std::string, GpuSample>> samples =
        ParseGpuSampleCsv(absl::StrCat("GPU-ok, 1, 2, 3\n", bad), absl::Now());
    ASSERT_FALSE(samples.ok()) << bad;
    EXPECT_THAT(std::string(samples.status().message()), HasSubstr("line 2")) << bad;
  }
}

class GpuSamplerTest : public ::testing::Test {
 protected:
  // A node with GPUs 0 and 1 whose nvidia-smi prints `output` (and exits with `code`).
  GpuInventory Node(const std::string& output, int code = 0) {
    std::string path = dir_.path() + "/nvidia-smi";
    std::ofstream(path) << "#!/bin/sh\necho \"$@\" > " << dir_.path() << "/args\ncat <<'EOF'\n"
                        << output << "EOF\nexit " << code << "\n";
    chmod(path.c_str(), 0755);
    GpuInventory inventory;
    for (int i = 0; i < 2; ++i) {
      NodeGpu gpu;
      gpu.gpu.set_index(i);
      gpu.gpu.set_uuid(absl::StrCat("GPU-", i));
      gpu.device = absl::StrCat("/dev/nvidia", i);
      inventory.gpus.push_back(gpu);
    }
    inventory.nvidia_smi = path;
    return inventory;
  }

  testing::TempDir dir_;
  MetricsRegistry registry_;
  AgentMetrics metrics_{registry_};
};

TEST_F(GpuSamplerTest, KeepsTheLastReadingOfEachOfTheNodesGpus) {
  GpuSampler sampler(Node("GPU-0, 75, 2048, 81559\nGPU-1, 5, 1024, 81559\nGPU-other, 1, 1, 1\n"),
                     absl::Seconds(10), &metrics_);
  absl::Time before = absl::Now();
  ASSERT_TRUE(sampler.SampleOnce().ok());
  std::ifstream args(dir_.path() + "/args");
  std::string asked((std::istreambuf_iterator<char>(args)), std::istreambuf_iterator<char>());
  EXPECT_EQ(asked, absl::StrCat("--query-gpu=", kGpuSampleQuery, " --format=csv,noheader,nounits\n"));

  std::optional<GpuSample> gpu0 = sampler.Latest("GPU-0", before);
  ASSERT_TRUE(gpu0.has_value());
  EXPECT_EQ(gpu0->utilization_percent, 75);
  EXPECT_EQ(gpu0->memory_used_bytes, 2048.0 * 1048576);
  EXPECT_EQ(sampler.Latest("GPU-1", before)->utilization_percent, 5);
  // A GPU the node does not offer is not kept; a reading older than asked is not returned.
  EXPECT_FALSE(sampler.Latest("GPU-other", before).has_value());
  EXPECT_FALSE(sampler.Latest("GPU-0", absl::Now() + absl::Seconds(1)).has_value());

  std::string page = registry_.Render();
  EXPECT_THAT(page, HasSubstr("drover_agent_gpu_utilization_ratio{gpu=\"0\",uuid=\"GPU-0\"} 0.75"));
  EXPECT_THAT(page, HasSubstr("drover_agent_gpu_memory_used_bytes{gpu=\"1\",uuid=\"GPU-1\"} 1073741824"));
  EXPECT_THAT(page, Not(HasSubstr("GPU-other")));
}

TEST_F(GpuSamplerTest, ReadingsAreTimedByTheAgentsClockAndOlderOnesBelongToNoAttempt) {
  testing::FakeClock clock;
  GpuSampler sampler(Node("GPU-0, 75, 2048, 81559\nGPU-1, 5, 1024, 81559\n"), absl::Seconds(10),
                     nullptr, clock);
  ASSERT_TRUE(sampler.SampleOnce().ok());
  std::optional<GpuSample> taken = sampler.Latest("GPU-0", absl::InfinitePast());
  ASSERT_TRUE(taken.has_value());
  EXPECT_EQ(taken->at, clock.Now());

  // An attempt whose processes start a second later sees no reading until the next one.
  clock.Advance(absl::Seconds(1));
  const absl::Time running_since = clock.Now();
  EXPECT_FALSE(sampler.Latest("GPU-0", running_since).has_value());
  clock.Advance(absl::Seconds(10));
  ASSERT_TRUE(sampler.SampleOnce().ok());
  EXPECT_TRUE(sampler.Latest("GPU-0", running_since).has_value());

  // The clock jumps back an hour: a reading taken now is dated before the attempt started,
  // and is not given to it (none rather than someone else's).
  clock.Advance(-absl::Hours(1));
  ASSERT_TRUE(sampler.SampleOnce().ok());
  EXPECT_FALSE(sampler.Latest("GPU-0", running_since).has_value());
  EXPECT_TRUE(sampler.Latest("GPU-0", clock.Now()).has_value());
}

TEST_F(GpuSamplerTest, AFailingNvidiaSmiGivesNoReading) {
  GpuSampler sampler(Node("NVIDIA-SMI has failed because it couldn't communicate\n", 9),
                     absl::Seconds(10), &metrics_);
  absl::Status sampled = sampler.SampleOnce();
  EXPECT_FALSE(sampled.ok());
  EXPECT_THAT(std::string(sampled.message()), HasSubstr("exit code 9"));
  EXPECT_FALSE(sampler.Latest("GPU-0", absl::InfinitePast()).has_value());
}

TEST_F(GpuSamplerTest, TheThreadSamplesEveryInterval) {
  GpuSampler sampler(Node("GPU-0, 50, 1, 1\nGPU-1, 50, 1, 1\n"), absl::Milliseconds(50), nullptr);
  absl::Time started = absl::Now();
  sampler.Start();
  absl::Time deadline = absl::Now() + absl::Seconds(20);
  // A reading newer than 150 ms after the start: the thread ran nvidia-smi again.
  while (!sampler.Latest("GPU-0", started + absl::Milliseconds(150)).has_value()) {
    ASSERT_LT(absl::Now(), deadline) << "no new reading";
    absl::SleepFor(absl::Milliseconds(20));
  }
}

TEST_F(GpuSamplerTest, NothingRunsWithoutNvidiaSmi) {
  GpuInventory node = Node("GPU-0, 50, 1, 1\n");
  node.nvidia_smi.clear();
  GpuSampler sampler(node, absl::Milliseconds(10), nullptr);
  sampler.Start();
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_FALSE(sampler.Latest("GPU-0", absl::InfinitePast()).has_value());
}

}  // namespace
}  // namespace drover::agent
