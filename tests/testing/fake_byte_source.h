// FakeByteSource: an archive::ByteSource over a string, for tests of what reads a stream
// (TarReader fed by a download). It hands out at most `piece` bytes per Read, so that
// readers meet every split a network stream can make, and can fail at a chosen offset the
// way a broken or refused download does. One thread at a time.
#ifndef DROVER_TESTS_TESTING_FAKE_BYTE_SOURCE_H_
#define DROVER_TESTS_TESTING_FAKE_BYTE_SOURCE_H_

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/archive/tar_reader.h"

namespace drover::testing {

class FakeByteSource final : public archive::ByteSource {
 public:
  FakeByteSource(std::string bytes, size_t piece) : bytes_(std::move(bytes)), piece_(piece) {}

  // From the first Read that would pass byte `offset`, Read returns `error`.
  void FailAt(size_t offset, absl::Status error) {
    fail_at_ = offset;
    error_ = std::move(error);
  }

  absl::StatusOr<size_t> Read(char* out, size_t size) override {
    size_t n = std::min({size, piece_, bytes_.size() - pos_});
    if (!error_.ok() && pos_ + n > fail_at_) return error_;
    std::memcpy(out, bytes_.data() + pos_, n);
    pos_ += n;
    return n;
  }

  size_t position() const { return pos_; }

 private:
  std::string bytes_;
  size_t piece_;
  size_t pos_ = 0;
  size_t fail_at_ = 0;
  absl::Status error_;
};

}  // namespace drover::testing

#endif  // DROVER_TESTS_TESTING_FAKE_BYTE_SOURCE_H_
