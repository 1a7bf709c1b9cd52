// Opening files in folders that someone else controls: a job's folder (its logs, outputs and
// exit files), a datastore, a snapshot. The agent runs as root and every file a job writes is
// hostile: a symbolic link there would redirect a read or a write to any host file, and a
// fifo would block the thread that opens it. So every path below such a root is resolved
// beneath the root without following a symbolic link in any component (`openat2(2)` with
// `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`; on kernels before 5.6 the same by opening one
// component at a time with `O_NOFOLLOW`), opened with `O_NONBLOCK`, and only a regular file
// (or, when asked, a folder) is accepted. Paths are relative, '/'-separated, without `..`.
//
// Pure functions of the file system; any thread. Descriptors are returned as `UniqueFd`,
// owned by the caller.
#ifndef DROVER_COMMON_SAFE_OPEN_H_
#define DROVER_COMMON_SAFE_OPEN_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace drover {

// An owned file descriptor, closed on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd();

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_ = -1;
};

// What a path names, its last component not followed.
enum class FileKind {
  kMissing,
  kRegular,
  kDirectory,
  kSymlink,  // the path itself, or a folder on the way to it, is a symbolic link
  kFifo,
  kSocket,
  kCharDevice,
  kBlockDevice,
  kOther,
};

// "missing", "regular", "directory", "symlink", "fifo", "socket", "char_device",
// "block_device", "other": the `kind=` of log lines.
absl::string_view FileKindName(FileKind kind);
// The kind of a `st_mode`.
FileKind KindOfMode(mode_t mode);

// Whether `path` is a relative path that stays below its root by its spelling: not empty,
// not absolute, no `..` component, no NUL. ("." components and doubled slashes are fine.)
bool IsBeneathPath(absl::string_view path);

// Opens `path` below the folder `root_fd` without following a symbolic link anywhere, and
// without blocking. `flags` are open(2)'s access and creation flags (O_RDONLY, O_WRONLY,
// O_RDWR, O_CREAT, O_EXCL, O_APPEND, O_TRUNC; O_CLOEXEC, O_NOFOLLOW, O_NOCTTY are always
// added); the result is a regular file, or with O_DIRECTORY in `flags` a folder. O_TRUNC
// truncates only after the file was found to be a regular file. The descriptor is blocking
// again unless `flags` has O_NONBLOCK. `found`, when given, says what the path named (kRegular
// or kDirectory on success).
//
// Errors: INVALID_ARGUMENT when `path` fails IsBeneathPath; NOT_FOUND when it (or a folder on
// the way) does not exist; FAILED_PRECONDITION when it is, or passes through, a symbolic link,
// or is not a regular file (not a folder, with O_DIRECTORY), the message naming the kind;
// UNAVAILABLE (RESOURCE_EXHAUSTED for a full disk) for other errors of the file system.
absl::StatusOr<UniqueFd> OpenBeneath(int root_fd, absl::string_view path, int flags,
                                     mode_t mode = 0644, FileKind* found = nullptr);
// Whether `status`, from OpenBeneath, says this process or the system is out of file
// descriptors (EMFILE, ENFILE): a caller holding descriptors of its own may close some and
// try again.
bool IsOutOfDescriptors(const absl::Status& status);
// The same below the folder `root`; the root itself is trusted (opened following links):
// it is the caller's own folder, such as the attempt's job folder.
absl::StatusOr<UniqueFd> OpenBeneath(const std::string& root, absl::string_view path, int flags,
                                     mode_t mode = 0644, FileKind* found = nullptr);

// A small file an administrator named (a flag's token or certificate file): links are
// followed, but only a regular file is read, never waiting on a FIFO, at most `max_bytes`
// (RESOURCE_EXHAUSTED beyond). FAILED_PRECONDITION naming what it is otherwise.
absl::StatusOr<std::string> ReadSmallFile(const std::string& path, size_t max_bytes);

// Whether ReplaceFile fsyncs the new file before the rename: kSynced survives a power cut
// (the old or the new file, whole); kUnsynced costs no disk flush, and a reader, or a
// process started after a crash of the writer, still sees the old or the new file whole,
// but a power cut may leave the old one (or, on some file systems, an empty one).
enum class FileSync { kSynced, kUnsynced };

// Writes `text` to `path` with `mode` (also under a umask): a new file, never written
// through a link, fsynced (unless `sync` says not) and renamed over `path`. UNAVAILABLE
// naming the path and errno.
absl::Status ReplaceFile(const std::string& path, absl::string_view text, mode_t mode,
                         FileSync sync = FileSync::kSynced);

// The contents of the regular file `path` below `root`, at most `max_bytes` (a larger file is
// RESOURCE_EXHAUSTED: it is not what the caller expects). Errors as OpenBeneath's.
absl::StatusOr<std::string> ReadSmallFileBeneath(int root_fd, absl::string_view path,
                                                 size_t max_bytes, FileKind* found = nullptr);
absl::StatusOr<std::string> ReadSmallFileBeneath(const std::string& root, absl::string_view path,
                                                 size_t max_bytes, FileKind* found = nullptr);

// One entry of a folder, as it is: nothing followed.
struct BeneathEntry {
  std::string name;
  FileKind kind = FileKind::kOther;
  int64_t size = 0;  // of a regular file; 0 otherwise
};

// The entries of folder `path` ("" or "." for the root itself) below `root`, sorted by name,
// without "." and "..". Errors as OpenBeneath's with O_DIRECTORY.
absl::StatusOr<std::vector<BeneathEntry>> ListBeneath(int root_fd, absl::string_view path);
absl::StatusOr<std::vector<BeneathEntry>> ListBeneath(const std::string& root,
                                                      absl::string_view path);

// Creates folder `path` below `root_fd` and every missing folder on the way (mode `mode`),
// following no symbolic link. FAILED_PRECONDITION naming the component that is a symbolic
// link or not a folder; INVALID_ARGUMENT as OpenBeneath's.
absl::Status MakeFoldersBeneath(int root_fd, absl::string_view path, mode_t mode = 0755);

// Copies `from` below `from_root` (a regular file or a folder, "" for the whole root) to `to`
// below `to_root`, folders recursively; existing regular files of the same name are replaced.
// Symbolic links and special files found in the source are left out, each named in `skipped`
// (as "path (kind)") when it is given; nothing is followed or opened but regular files and
// folders. A symbolic link or special file in the way at the destination is an error: it is
// never written through. FAILED_PRECONDITION when `from` itself is not a regular file or
// folder, or for such a destination; NOT_FOUND when `from` does not exist; other errors as
// OpenBeneath's. Either root's folder may hold files being changed meanwhile (by a job).
absl::Status CopyBeneath(int from_root, absl::string_view from, int to_root, absl::string_view to,
                         std::vector<std::string>* skipped = nullptr);

// Logs `event=unsafe_job_file path=... kind=...` at WARNING, once per path in the process's
// life (at most a few thousand paths are remembered; after that, each again at DEBUG).
void LogUnsafeFile(absl::string_view path, FileKind kind);

namespace internal {
// For tests: whether OpenBeneath may use openat2(2) (true by default; it falls back to the
// component walk by itself when the kernel lacks it). Not thread-safe against opens.
void SetUseOpenat2ForTesting(bool use);
}  // namespace internal

}  // namespace drover

#endif  // DROVER_COMMON_SAFE_OPEN_H_
