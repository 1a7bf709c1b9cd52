// The agent's Waiter on a fake clock: a wait ends when its condition holds (looked at again
// on each Notify) or when the clock, moved by the test, reaches its deadline. No sleeps: a
// waiting thread is woken by the test's Notify(), never by real time passing.
#include "agent/waiter.h"

#include <atomic>
#include <thread>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"

namespace drover::agent {
namespace {

TEST(AgentWaiterTest, ReturnsAtOnceWhenTheConditionAlreadyHolds) {
  testing::FakeClock clock;
  Waiter waiter(clock);
  EXPECT_TRUE(waiter.WaitUntil(clock.Now() + absl::Hours(1), [] { return true; }));
}

TEST(AgentWaiterTest, GivesUpAtOnceWhenTheDeadlineHasPassed) {
  testing::FakeClock clock;
  Waiter waiter(clock);
  int looked = 0;
  EXPECT_FALSE(waiter.WaitUntil(clock.Now(), [&] { return ++looked > 1; }));
  EXPECT_EQ(looked, 1);  // the condition is looked at once before giving up
  EXPECT_FALSE(waiter.WaitFor(-absl::Seconds(1), [] { return false; }));
}

TEST(AgentWaiterTest, ANotifyWakesTheWaiterToSeeItsCondition) {
  testing::FakeClock clock;
  Waiter waiter(clock);
  std::atomic<bool> stop{false};
  std::atomic<int> looked{0};
  bool result = false;
  // The deadline is a day away on a clock that never moves: only the Notify ends the wait.
  std::thread waiting([&] {
    result = waiter.WaitFor(absl::Hours(24), [&] {
      ++looked;
      return stop.load();
    });
  });
  while (looked.load() == 0) std::this_thread::yield();  // it has looked once
  stop = true;
  waiter.Notify();
  waiting.join();
  EXPECT_TRUE(result);
}

TEST(AgentWaiterTest, TheDeadlineIsTheClocksNotRealTime) {
  testing::FakeClock clock;
  Waiter waiter(clock);
  std::atomic<int> looked{0};
  bool result = true;
  const absl::Time deadline = clock.Now() + absl::Minutes(2);
  std::thread waiting([&] {
    result = waiter.WaitUntil(deadline, [&] {
      ++looked;
      return false;
    });
  });
  while (looked.load() == 0) std::this_thread::yield();
  // A minute on: not yet. Then past the deadline: the waiter gives up.
  clock.Advance(absl::Minutes(1));
  waiter.Notify();
  while (looked.load() < 2) std::this_thread::yield();
  clock.Advance(absl::Minutes(1));
  waiter.Notify();
  waiting.join();
  EXPECT_FALSE(result);
  EXPECT_GE(clock.Now(), deadline);
}

TEST(AgentWaiterTest, ANotifyBeforeTheWaitBeginsIsNotLost) {
  testing::FakeClock clock;
  Waiter waiter(clock);
  std::atomic<bool> ready{false};
  // The condition turns true and the Notify comes between its look and the wait: the wait
  // still ends (the Notify counted from before the look).
  int looks = 0;
  bool result = waiter.WaitFor(absl::Hours(1), [&] {
    if (++looks == 1) {
      ready = true;
      waiter.Notify();
      return false;
    }
    return ready.load();
  });
  EXPECT_TRUE(result);
  EXPECT_EQ(looks, 2);
}

TEST(AgentWaiterTest, PauseLastsItsTimeOnTheClock) {
  testing::FakeClock clock;
  Waiter waiter(clock);
  absl::Notification paused;
  absl::Time began;
  absl::Time ended;
  std::thread pausing([&] {
    began = clock.Now();
    waiter.Pause(absl::Milliseconds(200));
    ended = clock.Now();
    paused.Notify();
  });
  // The clock moves in steps of 50 ms, each followed by a Notify, until the pause is over.
  while (!paused.HasBeenNotified()) {
    clock.Advance(absl::Milliseconds(50));
    waiter.Notify();
    std::this_thread::yield();
  }
  pausing.join();
  EXPECT_GE(ended - began, absl::Milliseconds(200));
}

}  // namespace
}  // namespace drover::agent
