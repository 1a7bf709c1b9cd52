// FolderEvents: tells when a file in one of the watched folders was written to, so that the
// log shipper reads the attempts' log files when they grew instead of every few
// milliseconds. One inotify instance and one thread, which sleeps in the kernel until a
// watched folder changes, then calls `changed` and, to pace a chatty job, lets at least
// `pace` pass before it calls it again (the events meanwhile are merged into one call).
//
// Best effort by design: inotify has per-user limits, and a folder may be renamed or
// replaced by the job that writes into it. Add() then says -1 and the caller keeps looking
// at that folder on a timer; the shipper also looks at every folder on a slow safety tick.
// The folders' files are never read here: only that something happened is told.
//
// Thread-safe.
#ifndef DROVER_AGENT_FOLDER_EVENTS_H_
#define DROVER_AGENT_FOLDER_EVENTS_H_

#include <functional>
#include <thread>

#include "absl/time/time.h"
#include "common/safe_open.h"

namespace drover::agent {

class FolderEvents {
 public:
  // `changed` is called on FolderEvents' own thread, without any lock of this class held.
  FolderEvents(std::function<void()> changed, absl::Duration pace);
  // Stops the thread (a call of `changed` in progress completes first).
  ~FolderEvents();
  FolderEvents(const FolderEvents&) = delete;
  FolderEvents& operator=(const FolderEvents&) = delete;

  // Watches the folder open as `dir_fd` (any open descriptor of it: the path it was found by
  // is not looked up again) for writes to its files and files moved into it. Returns the
  // watch's id, or -1 when it cannot be watched (no inotify, limits reached).
  int Add(int dir_fd);
  // Stops watching `id` (from Add; -1 and ids of folders since removed are ignored).
  void Remove(int id);

 private:
  void Loop();

  const std::function<void()> changed_;
  const absl::Duration pace_;
  UniqueFd inotify_;
  UniqueFd stop_;  // an eventfd: written by the destructor
  std::thread thread_;
};

}  // namespace drover::agent

#endif  // DROVER_AGENT_FOLDER_EVENTS_H_
