#include "storage/log_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/errno_status.h"
#include "common/log.h"

namespace drover::storage {

LogStore::LogStore(std::string root, LogStoreOptions options)
    : root_(std::move(root)),
      sync_(options.sync ? std::move(options.sync) : [](int fd) { return fdatasync(fd); }),
      health_("logs", root_, std::move(options.on_write_error)) {}

absl::StatusOr<std::unique_ptr<LogStore>> LogStore::Open(std::string root,
                                                         LogStoreOptions options) {
  std::error_code error;
  std::filesystem::create_directories(root, error);
  if (error) {
    return absl::UnavailableError(
        absl::StrCat("cannot create log folder '", root, "': ", error.message()));
  }
  auto store = std::unique_ptr<LogStore>(new LogStore(std::move(root), std::move(options)));
  store->syncer_ = std::thread([s = store.get()] { s->SyncLoop(); });
  return store;
}

LogStore::~LogStore() {
  Close();
  for (auto& [key, file] : files_) {
    if (file.fd >= 0) ::close(file.fd);
  }
}

std::string LogStore::PathOf(const LogStreamKey& key) const {
  // rank-R.stdout, rank-R.stderr, rank-R.metrics, ...: the stream's name in lower case.
  return absl::StrCat(root_, "/", key.job_id, "/", key.epoch, "/rank-", key.rank, ".",
                      absl::AsciiStrToLower(v1::LogStream_Name(key.stream)));
}

absl::StatusOr<LogStore::File*> LogStore::OpenFile(const LogStreamKey& key) {
  auto it = files_.find(key);
  if (it != files_.end()) return &it->second;
  std::string path = PathOf(key);
  std::error_code error;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), error);
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("opening ", path));
  struct stat st {};
  fstat(fd, &st);
  File& file = files_[key];
  file.fd = fd;
  file.size = st.st_size;
  file.durable = st.st_size;
  return &file;
}

void LogStore::Append(const LogStreamKey& key, int64_t offset, absl::string_view data,
                      AppendCallback done) {
  absl::StatusOr<int64_t> result;
  {
    absl::MutexLock lock(&mu_);
    if (closing_) {
      result = absl::UnavailableError("droverd is shutting down; resend the logs later");
    } else if (absl::StatusOr<File*> file = OpenFile(key); !file.ok()) {
      result = health_.Failed(file.status());
    } else if (offset > (*file)->size) {
      result = absl::FailedPreconditionError(absl::StrCat(
          "log offset ", offset, " is beyond the stored size ", (*file)->size, "; resend from there"));
    } else {
      int64_t skip = (*file)->size - offset;
      if (skip < static_cast<int64_t>(data.size())) {
        absl::string_view rest = data.substr(skip);
        ssize_t written = ::pwrite((*file)->fd, rest.data(), rest.size(), (*file)->size);
        if (written != static_cast<ssize_t>(rest.size())) {
          int error = written < 0 ? errno : ENOSPC;
          // Cut back a partial write so the file ends where the stored size says.
          if (ftruncate((*file)->fd, (*file)->size) != 0) {
            Log(LogLevel::kError, "log_truncate_failed", {{"path", PathOf(key)}});
          }
          result = health_.Failed(ErrnoStatus(error, absl::StrCat("writing ", PathOf(key))));
        } else {
          (*file)->size += static_cast<int64_t>(rest.size());
          (*file)->dirty = true;
          result = (*file)->size;
        }
      } else {
        result = (*file)->size;
      }
    }
    if (result.ok()) {
      pending_.push_back(Pending{key, result, std::move(done), files_[key].generation});
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
        if (file.dirty) {
          dirty.push_back(Dirty{key, file.fd, file.size, absl::OkStatus()});
          file.dirty = false;
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
        File& file = files_[d.key];
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
        file.dirty = false;
        file.generation += 1;
        file.cut_back = d.synced;
      }
      for (Pending& p : batch) {
        const File& file = files_[p.key];
        if (p.generation != file.generation) p.result = file.cut_back;
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

int64_t LogStore::Size(const LogStreamKey& key) {
  absl::MutexLock lock(&mu_);
  auto it = files_.find(key);
  if (it != files_.end()) return it->second.size;
  struct stat st {};
  return ::stat(PathOf(key).c_str(), &st) == 0 ? st.st_size : 0;
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
    out.push_back(LogStreamInfo{rank, key.stream, Size(key)});
  }
  std::sort(out.begin(), out.end(), [](const LogStreamInfo& a, const LogStreamInfo& b) {
    return std::tie(a.rank, a.stream) < std::tie(b.rank, b.stream);
  });
  return out;
}

absl::StatusOr<std::string> LogStore::Read(const LogStreamKey& key, int64_t offset,
                                           int64_t max_bytes) {
  int fd = ::open(PathOf(key).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::string();
    return ErrnoStatus(errno, absl::StrCat("reading ", PathOf(key)));
  }
  std::string out(static_cast<size_t>(max_bytes), '\0');
  ssize_t n = ::pread(fd, out.data(), out.size(), offset);
  ::close(fd);
  if (n < 0) return ErrnoStatus(errno, absl::StrCat("reading ", PathOf(key)));
  out.resize(static_cast<size_t>(n));
  return out;
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
