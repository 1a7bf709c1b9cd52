// CoreLoop: the one thread that owns droverd's scheduling core (the JobQueue). Everything
// that reads or changes the core is posted here, so the core itself needs no locks and never
// blocks on a client.
#ifndef DROVER_SERVER_CORE_LOOP_H_
#define DROVER_SERVER_CORE_LOOP_H_

#include <optional>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "absl/functional/any_invocable.h"
#include "scheduler/job_queue.h"

namespace drover::server {

class CoreLoop {
 public:
  CoreLoop();
  // Stops the loop if still running.
  ~CoreLoop();
  CoreLoop(const CoreLoop&) = delete;
  CoreLoop& operator=(const CoreLoop&) = delete;

  // Runs `fn` on the loop thread with the core. Thread-safe. Work posted after Stop() is
  // dropped.
  void Post(absl::AnyInvocable<void(scheduler::JobQueue&) &&> fn);

  // Runs what is already posted, then stops and joins the thread. Idempotent.
  void Stop();

 private:
  scheduler::JobQueue queue_;  // touched only on thread_
  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guard_;
  std::thread thread_;
};

}  // namespace drover::server

#endif  // DROVER_SERVER_CORE_LOOP_H_
