// ImageCache's logic with a fake umoci and skopeo (FakeTools) and archives built in the test:
// what it picks from index.json, that it unpacks once per digest however many attempts ask
// at once, what it keeps on disk, and the errors users see. The real umoci runs in
// tests/e2e/image_e2e_test.cc. ProcessRunner is tested with real processes.
#include "agent/images/image_cache.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/archive/snapshot.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"

namespace drover::agent {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kManifest[] =
    "sha256:1111111111111111111111111111111111111111111111111111111111111111";
constexpr char kConfig[] =
    "sha256:2222222222222222222222222222222222222222222222222222222222222222";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

void WriteFile(const std::string& path, const std::string& content) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << content;
}

std::string Index(const std::string& annotations = "") {
  return absl::StrCat(R"({"schemaVersion":2,"manifests":[{"mediaType":)",
                      R"("application/vnd.oci.image.manifest.v1+json","digest":")", kManifest,
                      R"(","size":349)", annotations, "}]}");
}

// Writes an OCI layout (index, manifest, config; no layers: the fake umoci needs none).
void WriteLayout(const std::string& dir, const std::string& index = Index()) {
  WriteFile(dir + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
  WriteFile(dir + "/index.json", index);
  WriteFile(absl::StrCat(dir, "/blobs/sha256/", std::string(kManifest).substr(7)),
            absl::StrCat(R"({"schemaVersion":2,"config":{"mediaType":)",
                         R"("application/vnd.oci.image.config.v1+json","digest":")", kConfig,
                         R"(","size":10},"layers":[]})"));
  WriteFile(absl::StrCat(dir, "/blobs/sha256/", std::string(kConfig).substr(7)),
            R"({"architecture":"amd64","os":"linux","config":)"
            R"({"Env":["PATH=/opt/conda/bin:/usr/bin:/bin","LANG=C.UTF-8"]}})");
}

// umoci and skopeo as the cache calls them, acting on the file system as the real ones
// would. `unpack_gate`, when set, holds every unpack until notified.
class FakeTools : public CommandRunner {
 public:
  absl::StatusOr<Result> Run(const std::vector<std::string>& argv,
                             absl::Duration timeout) override {
    {
      absl::MutexLock lock(&mu_);
      calls_.push_back(argv);
    }
    Result result;
    result.exit_code = 0;
    if (argv[0] == "umoci") {
      unpacks_++;
      if (unpack_gate != nullptr) unpack_gate->WaitForNotification();
      if (!umoci_error.empty()) {
        result.exit_code = 1;
        result.err = umoci_error;
        return result;
      }
      // `umoci raw unpack [--uid-map M --gid-map M] --image LAYOUT:TAG ROOTFS`
      auto flag = std::find(argv.begin(), argv.end(), "--image");
      if (flag == argv.end() || flag + 2 >= argv.end()) {
        return absl::FailedPreconditionError("umoci without --image");
      }
      std::string image = *(flag + 1);
      std::string layout = image.substr(0, image.rfind(':'));
      std::string index = ReadFile(layout + "/index.json");
      if (!absl::StrContains(index, absl::StrCat("\"", image.substr(image.rfind(':') + 1), "\""))) {
        result.exit_code = 1;
        result.err =
            "   \xe2\xa8\xaf tag is not found: " + image.substr(image.rfind(':') + 1) + "\n";
        return result;
      }
      WriteFile(argv.back() + "/bin/sh", "#!fake");
      return result;
    }
    if (argv[0] == "skopeo" && argv[1] == "inspect") {
      if (!skopeo_error.empty()) {
        result.exit_code = 1;
        result.err = skopeo_error;
        return result;
      }
      result.out = registry_digest + "\n";
      return result;
    }
    if (argv[0] == "skopeo") {  // skopeo --tmpdir DIR copy docker://SRC oci:LAYOUT:TAG
      copies_++;
      std::string dest = argv[5].substr(4);
      WriteLayout(dest.substr(0, dest.rfind(':')));
      return result;
    }
    return absl::FailedPreconditionError("unexpected program " + argv[0]);
  }

  std::vector<std::vector<std::string>> calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }

  std::atomic<int> unpacks_{0};
  std::atomic<int> copies_{0};
  absl::Notification* unpack_gate = nullptr;
  std::string umoci_error;
  std::string skopeo_error;
  std::string registry_digest =
      "sha256:3333333333333333333333333333333333333333333333333333333333333333";

 private:
  absl::Mutex mu_;
  std::vector<std::vector<std::string>> calls_ ABSL_GUARDED_BY(mu_);
};

class ImageCacheTest : public ::testing::Test {
 protected:
  ImageCacheTest() : root_(dir_.path() + "/work/images") {}

  // An oci-archive of a layout written by `write`: returns its digest; fetches serve it.
  std::string Archive(
      const std::string& name, const std::function<void(const std::string&)>& write =
                                   [](const std::string& d) { WriteLayout(d); }) {
    std::string layout = dir_.path() + "/src-" + name;
    write(layout);
    auto snapshot = archive::BuildSnapshot(
        layout, {.output_path = dir_.path() + "/" + name + ".tar", .use_ignore_files = false});
    EXPECT_TRUE(snapshot.ok()) << snapshot.status();
    archives_[snapshot->digest] = snapshot->tar_path;
    return snapshot->digest;
  }

  std::unique_ptr<ImageCache> NewCache(IdRange userns = {}) {
    return std::make_unique<ImageCache>(
        ImageCacheOptions{.root = root_, .userns = userns},
        [this](const std::string& digest, const std::string& path) -> absl::Status {
          fetches_++;
          auto it = archives_.find(digest);
          if (it == archives_.end()) return absl::NotFoundError("blob " + digest + " not found");
          fs::copy_file(it->second, path, fs::copy_options::overwrite_existing);
          if (corrupt_) std::ofstream(path, std::ios::app) << "x";
          return absl::OkStatus();
        },
        tools_);
  }

  // Whatever the cache folder holds besides complete images.
  std::vector<std::string> Leftovers() {
    std::vector<std::string> out;
    std::error_code error;
    for (const auto& entry : fs::directory_iterator(root_, error)) {
      std::string name = entry.path().filename().string();
      if (absl::StartsWith(name, ".")) out.push_back(name);
    }
    return out;
  }

  testing::TempDir dir_;
  std::string root_;
  FakeTools tools_;
  std::map<std::string, std::string> archives_;
  std::atomic<int> fetches_{0};
  bool corrupt_ = false;
};

TEST_F(ImageCacheTest, UnpacksAnImportedArchiveAndKeepsItsEnv) {
  std::string digest = Archive("img");
  auto cache = NewCache();
  std::vector<std::string> reasons;
  auto image = cache->Get("busybox", digest, [&](absl::string_view r) { reasons.emplace_back(r); });
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->rootfs, absl::StrCat(root_, "/", digest.substr(7), "/rootfs"));
  EXPECT_TRUE(fs::exists(image->rootfs + "/bin/sh"));
  EXPECT_THAT(image->env, ElementsAre("PATH=/opt/conda/bin:/usr/bin:/bin", "LANG=C.UTF-8"));
  EXPECT_THAT(reasons, ElementsAre("PULLING_IMAGE", "UNPACKING_IMAGE"));
  // Only the root and what was unpacked stay: no archive, no layout, no partial folder.
  EXPECT_FALSE(fs::exists(absl::StrCat(root_, "/", digest.substr(7), "/layout")));
  EXPECT_THAT(Leftovers(), ElementsAre());
  // umoci was given the image by the tag the cache wrote into its own index.json.
  ASSERT_EQ(tools_.calls().size(), 1u);
  EXPECT_EQ(tools_.calls()[0][1], "raw");
  EXPECT_TRUE(absl::EndsWith(tools_.calls()[0][4], "/layout:drover"));
}

TEST_F(ImageCacheTest, WithAUserNamespaceTheImageIsUnpackedShiftedAndCachedApart) {
  std::string digest = Archive("img");
  auto plain = NewCache()->Get("busybox", digest, nullptr);
  ASSERT_TRUE(plain.ok()) << plain.status();
  auto shifted = NewCache({.host_id = 100000, .size = 65536})->Get("busybox", digest, nullptr);
  ASSERT_TRUE(shifted.ok()) << shifted.status();
  // Another range is another copy: an image owned by one range is never run under another.
  auto other = NewCache({.host_id = 200000, .size = 65536})->Get("busybox", digest, nullptr);
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(shifted->key, digest.substr(7) + "-userns-100000-65536");
  EXPECT_EQ(shifted->rootfs, absl::StrCat(root_, "/", shifted->key, "/rootfs"));
  EXPECT_NE(plain->key, shifted->key);
  EXPECT_NE(other->key, shifted->key);
  EXPECT_EQ(tools_.unpacks_.load(), 3);
  ASSERT_EQ(tools_.calls().size(), 3u);
  EXPECT_THAT(tools_.calls()[0], ::testing::Not(::testing::Contains("--uid-map")));
  EXPECT_THAT(tools_.calls()[1], ::testing::IsSupersetOf({"--uid-map", "--gid-map"}));
  EXPECT_THAT(tools_.calls()[1], ::testing::Contains("0:100000:65536").Times(2));
}

TEST_F(ImageCacheTest, SecondRequestAndANewAgentProcessUseTheCachedImage) {
  std::string digest = Archive("img");
  std::string rootfs;
  {
    auto cache = NewCache();
    rootfs = cache->Get("busybox", digest, nullptr)->rootfs;
    std::vector<std::string> reasons;
    auto again =
        cache->Get("other-name", digest, [&](absl::string_view r) { reasons.emplace_back(r); });
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->rootfs, rootfs);
    EXPECT_THAT(reasons, ElementsAre());
  }
  // A crash left a partial unpack behind: the next agent removes it and keeps the image.
  fs::create_directories(root_ + "/.partial-abc-1-0/rootfs");
  auto cache = NewCache();
  EXPECT_THAT(Leftovers(), ElementsAre());
  auto image = cache->Get("busybox", digest, nullptr);
  ASSERT_TRUE(image.ok());
  EXPECT_EQ(image->rootfs, rootfs);
  EXPECT_THAT(image->env, ElementsAre("PATH=/opt/conda/bin:/usr/bin:/bin", "LANG=C.UTF-8"));
  EXPECT_EQ(fetches_.load(), 1);
  EXPECT_EQ(tools_.unpacks_.load(), 1);
}

TEST_F(ImageCacheTest, ConcurrentAttemptsOnOneImageUnpackItOnce) {
  std::string digest = Archive("img");
  auto cache = NewCache();
  absl::Notification gate;
  tools_.unpack_gate = &gate;
  absl::Notification second_waits;
  absl::StatusOr<UnpackedImage> first, second;
  std::thread a([&] { first = cache->Get("busybox", digest, nullptr); });
  // The first holds the image's lock (inside umoci) before the second asks.
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (tools_.unpacks_.load() == 0 && absl::Now() < deadline)
    absl::SleepFor(absl::Milliseconds(1));
  ASSERT_EQ(tools_.unpacks_.load(), 1);
  std::thread b([&] {
    second = cache->Get("busybox", digest, [&](absl::string_view reason) {
      if (reason == "UNPACKING_IMAGE" && !second_waits.HasBeenNotified()) second_waits.Notify();
    });
  });
  EXPECT_TRUE(second_waits.WaitForNotificationWithTimeout(absl::Seconds(10)))
      << "the second attempt should say it waits for the unpack";
  gate.Notify();
  a.join();
  b.join();
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(first->rootfs, second->rootfs);
  EXPECT_EQ(tools_.unpacks_.load(), 1);
  EXPECT_EQ(fetches_.load(), 1);
}

TEST_F(ImageCacheTest, DifferentDigestsAreDifferentImages) {
  std::string one = Archive("one");
  std::string two = Archive("two", [](const std::string& d) {
    WriteLayout(d);
    WriteFile(d + "/extra", "changes the archive's digest");
  });
  auto cache = NewCache();
  auto a = cache->Get("train", one, nullptr);
  auto b = cache->Get("train", two, nullptr);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->rootfs, b->rootfs);
  EXPECT_EQ(tools_.unpacks_.load(), 2);
}

TEST_F(ImageCacheTest, ImageNoLongerRegisteredSaysToImportItAgain) {
  auto cache = NewCache();
  auto image = cache->Get("gone", "", nullptr);
  EXPECT_EQ(image.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(image.status().message()), HasSubstr("drover image import"));
  EXPECT_THAT(std::string(image.status().message()), HasSubstr("'gone'"));
}

TEST_F(ImageCacheTest, DownloadThatDoesNotMatchItsDigestIsRefused) {
  std::string digest = Archive("img");
  corrupt_ = true;
  auto cache = NewCache();
  auto image = cache->Get("busybox", digest, nullptr);
  EXPECT_EQ(image.status().code(), absl::StatusCode::kDataLoss) << image.status();
  EXPECT_THAT(Leftovers(), ElementsAre());
  EXPECT_FALSE(fs::exists(absl::StrCat(root_, "/", digest.substr(7))));
}

TEST_F(ImageCacheTest, MissingBlobIsReportedWithTheFetchError) {
  auto cache = NewCache();
  auto image = cache->Get("busybox", std::string("sha256:") + std::string(64, 'e'), nullptr);
  EXPECT_EQ(image.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(image.status().message()), HasSubstr("downloading its archive"));
  EXPECT_THAT(Leftovers(), ElementsAre());
}

TEST_F(ImageCacheTest, ArchiveThatIsNotAnOciLayoutIsRefused) {
  std::string digest =
      Archive("code", [](const std::string& d) { WriteFile(d + "/train.py", "print(1)"); });
  auto cache = NewCache();
  auto image = cache->Get("code", digest, nullptr);
  EXPECT_EQ(image.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(image.status().message()), HasSubstr("not an OCI image layout"));
  EXPECT_THAT(Leftovers(), ElementsAre());
  EXPECT_EQ(tools_.unpacks_.load(), 0);
}

TEST_F(ImageCacheTest, UmociFailureIsReportedInItsOwnWords) {
  std::string digest = Archive("img");
  tools_.umoci_error =
      "   \xe2\x80\xa2 unpacking rootfs ...\n   \xe2\xa8\xaf open layer: no space left on device\n";
  auto cache = NewCache();
  auto image = cache->Get("busybox", digest, nullptr);
  EXPECT_EQ(image.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(
      std::string(image.status().message()),
      HasSubstr(
          "umoci raw unpack failed: unpacking rootfs ...; open layer: no space left on device"));
  EXPECT_THAT(Leftovers(), ElementsAre());
  // Nothing was cached: the next try unpacks again.
  tools_.umoci_error.clear();
  EXPECT_TRUE(cache->Get("busybox", digest, nullptr).ok());
  EXPECT_EQ(tools_.unpacks_.load(), 2);
}

TEST_F(ImageCacheTest, DockerReferenceIsResolvedPinnedAndCachedByDigest) {
  auto cache = NewCache();
  std::vector<std::string> reasons;
  auto image = cache->Get("docker://registry.example.com:5000/team/train:1.0", "",
                          [&](absl::string_view r) { reasons.emplace_back(r); });
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_TRUE(fs::exists(image->rootfs + "/bin/sh"));
  EXPECT_THAT(image->env, ElementsAre("PATH=/opt/conda/bin:/usr/bin:/bin", "LANG=C.UTF-8"));
  EXPECT_THAT(reasons, ElementsAre("PULLING_IMAGE", "UNPACKING_IMAGE"));
  auto calls = tools_.calls();
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_THAT(calls[0], ElementsAre("skopeo", "inspect", "--no-tags", "--format", "{{.Digest}}",
                                    "docker://registry.example.com:5000/team/train:1.0"));
  // The copy is pinned to the digest the tag named, so the cache holds what its key says.
  EXPECT_EQ(calls[1][4], "docker://registry.example.com:5000/team/train@" + tools_.registry_digest);

  // Same tag, same digest: cached. The tag moved: pulled again.
  ASSERT_TRUE(cache->Get("docker://registry.example.com:5000/team/train:1.0", "", nullptr).ok());
  EXPECT_EQ(tools_.copies_.load(), 1);
  tools_.registry_digest = "sha256:" + std::string(64, '4');
  auto moved = cache->Get("docker://registry.example.com:5000/team/train:1.0", "", nullptr);
  ASSERT_TRUE(moved.ok());
  EXPECT_NE(moved->rootfs, image->rootfs);
  EXPECT_EQ(tools_.copies_.load(), 2);
}

TEST_F(ImageCacheTest, DockerReferenceWithADigestNeedsNoRegistryOnceCached) {
  auto cache = NewCache();
  std::string ref = "docker://busybox@sha256:" + std::string(64, '5');
  ASSERT_TRUE(cache->Get(ref, "", nullptr).ok());
  tools_.skopeo_error = "time=\"x\" level=fatal msg=\"no network\"";
  ASSERT_TRUE(cache->Get(ref, "", nullptr).ok());
  for (const auto& call : tools_.calls()) EXPECT_NE(call[1], "inspect");
  EXPECT_EQ(tools_.copies_.load(), 1);
}

TEST_F(ImageCacheTest, UnreachableRegistryGivesSkopeosMessage) {
  tools_.skopeo_error =
      "time=\"2026-01-01T00:00:00Z\" level=fatal msg=\"Error parsing image name "
      "\\\"docker://127.0.0.1:1/nope:1\\\": pinging container registry 127.0.0.1:1: connect: "
      "connection refused\"\n";
  auto cache = NewCache();
  auto image = cache->Get("docker://127.0.0.1:1/nope:1", "", nullptr);
  EXPECT_EQ(image.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(std::string(image.status().message()),
            "image 'docker://127.0.0.1:1/nope:1': skopeo inspect failed: Error parsing image "
            "name \"docker://127.0.0.1:1/nope:1\": pinging container registry 127.0.0.1:1: "
            "connect: connection refused; the node must reach the registry (or import the "
            "image with drover image import)");
  EXPECT_THAT(Leftovers(), ElementsAre());
}

TEST(ChooseManifestTest, TakesTheOnlyImageAndTagsItForUmoci) {
  auto choice = ChooseManifest(Index());
  ASSERT_TRUE(choice.ok()) << choice.status();
  EXPECT_EQ(choice->tag, "");
  EXPECT_EQ(choice->manifest_digest, kManifest);
  EXPECT_THAT(choice->index_for_umoci,
              HasSubstr(R"("annotations":{"org.opencontainers.image.ref.name":"drover"})"));
}

TEST(ChooseManifestTest, PrefersLatestAmongSeveralAndKeepsOnlyIt) {
  std::string index = absl::StrCat(
      R"({"schemaVersion":2,"manifests":[)", R"({"digest":"sha256:)", std::string(64, 'a'),
      R"(","annotations":{"org.opencontainers.image.ref.name":"v1"}},)", R"({"digest":"sha256:)",
      std::string(64, 'b'), R"(","annotations":{"org.opencontainers.image.ref.name":"latest"}}]})");
  auto choice = ChooseManifest(index);
  ASSERT_TRUE(choice.ok()) << choice.status();
  EXPECT_EQ(choice->tag, "latest");
  EXPECT_EQ(choice->manifest_digest, "sha256:" + std::string(64, 'b'));
  EXPECT_THAT(choice->index_for_umoci, ::testing::Not(HasSubstr(std::string(64, 'a'))));
}

TEST(ChooseManifestTest, RefusesWhatItCannotPickSafely) {
  struct Case {
    std::string index;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {"not json", "index.json is not a JSON object"},
           {R"({"manifests":[]})", "lists no image manifest"},
           {absl::StrCat(R"({"manifests":[{"digest":"sha256:)", std::string(64, 'a'),
                         R"(","annotations":{"org.opencontainers.image.ref.name":"v1"}},)",
                         R"({"digest":"sha256:)", std::string(64, 'b'), R"("}]})"),
            "holds 2 images (v1, (untagged)) and none is tagged 'latest'"},
           {absl::StrCat(R"({"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json",)",
                         R"("digest":"sha256:)", std::string(64, 'a'), R"("}]})"),
            "multi-platform"},
           {R"({"manifests":[{"digest":"sha256:../../../etc/passwd"}]})", "valid sha256 digest"},
       }) {
    auto choice = ChooseManifest(c.index);
    EXPECT_EQ(choice.status().code(), absl::StatusCode::kFailedPrecondition) << c.index;
    EXPECT_THAT(std::string(choice.status().message()), HasSubstr(c.message)) << c.index;
  }
}

TEST(ImageConfigTest, ReadsEnvAndRefusesMalformedConfigs) {
  EXPECT_THAT(*ImageConfigEnv(R"({"config":{"Env":["A=1","B=x=y"]}})"),
              ElementsAre("A=1", "B=x=y"));
  EXPECT_THAT(*ImageConfigEnv(R"({"architecture":"amd64"})"), ElementsAre());
  EXPECT_FALSE(ImageConfigEnv(R"({"config":{"Env":["novalue"]}})").ok());
  EXPECT_FALSE(ImageConfigEnv(R"({"config":{"Env":"A=1"}})").ok());
  EXPECT_EQ(*ManifestConfigDigest(absl::StrCat(R"({"config":{"digest":")", kConfig, R"("}})")),
            kConfig);
  EXPECT_FALSE(ManifestConfigDigest(R"({"config":{"digest":"sha256:../x"}})").ok());
}

TEST(ToolMessageTest, TakesSkopeosFatalMessageElseTheLastLines) {
  EXPECT_EQ(ToolMessage("time=\"t\" level=fatal msg=\"a \\\"quoted\\\" thing\"\n"),
            "a \"quoted\" thing");
  EXPECT_EQ(ToolMessage("   \xe2\xa8\xaf tag is not found: latest \n"), "tag is not found: latest");
  EXPECT_EQ(ToolMessage("1\n2\n3\n4\n\n"), "2; 3; 4");
  EXPECT_EQ(ToolMessage(""), "");
}

TEST(ProcessRunnerTest, CapturesOutputAndExitCode) {
  ProcessRunner runner;
  auto result = runner.Run({"/bin/sh", "-c", "echo out; echo err >&2; exit 3"}, absl::Seconds(10));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 3);
  EXPECT_EQ(result->out, "out\n");
  EXPECT_EQ(result->err, "err\n");
}

TEST(ProcessRunnerTest, KillsAProgramThatRunsTooLong) {
  ProcessRunner runner;
  absl::Time start = absl::Now();
  // The program closes its output and runs on: the deadline still holds.
  auto result =
      runner.Run({"/bin/sh", "-c", "exec sleep 30 >/dev/null 2>&1"}, absl::Milliseconds(300));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
}

TEST(ProcessRunnerTest, MissingProgramSaysToInstallIt) {
  ProcessRunner runner;
  auto result = runner.Run({"drover-no-such-program"}, absl::Seconds(5));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("install it on this node"));
}

}  // namespace
}  // namespace drover::agent
