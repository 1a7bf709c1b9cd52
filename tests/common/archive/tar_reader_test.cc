// TarReader fed from a ByteSource (a download stream) rather than a file: every entry and
// byte read the same whatever the pieces the stream arrives in, and the source's own
// errors reach the caller unchanged.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/archive/sha256.h"
#include "common/archive/tar_reader.h"
#include "gtest/gtest.h"
#include "tests/common/archive/archive_test_util.h"
#include "tests/testing/fake_byte_source.h"

namespace drover::archive {
namespace {

using testing::RawTar;

std::string Archive() {
  return RawTar()
      .Dir("./sub/")
      .File("./x.bin", std::string(5000, '\x7f') + std::string("\0\1\2", 3))
      .File("./sub/y.txt", "hello\n")
      .Symlink("./link", "x.bin")
      .Finish();
}

struct Read {
  std::vector<std::string> names;
  std::vector<std::string> data;
  std::string digest;
};

absl::StatusOr<Read> ReadAll(std::unique_ptr<TarReader> reader) {
  Read read;
  while (true) {
    absl::StatusOr<std::optional<TarEntry>> entry = reader->Next();
    if (!entry.ok()) return entry.status();
    if (!entry->has_value()) break;
    read.names.push_back(absl::StrCat(std::string(1, (*entry)->type), " ", (*entry)->path));
    std::string data;
    absl::Status status = reader->ReadData([&](absl::string_view piece) {
      data.append(piece.data(), piece.size());
      return absl::OkStatus();
    });
    if (!status.ok()) return status;
    read.data.push_back(data);
  }
  absl::StatusOr<std::string> digest = reader->DrainAndDigest();
  if (!digest.ok()) return digest.status();
  read.digest = *digest;
  return read;
}

TEST(TarReaderSourceTest, ReadsTheSameEntriesWhateverPiecesTheStreamArrivesIn) {
  const std::string archive = Archive();
  for (size_t piece : {size_t{1}, size_t{7}, size_t{511}, size_t{512}, size_t{4096},
                       archive.size()}) {
    SCOPED_TRACE(absl::StrCat("piece ", piece));
    absl::StatusOr<Read> read = ReadAll(TarReader::FromSource(
        std::make_unique<drover::testing::FakeByteSource>(archive, piece), "download"));
    ASSERT_TRUE(read.ok()) << read.status();
    EXPECT_EQ(read->names, (std::vector<std::string>{"5 ./sub/", "0 ./x.bin", "0 ./sub/y.txt",
                                                     "2 ./link"}));
    EXPECT_EQ(read->data[1], std::string(5000, '\x7f') + std::string("\0\1\2", 3));
    EXPECT_EQ(read->data[2], "hello\n");
    EXPECT_EQ(read->digest, Sha256Digest(archive));
  }
}

TEST(TarReaderSourceTest, PassesTheSourcesErrorOnUnchanged) {
  const std::string archive = Archive();
  auto source = std::make_unique<drover::testing::FakeByteSource>(archive, 100);
  source->FailAt(2000, absl::PermissionDeniedError("job 'j-1' is not yours"));
  absl::StatusOr<Read> read = ReadAll(TarReader::FromSource(std::move(source), "download"));
  EXPECT_EQ(read.status(), absl::PermissionDeniedError("job 'j-1' is not yours"));
}

TEST(TarReaderSourceTest, AStreamThatEndsEarlyIsDataLossNamingTheArchive) {
  const std::string archive = Archive();
  absl::StatusOr<Read> read = ReadAll(TarReader::FromSource(
      std::make_unique<drover::testing::FakeByteSource>(archive.substr(0, 1500), 64),
      "outputs of j-1"));
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(read.status().message().find("outputs of j-1"), std::string::npos)
      << read.status();
}

}  // namespace
}  // namespace drover::archive
