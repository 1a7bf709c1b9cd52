#include "common/archive/sha256.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/archive/archive_test_util.h"

namespace drover::archive {
namespace {

using testing::ScratchDir;
using testing::WriteFile;

// FIPS 180-2 test vectors.
TEST(Sha256Test, MatchesKnownVectors) {
  EXPECT_EQ(Sha256Digest(""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Digest("abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Digest("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "sha256:248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(Sha256Digest(std::string(1000000, 'a')),
            "sha256:cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256Test, StreamingInPiecesEqualsOneShot) {
  std::string data;
  for (int i = 0; i < 100000; ++i) data.push_back(static_cast<char>(i * 7));
  Sha256 hash;
  for (size_t i = 0; i < data.size(); i += 997) hash.Update(data.substr(i, 997));
  EXPECT_EQ(hash.Finish(), Sha256Digest(data));
  // After Finish the object starts over.
  hash.Update("abc");
  EXPECT_EQ(hash.Finish(), Sha256Digest("abc"));
}

TEST(Sha256Test, HashesFilesAndNamesMissingOnes) {
  ScratchDir dir;
  std::string contents(3 << 20, 'x');  // larger than one read
  WriteFile(dir / "f", contents);
  absl::StatusOr<std::string> digest = Sha256File(dir / "f");
  ASSERT_TRUE(digest.ok()) << digest.status();
  EXPECT_EQ(*digest, Sha256Digest(contents));

  absl::StatusOr<std::string> missing = Sha256File(dir / "missing");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), ::testing::HasSubstr("missing"));
}

TEST(Sha256Test, ValidatesDigestSpelling) {
  EXPECT_TRUE(IsValidDigest(Sha256Digest("abc")));
  EXPECT_FALSE(IsValidDigest(""));
  EXPECT_FALSE(IsValidDigest("sha256:"));
  EXPECT_FALSE(IsValidDigest("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
  EXPECT_FALSE(
      IsValidDigest("sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"));
  EXPECT_FALSE(
      IsValidDigest("sha512:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
  EXPECT_FALSE(
      IsValidDigest("sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a"));
  EXPECT_FALSE(
      IsValidDigest("sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015adz"));
  EXPECT_FALSE(
      IsValidDigest("sha256:ga7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
}

}  // namespace
}  // namespace drover::archive
