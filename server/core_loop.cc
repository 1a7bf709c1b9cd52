#include "server/core_loop.h"

#include <memory>

namespace drover::server {

CoreLoop::CoreLoop() : guard_(boost::asio::make_work_guard(io_)) {
  thread_ = std::thread([this] { io_.run(); });
}

CoreLoop::~CoreLoop() { Stop(); }

void CoreLoop::Post(absl::AnyInvocable<void(scheduler::JobQueue&) &&> fn) {
  // asio handlers must be copyable; the shared_ptr carries the move-only function.
  auto shared = std::make_shared<absl::AnyInvocable<void(scheduler::JobQueue&) &&>>(std::move(fn));
  boost::asio::post(io_, [this, shared] { std::move (*shared)(queue_); });
}

void CoreLoop::Stop() {
  if (!thread_.joinable()) return;
  guard_.reset();  // run() returns once the posted work is done
  thread_.join();
}

}  // namespace drover::server
