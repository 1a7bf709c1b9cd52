#include "agent/log_shipper.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <vector>

#include "absl/strings/str_cat.h"

namespace drover::agent {
namespace {

// Streams whose records are lines: a chunk ends at a line end, so that droverd can parse
// every chunk on its own.
bool LineStream(int stream) { return stream == v1::METRICS || stream == v1::SYSTEM_METRICS; }

}  // namespace

std::string LogShipper::FileName(int32_t rank, v1::LogStream stream) {
  switch (stream) {
    case v1::STDERR:
      return absl::StrCat("rank-", rank, ".stderr");
    case v1::METRICS:
      return absl::StrCat("rank-", rank, ".metrics");
    case v1::SYSTEM_METRICS:
      return absl::StrCat("node-", rank, ".system");
    default:
      return absl::StrCat("rank-", rank, ".stdout");
  }
}

void LogShipper::WakeOnChange(std::function<void()> wake, absl::Duration pace) {
  wake_ = std::move(wake);
  absl::MutexLock lock(&mu_);
  events_ = std::make_unique<FolderEvents>(wake_, pace);
}

void LogShipper::Wake() {
  if (wake_) wake_();
}

void LogShipper::StopWaking() {
  absl::MutexLock lock(&mu_);
  events_.reset();
}

bool LogShipper::Watching() {
  absl::MutexLock lock(&mu_);
  return !watched_.empty();
}

bool LogShipper::NeedsPolling() {
  absl::MutexLock lock(&mu_);
  if (events_ == nullptr) return true;
  for (const auto& [key, w] : watched_) {
    if (w.unwatched) return true;
  }
  return false;
}

void LogShipper::Watch(const v1::AttemptRef& attempt, LogFolder folder) {
  {
    absl::MutexLock lock(&mu_);
    Watched& w = watched_[Key(attempt)];
    w.attempt = attempt;
    w.folder = std::move(folder);
    if (events_ != nullptr && w.folder_watch < 0) {
      // Found as Scan() finds it (below the trusted root, no link followed), then watched
      // through that descriptor.
      absl::StatusOr<UniqueFd> dir =
          OpenBeneath(w.folder.root, w.folder.path, O_RDONLY | O_DIRECTORY);
      if (dir.ok()) w.folder_watch = events_->Add(dir->get());
      if (w.folder_watch < 0) w.unwatched = true;
    }
  }
  Wake();  // what the files got before the watch began
}

void LogShipper::WatchFile(const v1::AttemptRef& attempt, int32_t rank, v1::LogStream stream,
                           const std::string& path) {
  {
    absl::MutexLock lock(&mu_);
    Watched& w = watched_[Key(attempt)];
    w.attempt = attempt;
    const std::pair<int32_t, int> id = {rank, static_cast<int>(stream)};
    w.files[id] = path;
    if (events_ != nullptr && !w.file_watches.contains(id)) {
      // The file's folder is trusted (the agent's own), the file need not exist yet.
      UniqueFd dir(::open(std::filesystem::path(path).parent_path().c_str(),
                          O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      const int watch = dir.valid() ? events_->Add(dir.get()) : -1;
      w.file_watches[id] = watch;
      if (watch < 0) w.unwatched = true;
    }
  }
  Wake();
}

void LogShipper::Forget(const v1::AttemptRef& attempt) {
  absl::MutexLock lock(&mu_);
  auto it = watched_.find(Key(attempt));
  if (it == watched_.end()) return;
  if (events_ != nullptr) {
    events_->Remove(it->second.folder_watch);
    for (const auto& [id, watch] : it->second.file_watches) events_->Remove(watch);
  }
  watched_.erase(it);
}

int64_t LogShipper::Unacknowledged() {
  absl::MutexLock lock(&mu_);
  int64_t bytes = 0;
  for (const auto& [key, watched] : watched_) {
    for (const auto& [id, stream] : watched.streams) bytes += stream.sent - stream.acked;
  }
  return bytes;
}

void LogShipper::Acknowledged(const v1::LogAck& ack) {
  bool more = false;  // what waited for this acknowledgement may go now
  {
    absl::MutexLock lock(&mu_);
    more = AcknowledgedLocked(ack);
  }
  if (more) Wake();
}

bool LogShipper::AcknowledgedLocked(const v1::LogAck& ack) {
  auto it = watched_.find(Key(ack.attempt()));
  if (it == watched_.end()) return false;
  Stream& s = it->second.streams[{ack.rank(), static_cast<int>(ack.stream())}];
  const bool window_was_full = s.sent - s.acked >= window_bytes_;
  int64_t expected_end = -1;
  if (!s.in_flight.empty()) {
    expected_end = s.in_flight.front();
    s.in_flight.pop_front();
  }
  if (ack.offset() < 0) {
    // droverd could not store it: resend from the last acknowledged byte, at the next poll
    // (the safety tick, or the next write: not at once to a droverd that refuses).
    s.sent = s.acked;
    s.in_flight.clear();
    s.refused = true;
    return false;
  }
  s.refused = false;
  if (ack.capped()) s.capped = true;
  if (ack.offset() > s.acked) s.acked = ack.offset();
  if (expected_end >= 0 && ack.offset() < expected_end) {
    // The chunk was refused (it would have left a gap): droverd has up to `offset`; go on
    // from there. The chunks after it will be refused the same way.
    s.sent = ack.offset();
    s.in_flight.clear();
    if (s.sent < s.acked) s.sent = s.acked;
    return true;
  }
  if (s.sent < s.acked) s.sent = s.acked;
  return window_was_full && s.sent - s.acked < window_bytes_;
}

void LogShipper::Reconnected(const v1::AgentWelcome& welcome) {
  ResumeFrom(welcome);
  Wake();  // everything droverd does not have goes again
}

void LogShipper::ResumeFrom(const v1::AgentWelcome& welcome) {
  absl::MutexLock lock(&mu_);
  connected_ = true;
  for (auto& [key, w] : watched_) {
    for (auto& [id, s] : w.streams) {
      s.sent = s.acked = 0;
      s.in_flight.clear();
      s.refused = false;
      s.capped = false;  // a restarted droverd says so again at the next chunk
    }
  }
  for (const v1::LogAck& ack : welcome.log_offsets()) {
    auto it = watched_.find(Key(ack.attempt()));
    if (it == watched_.end()) continue;
    Stream& s = it->second.streams[{ack.rank(), static_cast<int>(ack.stream())}];
    s.sent = s.acked = ack.offset();
  }
}

void LogShipper::Disconnected() {
  absl::MutexLock lock(&mu_);
  connected_ = false;
}

std::map<std::pair<int32_t, int>, LogShipper::OpenFile> LogShipper::Scan(Watched& w) {
  std::map<std::pair<int32_t, int>, OpenFile> open;
  // Opens `name` below `dir_fd` when it is a regular file; `shown` names it in the log.
  auto add = [&](std::pair<int32_t, int> id, int dir_fd, const std::string& name,
                 const std::string& shown) {
    FileKind kind = FileKind::kMissing;
    absl::StatusOr<UniqueFd> fd = OpenBeneath(dir_fd, name, O_RDONLY, 0, &kind);
    if (!fd.ok()) {
      if (kind != FileKind::kMissing) LogUnsafeFile(shown, kind);
      return;
    }
    struct stat st {};
    if (::fstat(fd->get(), &st) != 0) return;
    open[id] = OpenFile{.fd = *std::move(fd), .size = st.st_size};
    w.streams.try_emplace(id);
  };
  if (!w.folder.root.empty()) {
    const std::string shown_dir = absl::StrCat(w.folder.root, "/", w.folder.path);
    FileKind kind = FileKind::kMissing;
    absl::StatusOr<UniqueFd> dir =
        OpenBeneath(w.folder.root, w.folder.path, O_RDONLY | O_DIRECTORY, 0, &kind);
    if (dir.ok()) {
      std::vector<std::pair<int32_t, int>> ids;
      for (int32_t i = 0; i < w.folder.rank_count; ++i) {
        for (v1::LogStream s : {v1::STDOUT, v1::STDERR, v1::METRICS}) {
          ids.push_back({w.folder.first_rank + i, s});
        }
      }
      ids.push_back({w.folder.node_rank, v1::SYSTEM_METRICS});
      for (const auto& id : ids) {
        std::string name = FileName(id.first, static_cast<v1::LogStream>(id.second));
        add(id, dir->get(), name, absl::StrCat(shown_dir, "/", name));
      }
    } else if (kind != FileKind::kMissing) {
      LogUnsafeFile(shown_dir, kind);
    }
  }
  for (const auto& [id, path] : w.files) {
    std::filesystem::path file(path);
    UniqueFd dir(::open(file.parent_path().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!dir.valid()) continue;
    add(id, dir.get(), file.filename().string(), path);
  }
  return open;
}

void LogShipper::Poll() {
  // One poll at a time, so that chunks of a stream go out in order.
  absl::MutexLock polling(&poll_mu_);
  std::vector<v1::AgentMessage> out;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [key, w] : watched_) {
      for (const auto& [id, file] : Scan(w)) {
        const int64_t size = file.size;
        Stream& s = w.streams[id];
        if (s.capped) {
          // droverd stores no more of it: what the job writes from now on stays on the node.
          // Only its size goes, as an empty chunk at that offset, so that droverd can say
          // how much was dropped.
          if (size > s.sent) {
            v1::AgentMessage message;
            v1::LogChunk* chunk = message.mutable_log();
            *chunk->mutable_attempt() = w.attempt;
            chunk->set_rank(id.first);
            chunk->set_stream(static_cast<v1::LogStream>(id.second));
            chunk->set_offset(size);
            s.sent = size;
            s.in_flight.push_back(size);
            out.push_back(std::move(message));
          }
          continue;
        }
        // Resume after a lost chunk: nothing acknowledged beyond `acked` is trusted.
        while (s.sent < size && s.sent - s.acked < window_bytes_) {
          int64_t want = std::min(chunk_bytes_, size - s.sent);
          std::string data(static_cast<size_t>(want), '\0');
          ssize_t n = ::pread(file.fd.get(), data.data(), data.size(), s.sent);
          if (n <= 0) break;
          data.resize(static_cast<size_t>(n));
          if (LineStream(id.second) && !w.final) {
            // Up to the last whole line; a line longer than a chunk goes as it is (droverd
            // skips what it cannot parse), and once the files are final, so does a last
            // line without its end.
            size_t end = data.rfind('\n');
            if (end != std::string::npos) {
              data.resize(end + 1);
              n = static_cast<ssize_t>(data.size());
            } else if (n < chunk_bytes_) {
              break;
            }
          }
          v1::AgentMessage message;
          v1::LogChunk* chunk = message.mutable_log();
          *chunk->mutable_attempt() = w.attempt;
          chunk->set_rank(id.first);
          chunk->set_stream(static_cast<v1::LogStream>(id.second));
          chunk->set_offset(s.sent);
          chunk->set_data(std::move(data));
          s.sent += n;
          s.in_flight.push_back(s.sent);
          out.push_back(std::move(message));
        }
      }
    }
  }
  for (v1::AgentMessage& message : out) {
    if (!send_(std::move(message))) {
      // Not connected: everything unacknowledged goes again after the reconnect.
      absl::MutexLock lock(&mu_);
      connected_ = false;
      for (auto& [key, w] : watched_) {
        for (auto& [id, s] : w.streams) {
          s.sent = s.acked;
          s.in_flight.clear();
        }
      }
      return;
    }
  }
}

bool LogShipper::Drained(const v1::AttemptRef& attempt) {
  absl::MutexLock lock(&mu_);
  auto it = watched_.find(Key(attempt));
  if (it == watched_.end()) return true;
  it->second.final = true;
  for (const auto& [id, file] : Scan(it->second)) {
    if (it->second.streams[id].acked < file.size) return false;
  }
  return true;
}

bool LogShipper::Held(const v1::AttemptRef& attempt) {
  absl::MutexLock lock(&mu_);
  if (!connected_) return true;
  auto it = watched_.find(Key(attempt));
  if (it == watched_.end()) return false;
  for (const auto& [id, s] : it->second.streams) {
    if (s.refused) return true;
  }
  return false;
}

}  // namespace drover::agent
