#include "common/archive/tar_writer.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/archive/tar_format.h"
#include "common/status_macros.h"

namespace drover::archive {
namespace {

constexpr size_t kBufferSize = 1 << 20;
// The name every PAX extended header carries. Fixed (GNU tar puts its pid there) so that
// archives do not depend on the writing process.
constexpr absl::string_view kPaxHeaderName = "././@PaxHeader";

void PutString(char* block, tar::Field field, absl::string_view value) {
  std::memcpy(block + field.offset, value.data(), std::min(field.size, value.size()));
}

// Zero-padded octal, `field.size - 1` digits and a NUL, as GNU tar writes them.
void PutOctal(char* block, tar::Field field, uint64_t value) {
  std::string digits = absl::StrFormat("%0*o", static_cast<int>(field.size - 1), value);
  PutString(block, field, digits);
}

// One "LENGTH key=value\n" record, where LENGTH counts the whole record, itself included.
std::string PaxRecord(absl::string_view key, absl::string_view value) {
  size_t rest = key.size() + value.size() + 3;  // ' ', '=', '\n'
  size_t length = rest + 1;
  while (absl::StrCat(length).size() + rest != length) length = absl::StrCat(length).size() + rest;
  return absl::StrCat(length, " ", key, "=", value, "\n");
}

}  // namespace

absl::StatusOr<std::unique_ptr<TarWriter>> TarWriter::Create(const std::string& path) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot create archive '", path, "'"));
  }
  return std::unique_ptr<TarWriter>(new TarWriter(fd, path));
}

TarWriter::TarWriter(int fd, std::string path)
    : fd_(fd), path_(std::move(path)), buffer_(kBufferSize) {}

TarWriter::~TarWriter() {
  if (fd_ >= 0) close(fd_);
}

absl::Status TarWriter::Flush() {
  size_t done = 0;
  while (done < buffered_) {
    ssize_t n = write(fd_, buffer_.data() + done, buffered_ - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      failed_ = true;
      return absl::ErrnoToStatus(errno, absl::StrCat("cannot write archive '", path_, "'"));
    }
    done += static_cast<size_t>(n);
  }
  buffered_ = 0;
  return absl::OkStatus();
}

absl::Status TarWriter::Append(const void* data, size_t size) {
  if (failed_) return absl::FailedPreconditionError("archive writer failed earlier");
  const char* bytes = static_cast<const char*>(data);
  hash_.Update(bytes, size);
  bytes_written_ += size;
  while (size > 0) {
    size_t n = std::min(size, buffer_.size() - buffered_);
    std::memcpy(buffer_.data() + buffered_, bytes, n);
    buffered_ += n;
    bytes += n;
    size -= n;
    if (buffered_ == buffer_.size()) DROVER_RETURN_IF_ERROR(Flush());
  }
  return absl::OkStatus();
}

absl::Status TarWriter::Pad(uint64_t size) {
  static const char kZeros[tar::kBlockSize] = {};
  size_t rest = static_cast<size_t>(size % tar::kBlockSize);
  if (rest == 0) return absl::OkStatus();
  return Append(kZeros, tar::kBlockSize - rest);
}

absl::Status TarWriter::WriteHeader(absl::string_view path, char typeflag, uint32_t mode,
                                    uint64_t size, absl::string_view linkname) {
  std::string name(path);
  if (typeflag == tar::kDirectory) name.push_back('/');

  std::string pax;
  if (name.size() > tar::kName.size) pax += PaxRecord("path", name);
  if (linkname.size() > tar::kLinkname.size) pax += PaxRecord("linkpath", linkname);
  if (size > tar::kMaxOctal11) pax += PaxRecord("size", absl::StrCat(size));
  if (!pax.empty()) {
    DROVER_RETURN_IF_ERROR(WriteHeader(kPaxHeaderName, tar::kPaxExtended, 0644, pax.size(), ""));
    DROVER_RETURN_IF_ERROR(Append(pax.data(), pax.size()));
    DROVER_RETURN_IF_ERROR(Pad(pax.size()));
  }

  char block[tar::kBlockSize] = {};
  PutString(block, tar::kName, name);  // truncated when the PAX path holds the real one
  PutOctal(block, tar::kMode, mode & 07777);
  PutOctal(block, tar::kUid, 0);
  PutOctal(block, tar::kGid, 0);
  PutOctal(block, tar::kSize, size > tar::kMaxOctal11 ? 0 : size);
  PutOctal(block, tar::kMtime, 0);
  block[tar::kTypeflag.offset] = typeflag;
  PutString(block, tar::kLinkname, linkname);
  PutString(block, tar::kMagic, absl::string_view("ustar\0", 6));
  PutString(block, tar::kVersion, "00");
  PutOctal(block, tar::kDevMajor, 0);
  PutOctal(block, tar::kDevMinor, 0);
  // The checksum is computed with its own field read as eight spaces.
  std::memset(block + tar::kChecksum.offset, ' ', tar::kChecksum.size);
  unsigned int sum = 0;
  for (unsigned char c : block) sum += c;
  std::string checksum = absl::StrFormat("%06o", sum);
  std::memcpy(block + tar::kChecksum.offset, checksum.data(), 6);
  block[tar::kChecksum.offset + 6] = '\0';
  block[tar::kChecksum.offset + 7] = ' ';
  return Append(block, sizeof(block));
}

absl::Status TarWriter::AddDirectory(absl::string_view path, uint32_t mode) {
  return WriteHeader(path, tar::kDirectory, mode, 0, "");
}

absl::Status TarWriter::AddSymlink(absl::string_view path, absl::string_view target) {
  return WriteHeader(path, tar::kSymlink, 0777, 0, target);
}

absl::Status TarWriter::AddFileContents(absl::string_view path, uint32_t mode,
                                        absl::string_view contents) {
  DROVER_RETURN_IF_ERROR(WriteHeader(path, tar::kRegular, mode, contents.size(), ""));
  DROVER_RETURN_IF_ERROR(Append(contents.data(), contents.size()));
  return Pad(contents.size());
}

absl::Status TarWriter::AddFile(absl::string_view path, uint32_t mode, uint64_t size, int fd) {
  DROVER_RETURN_IF_ERROR(WriteHeader(path, tar::kRegular, mode, size, ""));
  uint64_t left = size;
  while (left > 0) {
    // Read straight into the write buffer's free space to avoid a copy.
    if (buffered_ == buffer_.size()) DROVER_RETURN_IF_ERROR(Flush());
    size_t want = static_cast<size_t>(std::min<uint64_t>(left, buffer_.size() - buffered_));
    ssize_t n = read(fd, buffer_.data() + buffered_, want);
    if (n < 0) {
      if (errno == EINTR) continue;
      failed_ = true;
      return absl::ErrnoToStatus(errno, absl::StrCat("cannot read '", path, "'"));
    }
    if (n == 0) {
      failed_ = true;
      return absl::AbortedError(absl::StrCat(
          "'", path, "' shrank while it was being archived; retry when nothing writes to it"));
    }
    hash_.Update(buffer_.data() + buffered_, static_cast<size_t>(n));
    buffered_ += static_cast<size_t>(n);
    bytes_written_ += static_cast<uint64_t>(n);
    left -= static_cast<uint64_t>(n);
  }
  return Pad(size);
}

absl::StatusOr<std::string> TarWriter::Finish() {
  static const char kZeros[2 * tar::kBlockSize] = {};
  DROVER_RETURN_IF_ERROR(Append(kZeros, sizeof(kZeros)));
  DROVER_RETURN_IF_ERROR(Flush());
  int fd = fd_;
  fd_ = -1;
  if (close(fd) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot write archive '", path_, "'"));
  }
  return hash_.Finish();
}

}  // namespace drover::archive
