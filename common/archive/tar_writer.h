// TarWriter: writes a deterministic POSIX tar archive (ustar blocks, with a PAX extended
// header before any entry whose name or link target does not fit the ustar fields or whose
// size does not fit 11 octal digits). Every entry gets mtime 0, uid and gid 0, empty user
// and group names, and the mode the caller passes; nothing about the writing machine or the
// time of writing reaches the archive, so the same calls give the same bytes. The SHA-256
// digest of the archive is computed while writing.
//
// The writer does not sort or check paths: the caller adds entries in the order it wants
// them (`BuildSnapshot` sorts them by path). One thread at a time.
#ifndef DROVER_COMMON_ARCHIVE_TAR_WRITER_H_
#define DROVER_COMMON_ARCHIVE_TAR_WRITER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/archive/sha256.h"

namespace drover::archive {

class TarWriter {
 public:
  // Creates (or truncates) the file at `path`, mode 0644. Errors: from the file system,
  // naming `path`.
  static absl::StatusOr<std::unique_ptr<TarWriter>> Create(const std::string& path);
  // Closes the file if `Finish` was not called; the partial file is left for the caller to
  // remove.
  ~TarWriter();
  TarWriter(const TarWriter&) = delete;
  TarWriter& operator=(const TarWriter&) = delete;

  // `path` is relative, '/'-separated, without a trailing '/'. `mode` is masked to 07777.
  absl::Status AddDirectory(absl::string_view path, uint32_t mode);
  absl::Status AddSymlink(absl::string_view path, absl::string_view target);
  // Copies exactly `size` bytes read from `fd` (from its current offset). ABORTED, naming
  // `path`, when the file holds fewer bytes than `size` (it changed while being read).
  absl::Status AddFile(absl::string_view path, uint32_t mode, uint64_t size, int fd);
  absl::Status AddFileContents(absl::string_view path, uint32_t mode, absl::string_view contents);

  // Writes the end-of-archive marker (two zero blocks), flushes and closes the file, and
  // returns the archive's digest ("sha256:..."). Call once.
  absl::StatusOr<std::string> Finish();

  // Bytes of archive written so far (all of it after `Finish`).
  uint64_t bytes_written() const { return bytes_written_; }

 private:
  TarWriter(int fd, std::string path);
  absl::Status WriteHeader(absl::string_view path, char typeflag, uint32_t mode, uint64_t size,
                           absl::string_view linkname);
  absl::Status Append(const void* data, size_t size);
  absl::Status Pad(uint64_t size);
  absl::Status Flush();

  int fd_;
  std::string path_;
  std::vector<char> buffer_;
  size_t buffered_ = 0;
  uint64_t bytes_written_ = 0;
  Sha256 hash_;
  bool failed_ = false;
};

}  // namespace drover::archive

#endif  // DROVER_COMMON_ARCHIVE_TAR_WRITER_H_
