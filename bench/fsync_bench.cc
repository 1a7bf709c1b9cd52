#include "bench/fsync_bench.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace drover::bench {
namespace {

using SteadyClock = std::chrono::steady_clock;

absl::Status IoError(absl::string_view what, const std::string& path) {
  return absl::UnavailableError(
      absl::StrCat(what, " '", path, "': ", strerror(errno), "; is the folder writable?"));
}

// A scratch file that is unlinked and closed when it goes out of scope.
class ScratchFile {
 public:
  static absl::StatusOr<ScratchFile> Create(const std::string& dir) {
    std::string path = absl::StrCat(dir, "/drover-bench-fsync-XXXXXX");
    int fd = mkostemp(path.data(), O_CLOEXEC);
    if (fd < 0) return IoError("cannot create a scratch file like", path);
    return ScratchFile(fd, path);
  }
  ScratchFile(ScratchFile&& other) noexcept : fd_(other.fd_), path_(std::move(other.path_)) {
    other.fd_ = -1;
  }
  ~ScratchFile() {
    if (fd_ < 0) return;
    close(fd_);
    unlink(path_.c_str());
  }
  int fd() const { return fd_; }
  const std::string& path() const { return path_; }

 private:
  ScratchFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_;
  std::string path_;
};

absl::Status Sync(const ScratchFile& file, bool use_fsync) {
  int rc = use_fsync ? fsync(file.fd()) : fdatasync(file.fd());
  return rc == 0 ? absl::OkStatus() : IoError("cannot sync", file.path());
}

absl::Status WriteAt(const ScratchFile& file, const std::vector<char>& block, int64_t offset) {
  ssize_t n = pwrite(file.fd(), block.data(), block.size(), offset);
  if (n != static_cast<ssize_t>(block.size())) return IoError("cannot write", file.path());
  return absl::OkStatus();
}

// Times `count` write+sync pairs at consecutive offsets of `file`.
absl::StatusOr<LatencySummary> TimeWrites(const ScratchFile& file, const FsyncBenchOptions& o) {
  std::vector<char> block(o.size, 'w');
  std::vector<absl::Duration> samples;
  samples.reserve(o.count);
  for (int64_t i = 0; i < o.count; ++i) {
    SteadyClock::time_point start = SteadyClock::now();
    if (absl::Status s = WriteAt(file, block, i * o.size); !s.ok()) return s;
    if (absl::Status s = Sync(file, o.use_fsync); !s.ok()) return s;
    samples.push_back(absl::FromChrono(SteadyClock::now() - start));
  }
  return Summarize(std::move(samples));
}

}  // namespace

absl::StatusOr<FsyncBenchResult> RunFsyncBench(const FsyncBenchOptions& options) {
  if (options.dir.empty()) {
    return absl::InvalidArgumentError("--dir: required; name a folder on the disk to measure");
  }
  if (options.count < 1 || options.count > 1000000) {
    return absl::InvalidArgumentError(
        absl::StrCat("--count: ", options.count, " is out of range; use 1 to 1000000"));
  }
  if (options.size < 1 || options.size > (64 << 20)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--size: ", options.size, " is out of range; use 1 to 67108864 bytes"));
  }
  FsyncBenchResult result;
  {
    absl::StatusOr<ScratchFile> file = ScratchFile::Create(options.dir);
    if (!file.ok()) return file.status();
    absl::StatusOr<LatencySummary> append = TimeWrites(*file, options);
    if (!append.ok()) return append.status();
    result.append = *append;
    // The same file is now fully written and synced: time rewriting it in place.
    absl::StatusOr<LatencySummary> overwrite = TimeWrites(*file, options);
    if (!overwrite.ok()) return overwrite.status();
    result.overwrite = *overwrite;
  }
  return result;
}

}  // namespace drover::bench
