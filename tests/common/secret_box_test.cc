// SecretBox: sealing round trips, and every way a sealed value or a key file can be wrong.
#include "common/pki/secret_box.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"

namespace drover {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

SecretBox Box(char fill) { return *SecretBox::FromKey(std::string(32, fill)); }

TEST(SecretBoxTest, SealsWithAFreshNonceAndOpensInItsContext) {
  SecretBox box = Box('a');
  std::string one = box.Seal("s3cr3t", "datastore s3 option secret_access_key");
  std::string two = box.Seal("s3cr3t", "datastore s3 option secret_access_key");
  EXPECT_TRUE(SecretBox::IsSealed(one));
  EXPECT_FALSE(SecretBox::IsSealed("s3cr3t"));
  EXPECT_THAT(one, Not(HasSubstr("s3cr3t")));
  EXPECT_NE(one, two) << "each seal has its own nonce";
  EXPECT_EQ(*box.Open(one, "datastore s3 option secret_access_key"), "s3cr3t");
  EXPECT_EQ(*box.Open(two, "datastore s3 option secret_access_key"), "s3cr3t");
  EXPECT_EQ(*box.Open(box.Seal("", "empty"), "empty"), "");
  std::string big(100000, 'x');
  EXPECT_EQ(*box.Open(box.Seal(big, "big"), "big"), big);
}

TEST(SecretBoxTest, AValueMovedChangedOrSealedUnderAnotherKeyDoesNotOpen) {
  SecretBox box = Box('a');
  std::string sealed = box.Seal("s3cr3t", "job env API_TOKEN");
  // Moved to another field.
  EXPECT_EQ(box.Open(sealed, "job env OTHER").status().code(), absl::StatusCode::kDataLoss);
  // One byte changed: of the nonce, of the ciphertext, of the tag.
  const std::string head = sealed.substr(0, sealed.rfind(':') + 1);
  std::string raw;
  ASSERT_TRUE(absl::Base64Unescape(sealed.substr(head.size()), &raw));
  for (size_t at : {size_t{0}, size_t{14}, raw.size() - 1}) {
    std::string changed = raw;
    changed[at] = static_cast<char>(changed[at] ^ 0x01);
    EXPECT_EQ(box.Open(head + absl::Base64Escape(changed), "job env API_TOKEN").status().code(),
              absl::StatusCode::kDataLoss)
        << "byte " << at;
  }
  // Cut short, not base64, not sealed at all.
  EXPECT_EQ(box.Open(sealed.substr(0, sealed.rfind(':') + 4), "job env API_TOKEN").status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(box.Open(sealed.substr(0, sealed.rfind(':') + 1) + "!!!", "job env API_TOKEN")
                .status()
                .code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(box.Open("s3cr3t", "job env API_TOKEN").status().code(), absl::StatusCode::kDataLoss);
  // Another key: refused by name, not as damage.
  SecretBox other = Box('b');
  absl::StatusOr<std::string> opened = other.Open(sealed, "job env API_TOKEN");
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(opened.status().message()), HasSubstr(box.key_id()));
  EXPECT_THAT(std::string(opened.status().message()), HasSubstr(other.key_id()));
  EXPECT_THAT(std::string(opened.status().message()), HasSubstr("--secrets-key"));
}

TEST(SecretBoxTest, LoadOrCreateMakesAPrivateKeyOnceAndReadsItAgain) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/secrets.key";
  absl::StatusOr<SecretBox> made = SecretBox::LoadOrCreate(path);
  ASSERT_TRUE(made.ok()) << made.status();
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::string sealed = made->Seal("v", "c");
  absl::StatusOr<SecretBox> again = SecretBox::LoadOrCreate(path);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->key_id(), made->key_id());
  EXPECT_EQ(*again->Open(sealed, "c"), "v");
  // An administrator's link to the key is followed.
  const std::string link = dir.path() + "/link.key";
  std::filesystem::create_symlink(path, link);
  EXPECT_EQ(SecretBox::LoadOrCreate(link)->key_id(), made->key_id());
}

TEST(SecretBoxTest, KeyFilesOthersMayReadMalformedOrNotRegularAreRefused) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/secrets.key";
  ASSERT_TRUE(SecretBox::LoadOrCreate(path).ok());
  ASSERT_EQ(chmod(path.c_str(), 0640), 0);
  absl::StatusOr<SecretBox> shared = SecretBox::LoadOrCreate(path);
  EXPECT_EQ(shared.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(shared.status().message()), HasSubstr("mode 0640"));
  EXPECT_THAT(std::string(shared.status().message()), HasSubstr("chmod 600"));

  const std::string bad = dir.path() + "/bad.key";
  for (const std::string& text : {std::string("not hex at all\n"), std::string(62, 'a') + "\n",
                                  std::string(64, 'g') + "\n", std::string(1 << 20, 'a')}) {
    std::ofstream(bad, std::ios::trunc) << text;
    ASSERT_EQ(chmod(bad.c_str(), 0600), 0);
    absl::StatusOr<SecretBox> loaded = SecretBox::LoadOrCreate(bad);
    EXPECT_FALSE(loaded.ok()) << text.substr(0, 20);
  }

  const std::string fifo = dir.path() + "/fifo.key";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  absl::StatusOr<SecretBox> from_fifo = SecretBox::LoadOrCreate(fifo);
  EXPECT_EQ(from_fifo.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(from_fifo.status().message()), HasSubstr("not a regular file"));

  EXPECT_EQ(SecretBox::LoadOrCreate(dir.path() + "/missing-folder/secrets.key").status().code(),
            absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace drover
