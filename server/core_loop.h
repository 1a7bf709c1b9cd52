// CoreLoop: the one thread that owns droverd's scheduling core (server/core.h). Everything
// that reads or changes the core is posted here, so the core needs no locks and never
// blocks on a client. It also runs the core's periodic tick.
#ifndef DROVER_SERVER_CORE_LOOP_H_
#define DROVER_SERVER_CORE_LOOP_H_

#include <memory>
#include <optional>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"

namespace drover::server {

class CoreLoop {
 public:
  CoreLoop();
  // Stops the loop if still running.
  ~CoreLoop();
  CoreLoop(const CoreLoop&) = delete;
  CoreLoop& operator=(const CoreLoop&) = delete;

  // Runs `fn` on the loop thread. Thread-safe. Work posted after Stop() is dropped.
  void Post(absl::AnyInvocable<void() &&> fn);
  // Runs `fn` on the loop every `period` until Stop(). Call once per periodic job.
  void Every(absl::Duration period, absl::AnyInvocable<void()> fn);

  // Runs what is already posted, then stops and joins the thread. Idempotent.
  void Stop();

 private:
  struct Periodic;
  void Arm(std::shared_ptr<Periodic> periodic);

  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guard_;
  std::vector<std::shared_ptr<Periodic>> periodic_;
  std::thread thread_;
  bool stopping_ = false;
};

}  // namespace drover::server

#endif  // DROVER_SERVER_CORE_LOOP_H_
