#include "common/archive/tar_reader.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/archive/tar_format.h"
#include "common/status_macros.h"

namespace drover::archive {
namespace {

constexpr size_t kBufferSize = 1 << 20;
// Extended headers and GNU long names carry a few names; anything larger is hostile.
constexpr uint64_t kMaxExtendedHeader = 1 << 20;

absl::string_view FieldBytes(const char* block, tar::Field field) {
  return absl::string_view(block + field.offset, field.size);
}

// A text field: its bytes up to the first NUL.
std::string FieldString(const char* block, tar::Field field) {
  absl::string_view bytes = FieldBytes(block, field);
  size_t nul = bytes.find('\0');
  return std::string(nul == absl::string_view::npos ? bytes : bytes.substr(0, nul));
}

// A numeric field: octal digits (with leading spaces, ended by a space or NUL), or GNU's
// base-256 form (high bit of the first byte set). Negative numbers are refused.
std::optional<uint64_t> FieldNumber(const char* block, tar::Field field) {
  absl::string_view bytes = FieldBytes(block, field);
  auto first = static_cast<unsigned char>(bytes[0]);
  if (first & 0x80) {
    if (first & 0x40) return std::nullopt;  // negative
    uint64_t value = first & 0x3f;
    for (size_t i = 1; i < bytes.size(); ++i) {
      if (value >> 55) return std::nullopt;  // would overflow 63 bits
      value = (value << 8) | static_cast<unsigned char>(bytes[i]);
    }
    return value;
  }
  size_t i = 0;
  while (i < bytes.size() && bytes[i] == ' ') ++i;
  uint64_t value = 0;
  for (; i < bytes.size(); ++i) {
    char c = bytes[i];
    if (c == '\0' || c == ' ') break;
    if (c < '0' || c > '7') return std::nullopt;
    if (value >> 60) return std::nullopt;
    value = value * 8 + static_cast<uint64_t>(c - '0');
  }
  for (; i < bytes.size(); ++i) {
    if (bytes[i] != '\0' && bytes[i] != ' ') return std::nullopt;
  }
  return value;
}

bool ChecksumMatches(const char* block) {
  std::optional<uint64_t> stored = FieldNumber(block, tar::kChecksum);
  if (!stored.has_value()) return false;
  uint64_t unsigned_sum = 0;
  int64_t signed_sum = 0;
  for (size_t i = 0; i < tar::kBlockSize; ++i) {
    bool in_field = i >= tar::kChecksum.offset && i < tar::kChecksum.offset + tar::kChecksum.size;
    unsigned char u = in_field ? ' ' : static_cast<unsigned char>(block[i]);
    signed char s = in_field ? ' ' : static_cast<signed char>(block[i]);
    unsigned_sum += u;
    signed_sum += s;
  }
  // Some old writers summed signed chars; POSIX says unsigned. Accept both, as GNU tar does.
  return *stored == unsigned_sum || static_cast<int64_t>(*stored) == signed_sum;
}

struct PaxValues {
  std::optional<std::string> path;
  std::optional<std::string> linkpath;
  std::optional<uint64_t> size;
};

// Parses "LENGTH key=value\n" records. `is_global` headers are checked but their values
// are not used (a global path or size makes no sense for a source tree).
absl::Status ParsePax(absl::string_view data, uint64_t header_offset, PaxValues* values) {
  auto malformed = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "archive is corrupt: malformed pax extended header at byte ", header_offset, ": ", why));
  };
  while (!data.empty()) {
    size_t space = data.find(' ');
    if (space == absl::string_view::npos || space == 0 || space > 20) {
      return malformed("record without a length");
    }
    uint64_t length = 0;
    if (!absl::SimpleAtoi(data.substr(0, space), &length) || length <= space + 1 ||
        length > data.size()) {
      return malformed("record length out of range");
    }
    absl::string_view record = data.substr(space + 1, length - space - 1);
    data.remove_prefix(length);
    if (record.empty() || record.back() != '\n') return malformed("record not ended by newline");
    record.remove_suffix(1);
    size_t equals = record.find('=');
    if (equals == absl::string_view::npos || equals == 0) return malformed("record without key");
    absl::string_view key = record.substr(0, equals);
    absl::string_view value = record.substr(equals + 1);
    if (absl::StartsWith(key, "GNU.sparse.")) {
      return absl::InvalidArgumentError(
          absl::StrCat("archive holds a sparse file (pax header at byte ", header_offset,
                       "); sparse files are not supported: archive without --sparse"));
    }
    if (key == "path" || key == "linkpath") {
      if (value.find('\0') != absl::string_view::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat("archive entry at byte ", header_offset, ": ", key,
                         " contains a NUL byte; such names cannot be extracted"));
      }
      std::optional<std::string>& slot = key == "path" ? values->path : values->linkpath;
      if (value.empty()) {
        slot.reset();
      } else {
        slot = std::string(value);
      }
    } else if (key == "size") {
      uint64_t size = 0;
      if (value.empty() || !absl::SimpleAtoi(value, &size) ||
          !std::all_of(value.begin(), value.end(), absl::ascii_isdigit) || size >> 62) {
        return malformed(absl::StrCat("bad size '", value, "'"));
      }
      values->size = size;
    }
  }
  return absl::OkStatus();
}

// The bytes of an open file, which it closes.
class FdSource final : public ByteSource {
 public:
  FdSource(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~FdSource() override { close(fd_); }

  absl::StatusOr<size_t> Read(char* out, size_t size) override {
    while (true) {
      ssize_t n = read(fd_, out, size);
      if (n >= 0) return static_cast<size_t>(n);
      if (errno != EINTR) {
        return absl::ErrnoToStatus(errno, absl::StrCat("cannot read archive '", path_, "'"));
      }
    }
  }

 private:
  const int fd_;
  const std::string path_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<TarReader>> TarReader::Open(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot open archive '", path, "'"));
  }
  return FromSource(std::make_unique<FdSource>(fd, path), path);
}

std::unique_ptr<TarReader> TarReader::FromSource(std::unique_ptr<ByteSource> source,
                                                 std::string name) {
  return std::unique_ptr<TarReader>(new TarReader(std::move(source), std::move(name)));
}

TarReader::TarReader(std::unique_ptr<ByteSource> source, std::string path)
    : source_(std::move(source)), path_(std::move(path)), buffer_(kBufferSize) {}

TarReader::~TarReader() = default;

absl::Status TarReader::Refill() {
  DROVER_ASSIGN_OR_RETURN(size_t n, source_->Read(buffer_.data(), buffer_.size()));
  if (n == 0) {
    return absl::DataLossError(
        absl::StrCat("archive '", path_, "' is truncated at byte ", offset_, "; fetch it again"));
  }
  hash_.Update(buffer_.data(), n);
  buffer_pos_ = 0;
  buffer_end_ = n;
  return absl::OkStatus();
}

absl::Status TarReader::ReadExact(char* out, size_t size) {
  while (size > 0) {
    if (buffer_pos_ == buffer_end_) DROVER_RETURN_IF_ERROR(Refill());
    size_t n = std::min(size, buffer_end_ - buffer_pos_);
    if (out != nullptr) {
      std::memcpy(out, buffer_.data() + buffer_pos_, n);
      out += n;
    }
    buffer_pos_ += n;
    offset_ += n;
    size -= n;
  }
  return absl::OkStatus();
}

absl::Status TarReader::Skip(uint64_t size) {
  while (size > 0) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(size, buffer_.size()));
    DROVER_RETURN_IF_ERROR(ReadExact(nullptr, n));
    size -= n;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> TarReader::ReadSmallData(uint64_t size, absl::string_view what,
                                                     uint64_t header_offset) {
  if (size > kMaxExtendedHeader) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "archive %s at byte %d is %d bytes (limit %d); the archive is corrupt or hostile", what,
        header_offset, size, kMaxExtendedHeader));
  }
  std::string data(static_cast<size_t>(size), '\0');
  DROVER_RETURN_IF_ERROR(ReadExact(data.data(), data.size()));
  DROVER_RETURN_IF_ERROR(Skip((tar::kBlockSize - size % tar::kBlockSize) % tar::kBlockSize));
  return data;
}

absl::StatusOr<std::optional<TarEntry>> TarReader::Next() {
  if (at_end_) return std::nullopt;
  DROVER_RETURN_IF_ERROR(Skip(data_left_ + padding_left_));
  data_left_ = 0;
  padding_left_ = 0;

  PaxValues pax;
  std::optional<std::string> gnu_long_name;
  std::optional<std::string> gnu_long_link;
  std::optional<uint64_t> first_header;
  char block[tar::kBlockSize];
  while (true) {
    uint64_t header_offset = offset_;
    if (!first_header.has_value()) first_header = header_offset;
    absl::Status read = ReadExact(block, sizeof(block));
    if (absl::IsDataLoss(read)) {
      return absl::DataLossError(
          absl::StrCat("archive '", path_, "' ends at byte ", offset_,
                       " without an end-of-archive marker; it is truncated: fetch it again"));
    }
    DROVER_RETURN_IF_ERROR(read);
    if (std::all_of(block, block + sizeof(block), [](char c) { return c == '\0'; })) {
      if (pax.path || pax.linkpath || gnu_long_name || gnu_long_link) {
        return absl::InvalidArgumentError(
            absl::StrCat("archive is corrupt: extended header at byte ", *first_header,
                         " is followed by the end of the archive"));
      }
      at_end_ = true;
      return std::nullopt;
    }
    if (!ChecksumMatches(block)) {
      if (header_offset == 0 && static_cast<unsigned char>(block[0]) == 0x1f &&
          static_cast<unsigned char>(block[1]) == 0x8b) {
        return absl::InvalidArgumentError(
            "archive is gzip-compressed; only uncompressed tar archives are accepted");
      }
      return absl::InvalidArgumentError(absl::StrCat(
          "archive is not a tar file or is corrupt: bad header checksum at byte ", header_offset));
    }
    std::optional<uint64_t> header_size = FieldNumber(block, tar::kSize);
    std::optional<uint64_t> mode = FieldNumber(block, tar::kMode);
    if (!header_size.has_value() || !mode.has_value() || *header_size >> 62) {
      return absl::InvalidArgumentError(absl::StrCat(
          "archive is corrupt: bad size or mode field in the header at byte ", header_offset));
    }
    char type = block[tar::kTypeflag.offset];
    switch (type) {
      case tar::kPaxExtended:
      case tar::kPaxGlobal: {
        DROVER_ASSIGN_OR_RETURN(std::string data,
                                ReadSmallData(*header_size, "pax header", header_offset));
        if (type == tar::kPaxExtended) {
          DROVER_RETURN_IF_ERROR(ParsePax(data, header_offset, &pax));
        } else {
          PaxValues ignored;
          DROVER_RETURN_IF_ERROR(ParsePax(data, header_offset, &ignored));
        }
        continue;
      }
      case tar::kGnuLongName:
      case tar::kGnuLongLink: {
        DROVER_ASSIGN_OR_RETURN(std::string data,
                                ReadSmallData(*header_size, "GNU long name", header_offset));
        while (!data.empty() && data.back() == '\0') data.pop_back();
        if (data.find('\0') != std::string::npos) {
          return absl::InvalidArgumentError(
              absl::StrCat("archive entry at byte ", header_offset,
                           ": long name contains a NUL byte; such names cannot be extracted"));
        }
        (type == tar::kGnuLongName ? gnu_long_name : gnu_long_link) = std::move(data);
        continue;
      }
      case tar::kGnuSparse:
        return absl::InvalidArgumentError(
            absl::StrCat("archive holds a GNU sparse file (header at byte ", header_offset,
                         "); sparse files are not supported: archive without --sparse"));
      case 'M':
      case 'N':
        return absl::InvalidArgumentError(
            absl::StrCat("archive uses an unsupported GNU extension (type '", std::string(1, type),
                         "' at byte ", header_offset, ")"));
      case 'V':  // GNU volume label: not an entry
        DROVER_RETURN_IF_ERROR(
            Skip((*header_size + tar::kBlockSize - 1) / tar::kBlockSize * tar::kBlockSize));
        continue;
      default:
        break;
    }

    TarEntry entry;
    entry.header_offset = *first_header;
    entry.mode = static_cast<uint32_t>(*mode & 07777);
    bool posix = FieldBytes(block, tar::kMagic) == absl::string_view("ustar\0", 6);
    if (pax.path.has_value()) {
      entry.path = *pax.path;
    } else if (gnu_long_name.has_value()) {
      entry.path = *gnu_long_name;
    } else {
      entry.path = FieldString(block, tar::kName);
      // Only POSIX ustar has a prefix field; GNU's format keeps other data there.
      std::string prefix = posix ? FieldString(block, tar::kPrefix) : "";
      if (!prefix.empty()) entry.path = absl::StrCat(prefix, "/", entry.path);
    }
    if (pax.linkpath.has_value()) {
      entry.linkname = *pax.linkpath;
    } else if (gnu_long_link.has_value()) {
      entry.linkname = *gnu_long_link;
    } else {
      entry.linkname = FieldString(block, tar::kLinkname);
    }
    uint64_t size = pax.size.value_or(*header_size);
    switch (type) {
      case tar::kRegularOld:
        // v7 archives mark folders by a trailing '/' only.
        entry.type =
            !entry.path.empty() && entry.path.back() == '/' ? tar::kDirectory : tar::kRegular;
        break;
      case tar::kContiguous:
        entry.type = tar::kRegular;
        break;
      case 'D':  // GNU dumpdir: a folder followed by a listing we do not need
        entry.type = tar::kDirectory;
        break;
      default:
        entry.type = type;
    }
    // POSIX: links, folders and device nodes have no data blocks whatever `size` says.
    bool has_data = !(type == tar::kHardLink || type == tar::kSymlink || type == tar::kDirectory ||
                      type == tar::kCharDevice || type == tar::kBlockDevice || type == tar::kFifo);
    if (entry.type == tar::kDirectory && type != 'D') has_data = false;
    data_left_ = has_data ? size : 0;
    padding_left_ = (tar::kBlockSize - data_left_ % tar::kBlockSize) % tar::kBlockSize;
    entry.size = entry.type == tar::kRegular ? data_left_ : 0;
    return entry;
  }
}

absl::Status TarReader::ReadData(const std::function<absl::Status(absl::string_view)>& sink) {
  while (data_left_ > 0) {
    if (buffer_pos_ == buffer_end_) DROVER_RETURN_IF_ERROR(Refill());
    size_t n = static_cast<size_t>(std::min<uint64_t>(data_left_, buffer_end_ - buffer_pos_));
    absl::string_view piece(buffer_.data() + buffer_pos_, n);
    buffer_pos_ += n;
    offset_ += n;
    data_left_ -= n;
    DROVER_RETURN_IF_ERROR(sink(piece));
  }
  DROVER_RETURN_IF_ERROR(Skip(padding_left_));
  padding_left_ = 0;
  return absl::OkStatus();
}

absl::StatusOr<std::string> TarReader::DrainAndDigest() {
  buffer_pos_ = buffer_end_ = 0;
  while (true) {
    DROVER_ASSIGN_OR_RETURN(size_t n, source_->Read(buffer_.data(), buffer_.size()));
    if (n == 0) break;
    hash_.Update(buffer_.data(), n);
  }
  return hash_.Finish();
}

}  // namespace drover::archive
