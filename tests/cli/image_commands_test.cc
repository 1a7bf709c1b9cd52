// `drover image import|list|delete` against FakeDroverClient, with oci-archives built in the
// test, and the pure parts of cli/image_commands.h.
#include "cli/image_commands.h"

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/archive/sha256.h"
#include "common/archive/snapshot.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cli/cli_fixture.h"

namespace drover::cli {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::MatchesRegex;
using ::testing::StartsWith;

// A tar of a folder holding `files` (name -> content), as `tar -C DIR -cf FILE .` makes it.
std::string MakeTar(const std::string& name, const std::map<std::string, std::string>& files) {
  std::string dir =
      absl::StrCat(::testing::TempDir(), "/image_test_",
                   ::testing::UnitTest::GetInstance()->current_test_info()->name(), "_", name);
  fs::remove_all(dir);
  for (const auto& [path, content] : files) {
    fs::create_directories(fs::path(dir + "/" + path).parent_path());
    std::ofstream(dir + "/" + path) << content;
  }
  auto tar = archive::BuildSnapshot(dir, {.output_path = dir + ".tar", .use_ignore_files = false});
  EXPECT_TRUE(tar.ok()) << tar.status();
  return tar->tar_path;
}

std::string MakeOciArchive(const std::string& name, const std::string& variant = "") {
  return MakeTar(name, {{"oci-layout", R"({"imageLayoutVersion":"1.0.0"})"},
                        {"index.json", R"({"schemaVersion":2,"manifests":[]})"},
                        {"blobs/sha256/" + std::string(64, 'a'), "layer" + variant}});
}

TEST_F(CliTest, ImageImportUploadsTheArchiveOnceAndRegistersTheName) {
  std::string file = MakeOciArchive("img");
  ASSERT_EQ(Run({"image", "import", "team/train:1.0", file}), 0) << err();
  ASSERT_EQ(server_.images.size(), 1u);
  const v1::Image& image = server_.images[0];
  EXPECT_EQ(image.name(), "team/train:1.0");
  EXPECT_THAT(image.digest(), MatchesRegex("sha256:[0-9a-f]{64}"));
  EXPECT_EQ(out(), absl::StrCat("team/train:1.0 IMPORTED ", image.digest(), " (",
                                archive::FormatBytes(fs::file_size(file)), ")\n"));
  EXPECT_EQ(err(), absl::StrCat("uploading image archive ", image.digest(), " (",
                                archive::FormatBytes(fs::file_size(file)), ") to droverd\n"));
  ASSERT_EQ(server_.uploads.size(), 1u);
  EXPECT_EQ(server_.uploads[0].header.digest(), image.digest());
  EXPECT_EQ(server_.blobs.at(image.digest()).size(), fs::file_size(file));

  // The same archive again: nothing uploaded, nothing changed.
  ASSERT_EQ(Run({"image", "import", "team/train:1.0", file}), 0) << err();
  EXPECT_EQ(out(), absl::StrCat("team/train:1.0 UNCHANGED ", image.digest(), " (",
                                archive::FormatBytes(fs::file_size(file)), ")\n"));
  EXPECT_THAT(err(), HasSubstr("already on droverd; nothing to upload"));
  EXPECT_EQ(server_.uploads.size(), 1u);
}

TEST_F(CliTest, ImageImportRefusesToRebindANameWithoutReplace) {
  std::string first = MakeOciArchive("one", "1");
  std::string second = MakeOciArchive("two", "2");
  ASSERT_EQ(Run({"image", "import", "busybox", first}), 0) << err();
  std::string old_digest = server_.images[0].digest();
  EXPECT_EQ(Run({"image", "import", "busybox", second}), 5);
  ExpectOneErrorLine(
      absl::StrCat("image 'busybox' already names archive ", old_digest.substr(0, 19), "..."));
  EXPECT_THAT(err(), HasSubstr("pass --replace"));
  EXPECT_EQ(server_.images[0].digest(), old_digest);
  ASSERT_EQ(Run({"image", "import", "busybox", second, "--replace"}), 0) << err();
  EXPECT_THAT(out(), StartsWith("busybox REPLACED sha256:"));
  EXPECT_NE(server_.images[0].digest(), old_digest);
}

TEST_F(CliTest, ImageImportChecksNameAndFileBeforeContactingDroverd) {
  std::string good = MakeOciArchive("good");
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {{"image", "import", "busybox"},
            "missing NAME or FILE; usage: drover image import NAME FILE"},
           {{"image", "import", "Busybox", good},
            "NAME: 'Busybox' has the path component 'Busybox'"},
           {{"image", "import", "host", good}, "NAME: 'host' is reserved"},
           {{"image", "import", "docker://busybox", good}, "jobs use 'docker://...' references directly"},
           {{"image", "import", "busybox", "/no/such/file.tar"},
            "'/no/such/file.tar': no such file"},
           {{"image", "import", "busybox", MakeTar("code", {{"train.py", "print(1)"}})},
            "is a tar but not an OCI image layout (no oci-layout file at its root)"},
           {{"image", "import", "busybox", WriteTempFile("gz", std::string(2000, '\x1f'))},
            "is not an OCI archive"},
       }) {
    EXPECT_EQ(Run(c.args), 2) << c.args.back();
    ExpectOneErrorLine(c.message);
  }
  EXPECT_THAT(server_.connects, IsEmpty());
}

TEST_F(CliTest, ImageImportReportsDroverdRefusingTheName) {
  std::string file = MakeOciArchive("img");
  server_.errors.push_back(absl::OkStatus());  // ListImages
  server_.errors.push_back(absl::OkStatus());  // StatBlob
  server_.errors.push_back(absl::OkStatus());  // UploadBlob
  server_.errors.push_back(absl::InvalidArgumentError("image.name: 'x' is odd"));
  EXPECT_EQ(Run({"image", "import", "x", file}), 3);
  EXPECT_THAT(err(), HasSubstr("uploading image archive"));
  EXPECT_THAT(err(), ::testing::EndsWith("\ndrover: image.name: 'x' is odd\n"));
}

TEST_F(CliTest, ImageListPrintsATableOrJson) {
  ASSERT_EQ(Run({"image", "list"}), 0) << err();
  EXPECT_EQ(out(), "NAME  DIGEST  SIZE  IMPORTED\n");
  v1::Image& image = server_.images.emplace_back();
  image.set_name("busybox");
  image.set_digest("sha256:" + std::string(64, 'c'));
  image.set_size(1536);
  image.mutable_create_time()->set_seconds(1'000'100 - 7200);
  ASSERT_EQ(Run({"image", "list"}), 0) << err();
  EXPECT_EQ(out(),
            "NAME     DIGEST               SIZE     IMPORTED\n"
            "busybox  sha256:cccccccccccc  1.5 KiB  2h ago\n");
  ASSERT_EQ(Run({"image", "list", "-o", "json"}), 0) << err();
  EXPECT_THAT(out(), StartsWith("[\n{\"name\":\"busybox\",\"digest\":\"sha256:ccc"));
}

TEST_F(CliTest, ImageDeleteRemovesTheNameAndUnknownNamesExit4) {
  server_.images.emplace_back().set_name("busybox");
  ASSERT_EQ(Run({"image", "delete", "busybox"}), 0) << err();
  EXPECT_EQ(out(), "busybox DELETED\n");
  EXPECT_THAT(server_.images, IsEmpty());
  EXPECT_EQ(Run({"image", "delete", "busybox"}), 4);
  ExpectOneErrorLine("image 'busybox' is not registered");
  EXPECT_EQ(Run({"image", "frobnicate"}), 2);
  ExpectOneErrorLine("unknown action 'frobnicate' for drover image; use import, list or delete");
}

TEST(ImageCommandsTest, CheckImageNameFollowsDroverdsRules) {
  for (const char* name :
       {"busybox", "team/train:1.0", "registry.example.com/ml/pytorch:2.1.0", "a", "x:Latest_1"}) {
    EXPECT_TRUE(CheckImageName(name).ok()) << name;
  }
  for (const std::string& name :
       std::vector<std::string>{"", "host", "docker://x", "X", "a//b", "a:", "a:-x", "-a", "a-",
                                "a b", "a@sha256", std::string(256, 'a')}) {
    absl::Status status = CheckImageName(name);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_THAT(std::string(status.message()), StartsWith("NAME: ")) << name;
  }
}

TEST(ImageCommandsTest, CheckOciArchiveGivesTheDigestOfTheWholeFile) {
  std::string file = MakeOciArchive("digest");
  absl::StatusOr<OciArchive> archive = CheckOciArchive(file);
  ASSERT_TRUE(archive.ok()) << archive.status();
  EXPECT_EQ(archive->digest, archive::Sha256File(file).value());
  EXPECT_EQ(archive->size, static_cast<int64_t>(fs::file_size(file)));
}

}  // namespace
}  // namespace drover::cli
