#include "storage/log_store.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/errno_status.h"
#include "common/log.h"
#include "common/safe_open.h"
#include "common/status_macros.h"
#include "storage/log_store_internal.h"

namespace drover::storage {

using log_store_internal::IsMetricStream;
using log_store_internal::Lines;

namespace {

// Marks the refusal of an entry planted in the folder (not a disk error).
constexpr absl::string_view kPlantedPayload = "drover.dev/log-store/planted";

bool SameAttempt(const LogStreamKey& key, absl::string_view job_id, int64_t epoch) {
  return key.epoch == epoch && key.job_id == job_id;
}

}  // namespace

LogStore::LogStore(std::string root, LogStoreOptions options)
    : root_(std::move(root)),
      sync_(options.sync ? std::move(options.sync) : [](int fd) { return fdatasync(fd); }),
      limits_(options.limits),
      on_dropped_(std::move(options.on_dropped)),
      health_("logs", root_, std::move(options.on_write_error)) {
  struct rlimit limit {};
  int64_t soft = 1024;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    soft = limit.rlim_cur == RLIM_INFINITY ? (int64_t{1} << 30)
                                           : static_cast<int64_t>(limit.rlim_cur);
  }
  soft = std::min<int64_t>(soft, int64_t{1} << 30);
  int64_t reserve = options.fd_reserve > 0 ? options.fd_reserve : std::max<int64_t>(32, soft / 8);
  fd_ceiling_ = static_cast<int>(std::max<int64_t>(soft - reserve, 8));
  max_open_files_ = static_cast<int>(std::max<int64_t>(
      1, std::min<int64_t>(options.max_open_files, std::max<int64_t>(4, soft / 4))));
}

absl::StatusOr<std::unique_ptr<LogStore>> LogStore::Open(std::string root,
                                                         LogStoreOptions options) {
  std::error_code error;
  std::filesystem::create_directories(root, error);
  if (error) {
    return absl::UnavailableError(
        absl::StrCat("cannot create log folder '", root, "': ", error.message()));
  }
  auto store = std::unique_ptr<LogStore>(new LogStore(std::move(root), std::move(options)));
  store->root_fd_ = ::open(store->root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (store->root_fd_ < 0) {
    return ErrnoStatus(errno, absl::StrCat("opening log folder '", store->root_, "'"));
  }
  store->syncer_ = std::thread([s = store.get()] { s->SyncLoop(); });
  return store;
}

LogStore::~LogStore() {
  Close();
  for (auto& [key, file] : files_) {
    if (file.fd >= 0) ::close(file.fd);
  }
  if (root_fd_ >= 0) ::close(root_fd_);
}

std::string LogStore::RelativePathOf(const LogStreamKey& key) {
  // rank-R.stdout, rank-R.stderr, rank-R.metrics, ...: the stream's name in lower case.
  return absl::StrCat(key.job_id, "/", key.epoch, "/rank-", key.rank, ".",
                      absl::AsciiStrToLower(v1::LogStream_Name(key.stream)));
}

std::string LogStore::PathOf(const LogStreamKey& key) const {
  return absl::StrCat(root_, "/", RelativePathOf(key));
}

absl::StatusOr<int> LogStore::OpenGuarded(const std::string& path, int flags) {
  for (int tries = 0; tries < 2; ++tries) {
    absl::StatusOr<UniqueFd> opened = OpenBeneath(root_fd_, path, flags, 0640);
    bool short_of_fds = !opened.ok() && IsOutOfDescriptors(opened.status());
    if (opened.ok() && opened->get() >= fd_ceiling_) {
      // Among the last descriptors: those are for accepting calls and the database.
      opened = absl::UnavailableError("");
      short_of_fds = true;
    }
    if (opened.ok()) {
      if (short_of_fds_) {
        short_of_fds_ = false;
        Log(LogLevel::kInfo, "log_store_fds_recovered", {{"open_files", open_.size()}});
      }
      return opened->release();
    }
    if (absl::IsNotFound(opened.status())) {
      return absl::NotFoundError(absl::StrCat("no file ", root_, "/", path));
    }
    if (!short_of_fds) {
      if (absl::IsFailedPrecondition(opened.status())) {
        // Something planted in the log folder (a link, a FIFO): never followed or waited on.
        Log(LogLevel::kWarning, "log_file_refused",
            {{"path", absl::StrCat(root_, "/", path)}, {"error", opened.status().message()}});
        absl::Status planted = absl::UnavailableError(
            absl::StrCat("log file ", root_, "/", path, ": ", opened.status().message(),
                         "; an administrator must remove it"));
        planted.SetPayload(kPlantedPayload, absl::Cord("1"));
        return planted;
      }
      return opened.status();
    }
    if (!EvictOne()) break;
  }
  if (!short_of_fds_) {
    short_of_fds_ = true;
    Log(LogLevel::kWarning, "log_store_short_of_fds",
        {{"open_files", open_.size()}, {"fd_ceiling", fd_ceiling_}});
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      "droverd is short of file descriptors (", open_.size(),
      " log files open); retry in a moment (agents resend logs by themselves); if it "
      "persists, raise droverd's open file limit (LimitNOFILE) or lower --max-open-log-files"));
}

void LogStore::CloseFd(File& file) {
  if (file.fd < 0) return;
  ::close(file.fd);
  file.fd = -1;
  open_.erase(file.lru);
}

bool LogStore::EvictOne() {
  for (auto it = open_.rbegin(); it != open_.rend(); ++it) {
    auto found = files_.find(*it);
    if (found == files_.end()) continue;
    File& file = found->second;
    if (file.in_sync) continue;
    if (file.dirty) {
      // Durable before it is closed: the syncer no longer sees it.
      if (sync_(file.fd) != 0) continue;  // the syncer cuts it back in its round
      file.durable = std::max(file.durable, file.size);
      file.dirty = false;
    }
    CloseFd(file);
    if (file.ended) files_.erase(found);  // nothing more comes for it
    return true;
  }
  return false;
}

absl::StatusOr<LogStore::File*> LogStore::OpenFile(const LogStreamKey& key) {
  auto it = files_.find(key);
  if (it != files_.end() && it->second.fd >= 0) {
    open_.splice(open_.begin(), open_, it->second.lru);
    return &it->second;
  }
  std::string path = RelativePathOf(key);
  if (it == files_.end()) {
    // The attempt's folder, made below the root without following a link (when this
    // fails, the open below says why).
    (void)MakeFoldersBeneath(root_fd_, absl::StrCat(key.job_id, "/", key.epoch), 0750);
  }
  while (static_cast<int>(open_.size()) >= max_open_files_ && EvictOne()) {
  }
  DROVER_ASSIGN_OR_RETURN(int fd, OpenGuarded(path, O_RDWR | O_CREAT));
  if (it == files_.end()) {
    struct stat st {};
    fstat(fd, &st);
    File file;
    file.size = file.durable = file.received = st.st_size;
    LoadCap(key, fd, path, file);
    it = files_.emplace(key, std::move(file)).first;
  }
  File& file = it->second;
  file.fd = fd;
  open_.push_front(key);
  file.lru = open_.begin();
  return &file;
}

absl::Status LogStore::WriteAt(const LogStreamKey& key, File& file, absl::string_view data,
                               int64_t lines) {
  if (data.empty()) return absl::OkStatus();
  ssize_t written = ::pwrite(file.fd, data.data(), data.size(), file.size);
  if (written != static_cast<ssize_t>(data.size())) {
    int error = written < 0 ? errno : ENOSPC;
    // Cut back a partial write so the file ends where the stored size says.
    if (ftruncate(file.fd, file.size) != 0) {
      Log(LogLevel::kError, "log_truncate_failed", {{"path", PathOf(key)}});
    }
    return health_.Failed(ErrnoStatus(error, absl::StrCat("writing ", PathOf(key))));
  }
  file.size += static_cast<int64_t>(data.size());
  // Records are counted for the metric caps only: stdout is not read twice.
  if (IsMetricStream(key.stream)) file.records += lines >= 0 ? lines : Lines(data);
  file.dirty = true;
  return absl::OkStatus();
}

absl::Status LogStore::Rewrite(const LogStreamKey& key, File& file, int64_t offset,
                               absl::string_view data) {
  if (data.empty()) return absl::OkStatus();
  if (::pwrite(file.fd, data.data(), data.size(), offset) != static_cast<ssize_t>(data.size())) {
    return health_.Failed(ErrnoStatus(errno, absl::StrCat("writing ", PathOf(key))));
  }
  file.dirty = true;
  return absl::OkStatus();
}

void LogStore::Append(const LogStreamKey& key, int64_t offset, absl::string_view data,
                      AppendCallback done) {
  absl::StatusOr<int64_t> result;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<File*> opened = absl::UnavailableError("");
    if (closing_) {
      result = absl::UnavailableError("droverd is shutting down; resend the logs later");
    } else if (opened = OpenFile(key); !opened.ok()) {
      // Short of descriptors is not the disk's fault, nor is an entry planted in the folder.
      result = (absl::IsResourceExhausted(opened.status()) &&
                absl::StrContains(opened.status().message(), "file descriptors")) ||
                       opened.status().GetPayload(kPlantedPayload).has_value()
                   ? opened.status()
                   : health_.Failed(opened.status());
    } else if (File& file = **opened; file.capped) {
      // Past the cap: acknowledged, not stored.
      const int64_t end = offset + static_cast<int64_t>(data.size());
      if (end > file.received) {
        // An agent told of the cap sends only its size (an empty chunk at that offset): the
        // bytes count as dropped, their records are not known.
        const int64_t dropped_bytes = end - file.received;
        absl::string_view dropped = data.substr(
            std::min(data.size(), static_cast<size_t>(std::max<int64_t>(0, file.received - offset))));
        file.received = end;
        file.dropped_records += Lines(dropped);
        SaveCap(key, file);
        if (on_dropped_) on_dropped_(key.stream, dropped_bytes);
      }
      result = file.received;
    } else if (offset > file.size) {
      result = absl::FailedPreconditionError(absl::StrCat(
          "log offset ", offset, " is beyond the stored size ", file.size, "; resend from there"));
    } else {
      int64_t skip = file.size - offset;
      // Bytes already stored are written again where they are, not skipped: they are the
      // same bytes (a stream's file on the node is what is shipped), so this changes
      // nothing, except after a leader on shared storage died with writes its file server
      // never had (docs/operations.md#shared-data): a hole there is filled from the
      // agent's resend. Only a resend overlaps, so this costs nothing in the steady state.
      absl::Status rewritten =
          Rewrite(key, file, offset, data.substr(0, std::min<size_t>(skip, data.size())));
      if (!rewritten.ok()) {
        result = rewritten;
      } else if (skip < static_cast<int64_t>(data.size())) {
        absl::string_view rest = data.substr(skip);
        const int64_t lines = IsMetricStream(key.stream) ? Lines(rest) : -1;
        const bool over =
            IsMetricStream(key.stream)
                ? limits_.max_metric_records > 0 &&
                      file.records + lines > limits_.max_metric_records
                : limits_.max_log_bytes > 0 &&
                      file.size + static_cast<int64_t>(rest.size()) > limits_.max_log_bytes;
        if (over) {
          result = AppendCapped(key, file, offset, rest);
        } else if (absl::Status written = WriteAt(key, file, rest, lines); !written.ok()) {
          result = written;
        } else {
          file.received = file.size;
          result = file.size;
        }
      } else {
        result = file.size;
      }
    }
    if (result.ok()) {
      pending_.push_back(Pending{key, result, std::move(done), (*opened)->generation});
      return;
    }
  }
  std::move(done)(std::move(result));
}

void LogStore::SyncLoop() {
  struct Dirty {
    LogStreamKey key;
    int fd;
    int64_t size;  // when collected
    absl::Status synced;
  };
  while (true) {
    std::vector<Pending> batch;
    std::vector<Dirty> dirty;
    bool stop;
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(
                               +[](LogStore* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu_) {
                                 return !s->pending_.empty() || s->closing_;
                               },
                               this),
                           absl::Milliseconds(500));
      batch.swap(pending_);
      for (auto& [key, file] : files_) {
        if (file.dirty && file.fd >= 0) {
          dirty.push_back(Dirty{key, file.fd, file.size, absl::OkStatus()});
          file.dirty = false;
          file.in_sync = true;
        }
      }
      stop = closing_ && batch.empty();
    }
    bool failed = false;
    for (Dirty& d : dirty) {
      if (sync_(d.fd) != 0) {
        d.synced = ErrnoStatus(errno, absl::StrCat("syncing ", PathOf(d.key)));
        failed = true;
      }
    }
    {
      absl::MutexLock lock(&mu_);
      for (const Dirty& d : dirty) {
        File& file = files_.find(d.key)->second;
        file.in_sync = false;
        if (d.synced.ok()) {
          file.durable = std::max(file.durable, d.size);
          continue;
        }
        // After a failed fsync the kernel may have dropped the written pages: nothing past
        // the durable size can be trusted, so cut the file back and fail every append
        // written since (the sender resends them).
        if (ftruncate(file.fd, file.durable) != 0) {
          Log(LogLevel::kError, "log_truncate_failed", {{"path", PathOf(d.key)}});
        }
        file.size = file.durable;
        // (A metric stream's record count is not recounted: it may stay high, which only
        // brings its cap a little nearer.)
        if (!file.capped) file.received = file.size;
        file.dirty = false;
        file.generation += 1;
        file.cut_back = d.synced;
      }
      for (Pending& p : batch) {
        auto file = files_.find(p.key);
        if (file != files_.end() && p.generation != file->second.generation) {
          p.result = file->second.cut_back;
        }
      }
      // The files of ended attempts, durable now, are closed and forgotten.
      for (const Dirty& d : dirty) {
        auto it = files_.find(d.key);
        if (it == files_.end() || !it->second.ended || it->second.dirty) continue;
        CloseFd(it->second);
        files_.erase(it);
      }
    }
    bool refused = false;
    for (Pending& p : batch) {
      if (p.result.ok()) continue;
      refused = true;
      p.result = health_.Failed(p.result.status());
    }
    if (!batch.empty() && !refused && !failed) health_.Succeeded();
    for (Pending& p : batch) {
      const int64_t size = p.result.ok() ? *p.result : -1;
      std::move(p.done)(std::move(p.result));
      if (size >= 0) {
        absl::MutexLock lock(&listeners_mu_);
        for (auto& [id, listener] : listeners_) listener(p.key, size);
      }
    }
    if (stop) return;
  }
}

int64_t LogStore::Received(const LogStreamKey& key) {
  absl::MutexLock lock(&mu_);
  auto it = files_.find(key);
  if (it != files_.end()) return it->second.received;
  const std::string path = RelativePathOf(key);
  struct stat st {};
  int64_t size = 0;
  if (::fstatat(root_fd_, path.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode)) {
    size = st.st_size;
  }
  absl::StatusOr<std::string> text = ReadSmallFileBeneath(root_fd_, path + ".capped", 256);
  std::istringstream sidecar(text.ok() ? *text : "");
  int64_t cap_at = 0, received = 0;
  if (sidecar >> cap_at >> received) return std::max(size, received);
  return size;
}

bool LogStore::Capped(const LogStreamKey& key) {
  absl::MutexLock lock(&mu_);
  auto it = files_.find(key);
  return it != files_.end() && it->second.capped;
}

std::vector<LogStreamInfo> LogStore::Streams(absl::string_view job_id, int64_t epoch) {
  std::vector<LogStreamInfo> out;
  std::string dir = absl::StrCat(root_, "/", job_id, "/", epoch);
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    std::string name = entry.path().filename().string();
    int rank = 0;
    char kind[32] = {};
    v1::LogStream stream;
    if (sscanf(name.c_str(), "rank-%d.%31s", &rank, kind) != 2 ||
        !v1::LogStream_Parse(absl::AsciiStrToUpper(kind), &stream) ||
        stream == v1::LOG_STREAM_UNSPECIFIED) {
      continue;
    }
    LogStreamKey key{std::string(job_id), epoch, rank, stream};
    int64_t size = 0;
    {
      absl::MutexLock lock(&mu_);
      auto it = files_.find(key);
      if (it != files_.end()) size = it->second.size;
    }
    struct stat st {};
    if (::lstat(entry.path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    if (size == 0) size = st.st_size;
    out.push_back(LogStreamInfo{rank, key.stream, size, std::max(size, Received(key))});
  }
  std::sort(out.begin(), out.end(), [](const LogStreamInfo& a, const LogStreamInfo& b) {
    return std::tie(a.rank, a.stream) < std::tie(b.rank, b.stream);
  });
  return out;
}

absl::StatusOr<std::string> LogStore::Read(const LogStreamKey& key, int64_t offset,
                                           int64_t max_bytes) {
  absl::StatusOr<int> fd;
  {
    absl::MutexLock lock(&mu_);
    fd = OpenGuarded(RelativePathOf(key), O_RDONLY);
  }
  if (!fd.ok()) {
    if (absl::IsNotFound(fd.status())) return std::string();
    return fd.status();
  }
  std::string out(static_cast<size_t>(max_bytes), '\0');
  ssize_t n = ::pread(*fd, out.data(), out.size(), offset);
  int error = errno;
  ::close(*fd);
  if (n < 0) return ErrnoStatus(error, absl::StrCat("reading ", PathOf(key)));
  out.resize(static_cast<size_t>(n));
  return out;
}

void LogStore::EndAttempt(absl::string_view job_id, int64_t epoch) {
  absl::MutexLock lock(&mu_);
  std::vector<LogStreamKey> keys;
  for (const auto& [key, file] : files_) {
    if (SameAttempt(key, job_id, epoch)) keys.push_back(key);
  }
  for (const LogStreamKey& key : keys) {
    auto found = files_.find(key);
    if (found == files_.end()) continue;  // closed and forgotten meanwhile
    File* file = &found->second;
    if (file->capped && file->received > file->cap_at) {
      absl::StatusOr<File*> opened = OpenFile(key);
      if (opened.ok()) {
        file = *opened;
        absl::Status written = WriteAt(
            key, *file,
            LogDroppedNote(key.stream, file->received - file->cap_at, file->dropped_records));
        if (!written.ok()) {
          Log(LogLevel::kWarning, "log_note_unsaved",
              {{"job", key.job_id}, {"epoch", key.epoch}, {"error", written.message()}});
        }
        file->cap_at = file->received;  // said once
        SaveCap(key, *file);
      }
    }
    if (!file->dirty && !file->in_sync) {
      CloseFd(*file);
      files_.erase(key);
    } else {
      file->ended = true;
    }
  }
}

absl::StatusOr<int64_t> LogStore::RemoveStreams(absl::string_view job_id,
                                                const std::vector<v1::LogStream>& streams,
                                                bool dry_run) {
  std::string job_dir = absl::StrCat(root_, "/", job_id);
  absl::MutexLock lock(&mu_);
  int64_t freed = 0;
  std::error_code error;
  // A link planted for the job's folder is not followed (nothing elsewhere is removed).
  if (struct stat st {}; ::lstat(job_dir.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) return freed;
  for (const auto& epoch_entry : std::filesystem::directory_iterator(job_dir, error)) {
    int64_t epoch = 0;
    if (!epoch_entry.is_directory(error) ||
        !absl::SimpleAtoi(epoch_entry.path().filename().string(), &epoch)) {
      continue;
    }
    for (const auto& entry : std::filesystem::directory_iterator(epoch_entry.path(), error)) {
      std::string name = entry.path().filename().string();
      int rank = 0;
      char kind[32] = {};
      v1::LogStream stream;
      if (sscanf(name.c_str(), "rank-%d.%31[a-z_]", &rank, kind) != 2 ||
          !v1::LogStream_Parse(absl::AsciiStrToUpper(kind), &stream) ||
          std::find(streams.begin(), streams.end(), stream) == streams.end()) {
        continue;
      }
      LogStreamKey key{std::string(job_id), epoch, rank, stream};
      if (name != absl::StrCat("rank-", rank, ".", kind) &&
          name != absl::StrCat("rank-", rank, ".", kind, ".capped")) {
        continue;
      }
      if (dry_run) {
        struct stat st {};
        if (::lstat(entry.path().c_str(), &st) == 0 && S_ISREG(st.st_mode)) freed += st.st_size;
        continue;
      }
      if (auto it = files_.find(key); it != files_.end()) {
        if (it->second.in_sync) continue;  // being synced: the next pass takes it
        CloseFd(it->second);
        files_.erase(it);
      }
      struct stat st {};
      if (::lstat(entry.path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
      if (::unlink(entry.path().c_str()) != 0) {
        if (errno == ENOENT) continue;
        return ErrnoStatus(errno, absl::StrCat("removing ", entry.path().string()));
      }
      freed += static_cast<int64_t>(st.st_size);
    }
  }
  if (error && error != std::errc::no_such_file_or_directory) {
    return ErrnoStatus(error.value(), absl::StrCat("listing ", job_dir));
  }
  return freed;
}

int LogStore::OpenFiles() {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(open_.size());
}

int LogStore::AddListener(Listener listener) {
  absl::MutexLock lock(&listeners_mu_);
  int id = next_listener_++;
  listeners_.emplace_back(id, std::move(listener));
  return id;
}

void LogStore::RemoveListener(int id) {
  absl::MutexLock lock(&listeners_mu_);
  std::erase_if(listeners_, [id](const auto& entry) { return entry.first == id; });
}

void LogStore::Close() {
  {
    absl::MutexLock lock(&mu_);
    if (closing_ && !syncer_.joinable()) return;
    closing_ = true;
  }
  if (syncer_.joinable()) syncer_.join();
}

}  // namespace drover::storage
