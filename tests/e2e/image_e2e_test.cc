// Jobs in real OCI images, end to end: an image built in the test from the static busybox
// (umoci), exported as an oci-archive (skopeo, or a plain tar of the layout), uploaded to the
// real droverd and registered (AdminService.PutImage), then run by the real drover-agent,
// which downloads, unpacks (real umoci) and runs it in runc containers with their own
// copy-on-write layers; `drover image import|list|delete` with the built CLI. Runs as root. Every
// test checks that nothing is left behind: no container in the agent's runc root, no mount under
// its work folder, no partial unpack.
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/archive/sha256.h"
#include "common/archive/snapshot.h"
#include "drover/v1/admin_service.grpc.pb.h"
#include "drover/v1/blob.grpc.pb.h"
#include "drover/v1/job_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/cluster.h"
#include "tests/testing/local_cluster.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/test_tls.h"

namespace drover {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

constexpr char kBusybox[] = "/usr/bin/busybox";  // Debian's busybox-static

int Count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// Runs a command; fails the test with its output when it does not exit 0.
bool Run(const std::vector<std::string>& argv) {
  auto result = testing::RunCommand(argv, {}, "", absl::Seconds(120));
  if (!result.ok() || result->exit_code != 0) {
    ADD_FAILURE() << argv[0] << " " << (argv.size() > 1 ? argv[1] : "") << " failed: "
                  << (result.ok() ? result->err + result->out : result.status().ToString());
    return false;
  }
  return true;
}

// The busybox image as two archives: `skopeo copy ... oci-archive:` (index.json without a
// tag) and a plain tar of the umoci layout (tagged "latest"). Built once per busybox binary
// and kept in the build tree (DROVER_IMAGE_CACHE_DIR), so that reruns reuse the same digests.
struct BusyboxArchives {
  std::string skopeo_archive;
  std::string layout_tar;
};

std::optional<BusyboxArchives> BuildBusyboxImage(const std::string& scratch) {
  auto busybox = archive::Sha256File(kBusybox);
  if (!busybox.ok()) return std::nullopt;
  std::string cache = DROVER_IMAGE_CACHE_DIR;
  std::string stem = absl::StrCat(cache, "/busybox-", busybox->substr(7, 16));
  BusyboxArchives out{stem + ".oci-archive.tar", stem + ".layout.tar"};
  if (fs::exists(out.skopeo_archive) && fs::exists(out.layout_tar)) return out;

  std::string rootfs = scratch + "/busybox-rootfs";
  fs::create_directories(rootfs + "/bin");
  fs::copy_file(kBusybox, rootfs + "/bin/busybox");
  for (const char* applet : {"sh", "echo", "cat", "head", "ls", "test", "[", "sleep", "rm", "mkdir",
                             "touch", "env", "id", "true", "false"}) {
    fs::create_symlink("busybox", rootfs + "/bin/" + applet);
  }
  for (const char* dir : {"etc", "tmp", "root"}) fs::create_directories(rootfs + "/" + dir);
  std::ofstream(rootfs + "/etc/image-release") << "drover busybox test image\n";
  std::string layout = scratch + "/busybox-layout";
  if (!Run({"/usr/bin/umoci", "init", "--layout", layout}) ||
      !Run({"/usr/bin/umoci", "new", "--image", layout + ":latest"}) ||
      !Run({"/usr/bin/umoci", "insert", "--image", layout + ":latest", rootfs, "/"}) ||
      !Run({"/usr/bin/umoci", "config", "--image", layout + ":latest", "--config.env", "PATH=/bin",
            "--config.env", "IMAGE_VAR=from-the-image"})) {
    return std::nullopt;
  }
  std::string skopeo_tmp = scratch + "/busybox.oci-archive.tar";
  if (!Run({"/usr/bin/skopeo", "copy", "oci:" + layout + ":latest", "oci-archive:" + skopeo_tmp})) {
    return std::nullopt;
  }
  auto tar = archive::BuildSnapshot(
      layout, {.output_path = scratch + "/busybox.layout.tar", .use_ignore_files = false});
  if (!tar.ok()) {
    ADD_FAILURE() << tar.status();
    return std::nullopt;
  }
  std::error_code error;
  fs::create_directories(cache, error);
  // Copy, then rename: a concurrent or interrupted run never sees half a file.
  for (auto [from, to] :
       {std::pair{skopeo_tmp, out.skopeo_archive}, std::pair{tar->tar_path, out.layout_tar}}) {
    fs::copy_file(from, to + ".tmp", fs::copy_options::overwrite_existing, error);
    fs::rename(to + ".tmp", to, error);
  }
  if (error) {
    ADD_FAILURE() << "cannot cache the image under " << cache << ": " << error.message();
    return std::nullopt;
  }
  return out;
}

class ImageE2eTest : public testing::LocalClusterTest {
 protected:
  void SetUp() override {
    LocalClusterTest::SetUp();
    if (IsSkipped()) return;
    for (const char* tool : {kBusybox, "/usr/bin/umoci", "/usr/bin/skopeo"}) {
      if (!fs::exists(tool)) GTEST_SKIP() << tool << " is missing; run deploy/install-deps.sh";
    }
    auto archives = BuildBusyboxImage(dir_.path());
    ASSERT_TRUE(archives.has_value());
    archives_ = *archives;
    // Four cores offered, whatever the machine has: two jobs fit at once.
    StartCluster({.agent_flags = {"--cpus", "4"},
                  .datastore_root = false,
                  .job_timeout = absl::Seconds(90)});
  }

  void TearDown() override {
    if (agents_.empty()) return LocalClusterTest::TearDown();
    ExpectNothingLeftBehind();  // SIGTERM: the agent stops and deletes what still runs
    std::error_code error;
    for (const auto& entry : fs::directory_iterator(work() + "/images", error)) {
      EXPECT_FALSE(absl::StartsWith(entry.path().filename().string(), ".partial-"))
          << "partial unpack left behind: " << entry.path();
    }
    LocalClusterTest::TearDown();
  }

  // What `drover image import NAME FILE` does: upload the archive, then register the name.
  std::string Import(const std::string& name, const std::string& file) {
    std::string digest = UploadFile(file);
    grpc::ClientContext context;
    v1::PutImageRequest request;
    request.mutable_image()->set_name(name);
    request.mutable_image()->set_digest(digest);
    v1::Image image;
    grpc::Status status = admin_->PutImage(&context, request, &image);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return digest;
  }

  // A job running `script` with the image's /bin/sh.
  static v1::JobSpec Shell(const std::string& image, const std::string& script) {
    v1::JobSpec spec;
    spec.set_entry_script("bin/sh");
    spec.add_arguments()->set_value("-c");
    spec.add_arguments()->set_value(script);
    spec.mutable_environment()->set_image(image);
    spec.mutable_resources()->set_cpus(1);
    spec.mutable_resources()->set_memory_mib(256);
    return spec;
  }

  grpc::Status TrySubmit(const v1::JobSpec& spec, std::string* id) {
    grpc::ClientContext context;
    v1::SubmitJobRequest request;
    *request.mutable_spec() = spec;
    v1::SubmitJobResponse response;
    grpc::Status status = jobs_->stub().SubmitJob(&context, request, &response);
    *id = response.job().id();
    return status;
  }

  // Every rank's output on one stream.
  std::string Logs(const std::string& id, v1::LogStream stream = v1::STDOUT) {
    return jobs_->Logs(id, -1, stream);
  }

  // Under the agent's default user namespace, unpacked with its ids shifted into the range.
  std::string RootfsOf(const std::string& digest) {
    return absl::StrCat(work(), "/images/", digest.substr(7), "-userns-", testing::kJobRootUid,
                        "-65536/rootfs");
  }

  BusyboxArchives archives_;
};

TEST_F(ImageE2eTest, JobRunsInTheImportedImageNotOnTheHost) {
  std::string digest = Import("drover-test/busybox:1", archives_.skopeo_archive);
  std::string id = Submit(
      Shell("drover-test/busybox:1",
            "busybox | head -1; echo rank=$DROVER_RANK var=$IMAGE_VAR path=$PATH; cat "
            "/etc/image-release; "
            "if [ -e /usr/bin/python3 ]; then echo host python; else echo no python; fi; "
            "echo written > /written-by-the-job; cat /written-by-the-job; pwd; ls -d /job/logs"));
  v1::Job job = WaitFor(id, v1::JobStatus::COMPLETED);
  ASSERT_EQ(job.status().exits_size(), 1);
  EXPECT_EQ(job.status().exits(0).exit_code(), 0);
  std::string out = Logs(id);
  EXPECT_THAT(out, HasSubstr("BusyBox v"));
  // The image's own variables reach the job; the contract is set as with the host image.
  EXPECT_THAT(out, HasSubstr("rank=0 var=from-the-image path=/bin\n"));
  EXPECT_THAT(out, HasSubstr("drover busybox test image\n"));
  EXPECT_THAT(out, HasSubstr("no python\n"));
  EXPECT_THAT(out, HasSubstr("written\n/job\n/job/logs\n"));
  EXPECT_EQ(Logs(id, v1::STDERR), "");

  // Unpacked once into the cache; the job's write stayed in its own layer.
  std::string rootfs = RootfsOf(digest);
  EXPECT_TRUE(fs::exists(rootfs + "/bin/busybox")) << agent()->ReadLog();
  EXPECT_FALSE(fs::exists(rootfs + "/written-by-the-job"));
  EXPECT_EQ(archive::Sha256File(rootfs + "/bin/busybox").value(),
            archive::Sha256File(kBusybox).value());
}

TEST_F(ImageE2eTest, TwoJobsOnOneImageUnpackItOnceAndEachWritesItsOwnLayer) {
  std::string digest = Import("busybox", archives_.layout_tar);
  const std::string script =
      "if [ -e /marker ]; then echo saw $(cat /marker); else echo clean; fi; "
      "echo $DROVER_JOB_ID > /marker; sleep 1; cat /marker";
  // Submitted together: both attempts prepare at the same time and share one unpack.
  std::string first = Submit(Shell("busybox", script));
  std::string second = Submit(Shell("busybox", script));
  WaitFor(first, v1::JobStatus::COMPLETED);
  WaitFor(second, v1::JobStatus::COMPLETED);
  EXPECT_EQ(Logs(first), absl::StrCat("clean\n", first, "\n"));
  EXPECT_EQ(Logs(second), absl::StrCat("clean\n", second, "\n"));
  // A later job starts from the pristine image too.
  std::string third = Submit(Shell("busybox", script));
  WaitFor(third, v1::JobStatus::COMPLETED);
  EXPECT_EQ(Logs(third), absl::StrCat("clean\n", third, "\n"));

  std::string log = agent()->ReadLog();
  EXPECT_EQ(Count(log, "event=image_unpacked"), 1) << log;
  EXPECT_EQ(Count(log, "event=image_downloaded"), 1) << log;
  EXPECT_FALSE(fs::exists(RootfsOf(digest) + "/marker"));
}

TEST_F(ImageE2eTest, CliImportsListsAndDeletesAnImageAndAJobRunsInIt) {
  auto drover = [&](const std::vector<std::string>& args) { return RunCli(args); };
  testing::CommandResult imported =
      drover({"image", "import", "cli/busybox:1", archives_.skopeo_archive});
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  EXPECT_THAT(imported.out,
              ::testing::MatchesRegex("cli/busybox:1 IMPORTED sha256:[0-9a-f]{64} \\(.*\\)\n"));
  EXPECT_THAT(imported.err, HasSubstr("uploading image archive sha256:"));
  testing::CommandResult again =
      drover({"image", "import", "cli/busybox:1", archives_.skopeo_archive});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_THAT(again.out, HasSubstr("cli/busybox:1 UNCHANGED sha256:"));
  EXPECT_THAT(again.err, HasSubstr("already on droverd; nothing to upload"));
  testing::CommandResult listed = drover({"image", "list"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_THAT(listed.out, HasSubstr("cli/busybox:1  sha256:"));

  std::string id = Submit(Shell("cli/busybox:1", "echo in the image; cat /etc/image-release"));
  WaitFor(id, v1::JobStatus::COMPLETED);
  EXPECT_EQ(Logs(id), "in the image\ndrover busybox test image\n");

  testing::CommandResult deleted = drover({"image", "delete", "cli/busybox:1"});
  ASSERT_EQ(deleted.exit_code, 0) << deleted.err;
  EXPECT_EQ(deleted.out, "cli/busybox:1 DELETED\n");
  EXPECT_EQ(drover({"image", "delete", "cli/busybox:1"}).exit_code, 4);
  std::string refused;
  EXPECT_EQ(TrySubmit(Shell("cli/busybox:1", "true"), &refused).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  testing::CommandResult not_an_image = drover({"image", "import", "x", kBusybox});
  EXPECT_EQ(not_an_image.exit_code, 2);
  EXPECT_THAT(not_an_image.err, HasSubstr("is not an OCI archive"));
}

TEST_F(ImageE2eTest, UnknownImageIsRefusedAtSubmitNamingTheField) {
  std::string id;
  grpc::Status status = TrySubmit(Shell("no-such-image", "true"), &id);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("spec.environment.image: 'no-such-image'"));
  EXPECT_THAT(status.error_message(), HasSubstr("drover image import"));
}

TEST_F(ImageE2eTest, UnreachableRegistryFailsTheLaunchWithSkopeosMessage) {
  // Nothing listens on port 1: skopeo fails at once, as on a node without registry access.
  std::string id = Submit(Shell("docker://127.0.0.1:1/team/nope:1.0", "true"));
  v1::Job job = WaitFor(id, v1::JobStatus::FAILED);
  EXPECT_EQ(job.status().cause(), v1::JobStatus::LAUNCH_FAILED);
  EXPECT_THAT(job.status().message(),
              HasSubstr("image 'docker://127.0.0.1:1/team/nope:1.0': skopeo inspect failed: "));
  EXPECT_THAT(job.status().message(), HasSubstr("connection refused"));
}

}  // namespace
}  // namespace drover
