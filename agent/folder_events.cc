// FolderEvents: see folder_events.h.
#include "agent/folder_events.h"

#include <errno.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"

namespace drover::agent {
namespace {

// What counts as a change: a write to a file of the folder (IN_MODIFY), a file moved into
// it, and a lost event (the queue overflowed: anything may have changed). Creating an empty
// file and the watch's own end (IN_IGNORED, when the folder is removed) do not.
constexpr uint32_t kWatched = IN_MODIFY | IN_MOVED_TO;
constexpr uint32_t kChange = kWatched | IN_Q_OVERFLOW;

}  // namespace

FolderEvents::FolderEvents(std::function<void()> changed, absl::Duration pace)
    : changed_(std::move(changed)),
      pace_(pace),
      inotify_(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC)),
      stop_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (inotify_.valid() && stop_.valid()) thread_ = std::thread([this] { Loop(); });
}

FolderEvents::~FolderEvents() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    (void)!::write(stop_.get(), &one, sizeof one);
    thread_.join();
  }
}

int FolderEvents::Add(int dir_fd) {
  if (!thread_.joinable()) return -1;
  // Through the descriptor: the folder it is open on, whatever its path names now.
  const std::string path = absl::StrCat("/proc/self/fd/", dir_fd);
  return ::inotify_add_watch(inotify_.get(), path.c_str(), kWatched | IN_ONLYDIR);
}

void FolderEvents::Remove(int id) {
  if (id < 0 || !thread_.joinable()) return;
  (void)::inotify_rm_watch(inotify_.get(), id);
}

void FolderEvents::Loop() {
  alignas(struct inotify_event) char buffer[16 * 1024];
  const int pace_ms =
      static_cast<int>(absl::ToInt64Milliseconds(absl::Ceil(pace_, absl::Milliseconds(1))));
  while (true) {
    pollfd fds[2] = {{stop_.get(), POLLIN, 0}, {inotify_.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[0].revents != 0) return;
    bool change = false;
    while (true) {
      ssize_t n = ::read(inotify_.get(), buffer, sizeof buffer);
      if (n <= 0) break;  // EAGAIN: all read
      for (char* p = buffer; p < buffer + n;) {
        const auto* event = reinterpret_cast<const struct inotify_event*>(p);
        if ((event->mask & kChange) != 0) change = true;
        p += sizeof(struct inotify_event) + event->len;
      }
    }
    if (!change) continue;
    changed_();
    // The pace: what the folders get meanwhile waits in the queue (repeated writes to one
    // file are one event there) and makes one call after the pause.
    pollfd stop = {stop_.get(), POLLIN, 0};
    while (::poll(&stop, 1, pace_ms) < 0 && errno == EINTR) {
    }
    if (stop.revents != 0) return;
  }
}

}  // namespace drover::agent
