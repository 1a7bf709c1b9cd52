#include "server/core_loop.h"

#include <boost/asio/post.hpp>

namespace drover::server {

struct CoreLoop::Periodic {
  explicit Periodic(boost::asio::io_context& io) : timer(io) {}
  boost::asio::steady_timer timer;
  absl::Duration period;
  absl::AnyInvocable<void()> fn;
};

CoreLoop::CoreLoop() : guard_(boost::asio::make_work_guard(io_)) {
  thread_ = std::thread([this] { io_.run(); });
}

CoreLoop::~CoreLoop() { Stop(); }

void CoreLoop::Post(absl::AnyInvocable<void() &&> fn) {
  // asio handlers must be copyable; the shared_ptr carries the move-only function.
  auto shared = std::make_shared<absl::AnyInvocable<void() &&>>(std::move(fn));
  boost::asio::post(io_, [shared] { std::move (*shared)(); });
}

void CoreLoop::Every(absl::Duration period, absl::AnyInvocable<void()> fn) {
  auto periodic = std::make_shared<Periodic>(io_);
  periodic->period = period;
  periodic->fn = std::move(fn);
  boost::asio::post(io_, [this, periodic] {
    periodic_.push_back(periodic);
    Arm(periodic);
  });
}

void CoreLoop::Arm(std::shared_ptr<Periodic> periodic) {
  if (stopping_) return;
  periodic->timer.expires_after(absl::ToChronoMilliseconds(periodic->period));
  periodic->timer.async_wait([this, periodic](const boost::system::error_code& error) {
    if (error || stopping_) return;
    periodic->fn();
    Arm(periodic);
  });
}

void CoreLoop::Stop() {
  if (!thread_.joinable()) return;
  boost::asio::post(io_, [this] {
    stopping_ = true;
    for (auto& periodic : periodic_) periodic->timer.cancel();
    periodic_.clear();
  });
  guard_.reset();  // run() returns once the posted work is done
  thread_.join();
}

}  // namespace drover::server
