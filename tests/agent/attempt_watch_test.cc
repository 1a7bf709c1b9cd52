// The rules of an attempt's watch over its running container, on a fake clock and without
// runc: how a STOP escalates (SIGTERM at once, SIGKILL once the grace and 2 s more passed)
// and when the system metrics are sampled (every interval, CPU use from the second reading
// on, a missed reading tried an interval later, a clock gone back waiting to catch up).
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "agent/stop_escalation.h"
#include "agent/system_sampler.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"

namespace drover::agent {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using Signal = StopEscalation::Signal;

TEST(AttemptStopEscalationTest, NothingIsSentWithoutAStop) {
  drover::testing::FakeClock clock;
  StopEscalation escalation;
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(escalation.Next(clock.Now(), /*stopped=*/false, absl::Seconds(10)), Signal::kNone);
    clock.Advance(absl::Minutes(1));
  }
}

TEST(AttemptStopEscalationTest, AStopTerminatesAtOnceAndKillsAfterTheGraceAndTwoSeconds) {
  drover::testing::FakeClock clock;
  StopEscalation escalation;
  const absl::Duration grace = absl::Seconds(10);
  EXPECT_EQ(escalation.Next(clock.Now(), true, grace), Signal::kTerminate);
  // drover-init has the grace to end the ranks, and the agent 2 s more.
  clock.Advance(grace + absl::Seconds(2));
  EXPECT_EQ(escalation.Next(clock.Now(), true, grace), Signal::kNone);
  clock.Advance(absl::Milliseconds(1));
  EXPECT_EQ(escalation.Next(clock.Now(), true, grace), Signal::kKill);
  // Each signal once, however long the container takes to go.
  clock.Advance(absl::Hours(1));
  EXPECT_EQ(escalation.Next(clock.Now(), true, grace), Signal::kNone);
}

TEST(AttemptStopEscalationTest, AZeroGraceKillsJustAfterTwoSeconds) {
  drover::testing::FakeClock clock;
  StopEscalation escalation;
  EXPECT_EQ(escalation.Next(clock.Now(), true, absl::ZeroDuration()), Signal::kTerminate);
  clock.Advance(absl::Seconds(2) + absl::Milliseconds(20));
  EXPECT_EQ(escalation.Next(clock.Now(), true, absl::ZeroDuration()), Signal::kKill);
}

TEST(AttemptStopEscalationTest, TheGraceCountsFromTheFirstLookAfterTheStop) {
  drover::testing::FakeClock clock;
  StopEscalation escalation;
  // Watched for an hour before the STOP came: the grace is not already spent.
  for (int i = 0; i < 60; ++i) {
    EXPECT_EQ(escalation.Next(clock.Now(), false, absl::Seconds(5)), Signal::kNone);
    clock.Advance(absl::Minutes(1));
  }
  EXPECT_EQ(escalation.Next(clock.Now(), true, absl::Seconds(5)), Signal::kTerminate);
  clock.Advance(absl::Seconds(7));
  EXPECT_EQ(escalation.Next(clock.Now(), true, absl::Seconds(5)), Signal::kNone);
  clock.Advance(absl::Seconds(1));
  EXPECT_EQ(escalation.Next(clock.Now(), true, absl::Seconds(5)), Signal::kKill);
}

// The watch loop sleeps until the escalation's next signal is due (a STOP itself wakes it):
// never before a STOP or after the SIGKILL, and at a time where Next() says kill.
TEST(AttemptStopEscalationTest, NextAtIsWhenTheKillIsDueAndNeverOtherwise) {
  drover::testing::FakeClock clock;
  StopEscalation escalation;
  const absl::Duration grace = absl::Seconds(10);
  EXPECT_EQ(escalation.NextAt(grace), absl::InfiniteFuture());
  EXPECT_EQ(escalation.Next(clock.Now(), false, grace), Signal::kNone);
  EXPECT_EQ(escalation.NextAt(grace), absl::InfiniteFuture());
  EXPECT_EQ(escalation.Next(clock.Now(), true, grace), Signal::kTerminate);
  const absl::Time kill_at = escalation.NextAt(grace);
  EXPECT_GT(kill_at, clock.Now() + grace + StopEscalation::kKillMargin);
  EXPECT_LE(kill_at, clock.Now() + grace + StopEscalation::kKillMargin + absl::Milliseconds(1));
  clock.Advance(kill_at - clock.Now() - absl::Milliseconds(1));
  EXPECT_EQ(escalation.Next(clock.Now(), true, grace), Signal::kNone);
  clock.Advance(kill_at - clock.Now());
  EXPECT_EQ(escalation.Next(clock.Now(), true, grace), Signal::kKill);
  EXPECT_EQ(escalation.NextAt(grace), absl::InfiniteFuture());
}

ContainerStats Stats(int64_t cpu_ns, int64_t memory_bytes, int64_t peak = -1) {
  return {.cpu_ns = cpu_ns, .memory_bytes = memory_bytes, .memory_peak_bytes = peak};
}

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

TEST(AttemptSystemSamplerTest, SamplesAtOnceThenOncePerInterval) {
  drover::testing::FakeClock clock;
  SystemSampler sampler(absl::Seconds(10));
  EXPECT_TRUE(sampler.Due(clock.Now()));
  sampler.Take(clock.Now(), Stats(0, 1), {});
  clock.Advance(absl::Seconds(9));
  EXPECT_FALSE(sampler.Due(clock.Now()));
  clock.Advance(absl::Seconds(1));
  EXPECT_TRUE(sampler.Due(clock.Now()));
  sampler.Take(clock.Now(), Stats(0, 1), {});
  EXPECT_FALSE(sampler.Due(clock.Now()));
  EXPECT_EQ(sampler.samples(), 2);
}

TEST(AttemptSystemSamplerTest, NextDueIsWhenDueBecomesTrue) {
  drover::testing::FakeClock clock;
  SystemSampler sampler(absl::Seconds(10));
  EXPECT_LE(sampler.NextDue(), clock.Now());  // the first at once
  sampler.Take(clock.Now(), Stats(0, 1), {});
  EXPECT_EQ(sampler.NextDue(), clock.Now() + absl::Seconds(10));
  clock.Advance(absl::Seconds(3));
  sampler.Missed(clock.Now());
  EXPECT_EQ(sampler.NextDue(), clock.Now() + absl::Seconds(10));
  clock.Advance(sampler.NextDue() - clock.Now() - absl::Milliseconds(1));
  EXPECT_FALSE(sampler.Due(clock.Now()));
  clock.Advance(absl::Milliseconds(1));
  EXPECT_TRUE(sampler.Due(clock.Now()));
}

TEST(AttemptSystemSamplerTest, CpuUseIsARateFromTheSecondReadingOn) {
  drover::testing::FakeClock clock(absl::FromUnixSeconds(1700000000));
  SystemSampler sampler(absl::Seconds(10));
  std::string first = sampler.Take(clock.Now(), Stats(5'000'000'000, 1024, 4096), {});
  EXPECT_THAT(first, Not(HasSubstr("cpu_cores")));
  EXPECT_EQ(Lines(first),
            (std::vector<std::string>{
                R"({"n":"memory_bytes","s":0,"t":1700000000.000000,"v":1024})",
                R"({"n":"memory_peak_bytes","s":0,"t":1700000000.000000,"v":4096})"}));
  // 15 s of CPU in 10 s: one and a half cores.
  clock.Advance(absl::Seconds(10));
  std::string second = sampler.Take(clock.Now(), Stats(20'000'000'000, 2048), {});
  EXPECT_EQ(Lines(second),
            (std::vector<std::string>{
                R"({"n":"cpu_cores","s":1,"t":1700000010.000000,"v":1.5})",
                R"({"n":"memory_bytes","s":1,"t":1700000010.000000,"v":2048})"}));
}

TEST(AttemptSystemSamplerTest, AMissedReadingIsTriedAnIntervalLater) {
  drover::testing::FakeClock clock;
  SystemSampler sampler(absl::Seconds(10));
  sampler.Missed(clock.Now());
  EXPECT_FALSE(sampler.Due(clock.Now() + absl::Seconds(5)));
  EXPECT_TRUE(sampler.Due(clock.Now() + absl::Seconds(10)));
  EXPECT_EQ(sampler.samples(), 0);
}

TEST(AttemptSystemSamplerTest, AClockGoneBackWaitsUntilItCaughtUp) {
  drover::testing::FakeClock clock;
  SystemSampler sampler(absl::Seconds(10));
  sampler.Take(clock.Now(), Stats(0, 1), {});
  clock.Advance(-absl::Hours(1));
  EXPECT_FALSE(sampler.Due(clock.Now()));
  // No CPU rate over a negative interval.
  clock.Advance(absl::Hours(1) + absl::Seconds(10));
  EXPECT_TRUE(sampler.Due(clock.Now()));
}

TEST(AttemptSystemSamplerTest, GpusAreNumberedAsTheContainerSeesThemAndUnknownsLeftOut) {
  drover::testing::FakeClock clock(absl::FromUnixSeconds(1700000000));
  SystemSampler sampler(absl::Seconds(10));
  GpuSample busy{.utilization_percent = 87, .memory_used_bytes = 1e9};
  GpuSample unknown_use{.utilization_percent = -1, .memory_used_bytes = 2e9};
  std::string lines = sampler.Take(clock.Now(), Stats(0, 1),
                                   {busy, std::nullopt, unknown_use});
  EXPECT_THAT(lines, HasSubstr(R"({"n":"gpu_utilization_percent/0","s":0,)"));
  EXPECT_THAT(lines, HasSubstr(R"({"n":"gpu_memory_bytes/0","s":0,)"));
  EXPECT_THAT(lines, Not(HasSubstr("/1\"")));  // no reading of its own yet
  EXPECT_THAT(lines, Not(HasSubstr("gpu_utilization_percent/2")));
  EXPECT_THAT(lines, HasSubstr(R"({"n":"gpu_memory_bytes/2","s":0,"t":1700000000.000000,"v":2000000000})"));
}

TEST(AttemptSystemSamplerTest, TheEndSampleHasThePeakAndTheCpuRateSinceTheLastReading) {
  drover::testing::FakeClock clock(absl::FromUnixSeconds(1700000000));
  SystemSampler sampler(absl::Seconds(10));
  sampler.Take(clock.Now(), Stats(1'000'000'000, 1 << 20, 1 << 20), {});
  // The job allocated 200 MiB and ended 4 s later, before the next reading was due.
  clock.Advance(absl::Seconds(4));
  std::optional<v1::AttemptUsage> end = sampler.End(
      clock.Now(), ContainerStats{.cpu_ns = 9'000'000'000, .memory_bytes = -1,
                                  .memory_peak_bytes = 200 << 20});
  ASSERT_TRUE(end.has_value());
  EXPECT_EQ(end->time().seconds(), 1700000004);
  EXPECT_EQ(end->sample(), 1);
  EXPECT_EQ(end->memory_peak_bytes(), 200 << 20);
  EXPECT_EQ(end->cpu_seconds(), 9.0);
  EXPECT_EQ(end->cpu_cores(), 2.0);  // 8 s of CPU in 4 s
}

TEST(AttemptSystemSamplerTest, AnEndWithoutReadableCgroupsGivesNoSample) {
  drover::testing::FakeClock clock;
  SystemSampler sampler(absl::Seconds(10));
  EXPECT_FALSE(sampler.End(clock.Now(), ContainerStats{.cpu_ns = -1, .memory_bytes = -1,
                                                       .memory_peak_bytes = -1})
                   .has_value());
  // Memory peak unknown (cgroup v2 before Linux 5.19), no earlier reading: CPU time only.
  std::optional<v1::AttemptUsage> cpu_only = sampler.End(
      clock.Now(), ContainerStats{.cpu_ns = 5, .memory_bytes = -1, .memory_peak_bytes = -1});
  ASSERT_TRUE(cpu_only.has_value());
  EXPECT_FALSE(cpu_only->has_memory_peak_bytes());
  EXPECT_FALSE(cpu_only->has_cpu_cores());
  // A CPU counter below the last reading's is not the container's: no rate from it.
  sampler.Take(clock.Now(), Stats(1'000'000, 1), {});
  clock.Advance(absl::Seconds(1));
  std::optional<v1::AttemptUsage> back = sampler.End(
      clock.Now(), ContainerStats{.cpu_ns = 5, .memory_bytes = -1, .memory_peak_bytes = 7});
  ASSERT_TRUE(back.has_value());
  EXPECT_FALSE(back->has_cpu_cores());
  EXPECT_EQ(back->memory_peak_bytes(), 7);
}

}  // namespace
}  // namespace drover::agent
