// TarReader: reads the entries of a tar archive one by one from a file or another
// `ByteSource` (a download stream, for one): POSIX ustar and
// pax (extended headers `x`, global headers `g`), GNU tar's format (long names `L`, long
// link targets `K`, base-256 sizes) and old v7 headers. Every header's checksum is checked.
// The reader reports entries as the archive states them; it judges nothing about their
// safety (that is `ExtractTar`'s job), except that it refuses what it cannot represent
// faithfully: names or link targets with NUL bytes, GNU sparse files, multi-volume parts,
// oversized extended headers.
//
// One thread at a time.
#ifndef DROVER_COMMON_ARCHIVE_TAR_READER_H_
#define DROVER_COMMON_ARCHIVE_TAR_READER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/archive/sha256.h"

namespace drover::archive {

// Where a TarReader's bytes come from, in order. The reader owns its source.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Copies up to `size` (> 0) of the next bytes into `out` and returns how many, 0 only at
  // the end. Errors are the source's own (a failed read, a refused download) and reach the
  // reader's caller unchanged.
  virtual absl::StatusOr<size_t> Read(char* out, size_t size) = 0;
};

struct TarEntry {
  // The name exactly as stored (after PAX / GNU long-name overrides), for example
  // "./src/main.py" or "src/". Not normalised.
  std::string path;
  // '0' regular file (also for the old '\0' and contiguous '7'), '1' hard link, '2'
  // symbolic link, '3' character device, '4' block device, '5' directory, '6' fifo, or
  // another type flag as found.
  char type = '0';
  uint32_t mode = 0;           // permission bits as stored, masked to 07777
  uint64_t size = 0;           // bytes of data that follow (0 for everything but regular files)
  std::string linkname;        // target of a symbolic or hard link
  uint64_t header_offset = 0;  // where the entry's first header starts, for messages
};

class TarReader {
 public:
  // Opens `path` for reading. Errors: from the file system, naming `path`.
  static absl::StatusOr<std::unique_ptr<TarReader>> Open(const std::string& path);
  // Reads from `source`; `name` stands for the archive in messages.
  static std::unique_ptr<TarReader> FromSource(std::unique_ptr<ByteSource> source,
                                               std::string name);
  ~TarReader();
  TarReader(const TarReader&) = delete;
  TarReader& operator=(const TarReader&) = delete;

  // The next entry, or nullopt at the end-of-archive marker. Skips whatever data of the
  // previous entry was not read. INVALID_ARGUMENT for a corrupt or unsupported archive
  // (bad checksum, not a tar file, sparse file, malformed extended header), DATA_LOSS when
  // the file ends before the end-of-archive marker; messages give the byte offset.
  absl::StatusOr<std::optional<TarEntry>> Next();

  // Passes the data of the current entry to `sink` in pieces, then skips its padding.
  // Errors: DATA_LOSS when the file ends early, or what `sink` returns.
  absl::Status ReadData(const std::function<absl::Status(absl::string_view)>& sink);

  // Reads the rest of the file (whatever follows the end-of-archive marker) and returns the
  // digest ("sha256:...") of every byte of the file, so that a caller can check the archive
  // against the digest it was fetched by without reading it twice. Call once, at the end.
  absl::StatusOr<std::string> DrainAndDigest();

 private:
  TarReader(std::unique_ptr<ByteSource> source, std::string path);
  // Reads the next piece of the file into the empty buffer; DATA_LOSS at the end of file.
  absl::Status Refill();
  // Reads exactly `size` bytes into `out` (or drops them when `out` is null); DATA_LOSS if
  // the file ends first.
  absl::Status ReadExact(char* out, size_t size);
  absl::Status Skip(uint64_t size);
  // Reads `size` bytes of extended-header data (plus padding) into a string.
  absl::StatusOr<std::string> ReadSmallData(uint64_t size, absl::string_view what,
                                            uint64_t header_offset);

  std::unique_ptr<ByteSource> source_;
  std::string path_;
  std::vector<char> buffer_;
  size_t buffer_pos_ = 0;
  size_t buffer_end_ = 0;
  uint64_t offset_ = 0;        // bytes consumed so far
  uint64_t data_left_ = 0;     // unread data bytes of the current entry
  uint64_t padding_left_ = 0;  // padding after the current entry's data
  bool at_end_ = false;
  Sha256 hash_;
};

}  // namespace drover::archive

#endif  // DROVER_COMMON_ARCHIVE_TAR_READER_H_
