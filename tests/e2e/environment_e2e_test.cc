// Job environments end to end: `environment.pip_packages` installed by the real drover-agent
// in real runc containers, from a wheel the test builds (`pip wheel`, offline) into a folder
// droverd hands to the agents (--pip-find-links DIR --pip-no-index). In the host image and in
// a small OCI image made from the host's python3 and pip. The build's output is the job's
// PREPARE log stream (`drover logs JOB --prepare`); identical jobs reuse the built layer;
// failures fail the job LAUNCH_FAILED with pip's error. Runs as root. Every test checks that
// nothing is left behind: no container, no mount, no unfinished build.
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
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
using ::testing::Not;
namespace fs = std::filesystem;

constexpr char kPython[] = "/usr/bin/python3";
constexpr char kBusybox[] = "/usr/bin/busybox";
constexpr char kMarker[] = "drovertestpkg says hello";

int Count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// Runs a command; fails the test with its output when it does not exit 0.
bool Run(const std::vector<std::string>& argv) {
  auto result = testing::RunCommand(argv, {}, "", absl::Seconds(300));
  if (!result.ok() || result->exit_code != 0) {
    ADD_FAILURE() << argv[0] << " " << (argv.size() > 1 ? argv[1] : "") << " failed: "
                  << (result.ok() ? result->err + result->out : result.status().ToString());
    return false;
  }
  return true;
}

// Moves `from` to `to` in the build tree's cache, so that a concurrent or interrupted run
// never sees half of it.
bool Publish(const std::string& from, const std::string& to) {
  std::error_code error;
  fs::create_directories(fs::path(to).parent_path(), error);
  fs::copy_file(from, to + ".tmp", fs::copy_options::overwrite_existing, error);
  fs::rename(to + ".tmp", to, error);
  if (error) ADD_FAILURE() << "cannot cache " << to << ": " << error.message();
  return !error;
}

// The folder with drovertestpkg-1.0-py3-none-any.whl: one module printing kMarker, built
// with the host's pip offline (no build isolation: setuptools and wheel from Debian). Kept in
// the build tree (DROVER_ENVIRONMENT_TEST_CACHE_DIR) across runs.
std::optional<std::string> BuildWheelFolder(const std::string& scratch) {
  std::string wheels = std::string(DROVER_ENVIRONMENT_TEST_CACHE_DIR) + "/wheels";
  std::string wheel = wheels + "/drovertestpkg-1.0-py3-none-any.whl";
  if (fs::exists(wheel)) return wheels;
  std::string src = scratch + "/drovertestpkg-src";
  fs::create_directories(src);
  std::ofstream(src + "/setup.py")
      << "from setuptools import setup\n"
         "setup(name='drovertestpkg', version='1.0', py_modules=['drovertestpkg'])\n";
  std::ofstream(src + "/drovertestpkg.py") << "MARKER = '" << kMarker << "'\n";
  std::string out = scratch + "/wheel-out";
  if (!Run({kPython, "-m", "pip", "wheel", "--no-deps", "--no-index", "--no-build-isolation",
            "--disable-pip-version-check", "-w", out, src})) {
    return std::nullopt;
  }
  if (!Publish(out + "/drovertestpkg-1.0-py3-none-any.whl", wheel)) return std::nullopt;
  return wheels;
}

// A plain OCI image with python3 and pip and nothing of Debian's packaging: the host's
// python3.11 with the libraries it and its extension modules load, its standard library
// (without tests and tools), pip, and the static busybox as /bin/sh. Archived with the
// plain tar of an umoci layout and kept in the build tree.
std::optional<std::string> BuildPythonImage(const std::string& scratch) {
  std::string archive = std::string(DROVER_ENVIRONMENT_TEST_CACHE_DIR) + "/python-image.layout.tar";
  if (fs::exists(archive)) return archive;
  std::string rootfs = scratch + "/python-rootfs";
  std::error_code error;
  for (const char* dir : {"/bin", "/usr/bin", "/usr/lib/python3/dist-packages", "/tmp", "/root", "/etc"}) {
    fs::create_directories(rootfs + dir);
  }
  fs::copy_file(kBusybox, rootfs + "/bin/busybox");
  for (const char* applet : {"sh", "echo", "cat", "ls", "rm", "mkdir", "env"}) {
    fs::create_symlink("busybox", rootfs + "/bin/" + applet);
  }
  fs::path python = fs::canonical(kPython);  // /usr/bin/python3.11
  fs::copy_file(python, rootfs + python.string());
  fs::create_symlink(python.filename(), rootfs + "/usr/bin/python3");
  std::string stdlib = "/usr/lib/" + python.filename().string();
  const std::set<std::string> skipped = {"test", "idlelib", "tkinter", "turtledemo", "lib2to3",
                                         "ensurepip", "__pycache__", "dist-packages",
                                         "pydoc_data"};
  for (auto it = fs::recursive_directory_iterator(stdlib); it != fs::recursive_directory_iterator();
       ++it) {
    std::string name = it->path().filename().string();
    if (skipped.contains(name) || absl::StartsWith(name, "config-")) {
      it.disable_recursion_pending();
      continue;
    }
    std::string target = rootfs + it->path().string();
    if (it->is_directory()) {
      fs::create_directories(target);
    } else {
      fs::copy(it->path(), target, fs::copy_options::copy_symlinks, error);
    }
  }
  for (const auto& entry : fs::directory_iterator("/usr/lib/python3/dist-packages")) {
    std::string name = entry.path().filename().string();
    if (name == "pip" || absl::StartsWith(name, "pip-")) {
      fs::copy(entry.path(), rootfs + entry.path().string(), fs::copy_options::recursive);
    }
  }
  // The shared libraries python3 and its extension modules load.
  std::vector<std::string> binaries = {python.string()};
  for (const auto& entry : fs::directory_iterator(stdlib + "/lib-dynload")) {
    binaries.push_back(entry.path().string());
  }
  std::set<std::string> libraries;
  for (const std::string& binary : binaries) {
    auto ldd = testing::RunCommand({"/usr/bin/ldd", binary});
    if (!ldd.ok()) continue;
    for (absl::string_view word : absl::StrSplit(ldd->out, absl::ByAnyChar(" \t\n"))) {
      if (absl::StartsWith(word, "/") && absl::StrContains(word, ".so")) libraries.emplace(word);
    }
  }
  for (const std::string& library : libraries) {
    fs::create_directories(rootfs + fs::path(library).parent_path().string());
    fs::copy_file(library, rootfs + library, fs::copy_options::overwrite_existing, error);
  }
  if (error) {
    ADD_FAILURE() << "cannot build the python image: " << error.message();
    return std::nullopt;
  }
  std::string layout = scratch + "/python-layout";
  if (!Run({"/usr/bin/umoci", "init", "--layout", layout}) ||
      !Run({"/usr/bin/umoci", "new", "--image", layout + ":latest"}) ||
      !Run({"/usr/bin/umoci", "insert", "--image", layout + ":latest", rootfs, "/"}) ||
      !Run({"/usr/bin/umoci", "config", "--image", layout + ":latest", "--config.env",
            "PATH=/usr/bin:/bin"})) {
    return std::nullopt;
  }
  auto tar = archive::BuildSnapshot(
      layout, {.output_path = scratch + "/python-image.layout.tar", .use_ignore_files = false});
  if (!tar.ok()) {
    ADD_FAILURE() << tar.status();
    return std::nullopt;
  }
  if (!Publish(tar->tar_path, archive)) return std::nullopt;
  return archive;
}

class EnvironmentE2eTest : public testing::LocalClusterTest {
 protected:
  void SetUp() override {
    LocalClusterTest::SetUp();
    if (IsSkipped()) return;
    auto pip = testing::RunCommand({kPython, "-c", "import setuptools, wheel, venv, pip"});
    if (!pip.ok() || pip->exit_code != 0) {
      GTEST_SKIP() << kPython << " lacks pip, setuptools, wheel or venv; run deploy/install-deps.sh";
    }
    std::optional<std::string> wheels = BuildWheelFolder(dir_.path());
    ASSERT_TRUE(wheels.has_value());
    wheels_ = *wheels;
    // Four cores offered, whatever the machine has: two jobs fit at once.
    StartCluster({.droverd_flags = {"--pip-find-links", wheels_, "--pip-no-index"},
                  .agent_flags = {"--cpus", "4"},
                  .datastore_root = false,
                  .job_timeout = absl::Seconds(240)});
  }

  void TearDown() override {
    if (agents_.empty()) return;
    ExpectNothingLeftBehind();  // SIGTERM: the agent stops and deletes what still runs
    std::error_code error;
    for (const auto& entry : fs::directory_iterator(work() + "/environments", error)) {
      EXPECT_FALSE(absl::StartsWith(entry.path().filename().string(), "."))
          << "unfinished build left behind: " << entry.path();
    }
    LocalClusterTest::TearDown();
  }

  // A job running `script` with /bin/sh in `image`, with `pip` packages.
  static v1::JobSpec Shell(const std::string& script, std::vector<std::string> pip,
                           const std::string& image = "host") {
    v1::JobSpec spec;
    spec.set_entry_script("bin/sh");
    spec.add_arguments()->set_value("-c");
    spec.add_arguments()->set_value(script);
    spec.mutable_environment()->set_image(image);
    for (const std::string& p : pip) spec.mutable_environment()->add_pip_packages(p);
    spec.mutable_resources()->set_cpus(1);
    spec.mutable_resources()->set_memory_mib(512);
    return spec;
  }

  // Watches a job to its end and returns every state and reason it showed ("PREPARING
  // BUILDING_ENVIRONMENT node=n1", ...).
  std::vector<std::string> WatchToEnd(const std::string& id) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(240));
    v1::WatchJobRequest request;
    request.set_job_id(id);
    auto reader = jobs_->stub().WatchJob(&context, request);
    std::vector<std::string> seen;
    v1::WatchJobResponse change;
    while (reader->Read(&change)) {
      const v1::JobStatus& s = change.job().status();
      seen.push_back(absl::StrCat(v1::JobStatus::State_Name(s.state()), " ", s.reason()));
    }
    grpc::Status status = reader->Finish();
    EXPECT_TRUE(status.ok()) << status.error_message();
    return seen;
  }

  std::string PrepareLog(const std::string& id) { return jobs_->Logs(id, -1, v1::PREPARE); }
  std::string Stdout(const std::string& id) { return jobs_->Logs(id, -1, v1::STDOUT); }

  // The one environment in the agent's cache.
  std::string OnlyEnvironment() {
    std::vector<std::string> keys;
    std::error_code error;
    for (const auto& entry : fs::directory_iterator(work() + "/environments", error)) {
      keys.push_back(entry.path().filename().string());
    }
    EXPECT_EQ(keys.size(), 1u) << ::testing::PrintToString(keys);
    return keys.empty() ? "" : keys[0];
  }

  testing::CommandResult Cli(const std::vector<std::string>& args) { return RunCli(args); }

  // Registers BuildPythonImage's image as drover-test/python:3.
  void PutPythonImage() {
    for (const char* tool : {kBusybox, "/usr/bin/umoci", "/usr/bin/ldd"}) {
      ASSERT_TRUE(fs::exists(tool)) << tool << " is missing; run deploy/install-deps.sh";
    }
    std::optional<std::string> archive = BuildPythonImage(dir_.path());
    ASSERT_TRUE(archive.has_value());
    absl::StatusOr<std::string> digest = testing::UploadBlobFile(*blobs_, *archive);
    ASSERT_TRUE(digest.ok()) << digest.status();
    grpc::ClientContext context;
    v1::PutImageRequest request;
    request.mutable_image()->set_name("drover-test/python:3");
    request.mutable_image()->set_digest(*digest);
    v1::Image image;
    grpc::Status status = admin_->PutImage(&context, request, &image);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  std::string wheels_;
};

const char kImportScript[] =
    "python3 -c 'import drovertestpkg; print(drovertestpkg.MARKER)' && "
    // The image's own interpreter by its full path finds it too (PYTHONPATH).
    "/usr/bin/python3 -c 'import drovertestpkg, sys; print(\"via\", sys.executable)' && "
    "echo VIRTUAL_ENV=$VIRTUAL_ENV && "
    // The layer is read-only.
    "if touch /drover/env/written 2>/dev/null; then echo layer writable; else echo layer read-only; fi";

TEST_F(EnvironmentE2eTest, PipPackageIsBuiltOnceShownInThePrepareLogAndReused) {
  std::string first = jobs_->Submit(Shell(kImportScript, {"drovertestpkg==1.0"}));
  std::vector<std::string> seen = WatchToEnd(first);
  v1::Job job = jobs_->Get(first);
  ASSERT_EQ(job.status().state(), v1::JobStatus::COMPLETED)
      << job.status().message() << "\nprepare log:\n" << PrepareLog(first) << "\nagent log:\n"
      << agent()->ReadLog();
  EXPECT_THAT(seen, ::testing::Contains("PREPARING BUILDING_ENVIRONMENT node=n1"));
  std::string out = Stdout(first);
  EXPECT_THAT(out, HasSubstr(absl::StrCat(kMarker, "\nvia /usr/bin/python3\n")));
  EXPECT_THAT(out, HasSubstr("VIRTUAL_ENV=/drover/env\nlayer read-only\n"));

  std::string key = OnlyEnvironment();
  std::string built = PrepareLog(first);
  EXPECT_THAT(built, HasSubstr(absl::StrCat("drover: building environment ", key,
                                            " on n1 (image host; pip: drovertestpkg==1.0)\n")));
  EXPECT_THAT(built, HasSubstr("-m venv --without-pip --system-site-packages /drover/env\n"));
  EXPECT_THAT(built, HasSubstr("Processing " + wheels_ + "/drovertestpkg-1.0-py3-none-any.whl"));
  EXPECT_THAT(built, HasSubstr("Successfully installed drovertestpkg-1.0\n"));
  EXPECT_THAT(built, HasSubstr(absl::StrCat("drover: environment ", key, " built in ")));
  // Not among the processes' output.
  EXPECT_THAT(out, Not(HasSubstr("Successfully installed")));

  struct stat before {};
  ASSERT_EQ(stat((work() + "/environments/" + key + "/layer").c_str(), &before), 0);

  // The same environment again: reused, not built.
  std::string second = jobs_->Submit(Shell(kImportScript, {"drovertestpkg==1.0"}));
  seen = WatchToEnd(second);
  ASSERT_EQ(jobs_->Get(second).status().state(), v1::JobStatus::COMPLETED)
      << jobs_->Get(second).status().message();
  EXPECT_THAT(seen, Not(::testing::Contains(HasSubstr("BUILDING_ENVIRONMENT"))));
  EXPECT_THAT(Stdout(second), HasSubstr(kMarker));
  EXPECT_EQ(PrepareLog(second),
            absl::StrCat("drover: using cached environment ", key,
                         " on n1 (image host; pip: drovertestpkg==1.0)\n"));
  struct stat after {};
  ASSERT_EQ(stat((work() + "/environments/" + key + "/layer").c_str(), &after), 0);
  EXPECT_EQ(after.st_ino, before.st_ino);
  EXPECT_EQ(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
  EXPECT_EQ(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
  EXPECT_EQ(Count(agent()->ReadLog(), "event=environment_built"), 1) << agent()->ReadLog();

  // What a user types.
  testing::CommandResult cli = Cli({"logs", first, "--prepare"});
  EXPECT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_EQ(cli.out, built);
  testing::CommandResult followed = Cli({"logs", "-f", second, "--prepare"});
  EXPECT_EQ(followed.exit_code, 0) << followed.err;
  EXPECT_EQ(followed.out, PrepareLog(second));
  // Without --prepare: the processes' output only.
  testing::CommandResult plain = Cli({"logs", second});
  EXPECT_THAT(plain.out, Not(HasSubstr("drover: using cached environment")));
}

TEST_F(EnvironmentE2eTest, TwoIdenticalJobsAtOnceBuildTheEnvironmentOnce) {
  std::string a = jobs_->Submit(Shell("python3 -c 'import drovertestpkg'", {"drovertestpkg==1.0"}));
  std::string b = jobs_->Submit(Shell("python3 -c 'import drovertestpkg'", {"drovertestpkg==1.0"}));
  WaitFor(a, v1::JobStatus::COMPLETED);
  WaitFor(b, v1::JobStatus::COMPLETED);
  std::string log = agent()->ReadLog();
  EXPECT_EQ(Count(log, "event=environment_built"), 1) << log;
  std::string logs = PrepareLog(a) + PrepareLog(b);
  EXPECT_EQ(Count(logs, "Successfully installed drovertestpkg-1.0"), 1) << logs;
  // The second waited for the first one's build (the build takes seconds; both were placed
  // at once), then used it.
  EXPECT_EQ(Count(logs, "which another job is building on n1"), 1) << logs;
  EXPECT_EQ(Count(logs, "drover: using cached environment " + OnlyEnvironment()), 1) << logs;
}

TEST_F(EnvironmentE2eTest, ANonexistentPackageFailsTheJobWithPipsError) {
  std::string id = jobs_->Submit(Shell("echo never runs", {"nosuchpkg==1.0"}));
  v1::Job job = WaitFor(id, v1::JobStatus::FAILED);
  EXPECT_EQ(job.status().cause(), v1::JobStatus::LAUNCH_FAILED);
  EXPECT_THAT(job.status().message(),
              HasSubstr("building the environment (pip: nosuchpkg==1.0) in image 'host' on n1 "
                        "failed with exit code 1: "));
  EXPECT_THAT(job.status().message(),
              HasSubstr("ERROR: No matching distribution found for nosuchpkg==1.0"));
  EXPECT_THAT(job.status().message(), HasSubstr("drover logs " + id + " --prepare"));
  EXPECT_THAT(PrepareLog(id), HasSubstr("ERROR: No matching distribution found for nosuchpkg"));
  EXPECT_EQ(Stdout(id), "");
  std::error_code error;
  EXPECT_TRUE(fs::is_empty(work() + "/environments", error)) << "a failed build was kept";
}

TEST_F(EnvironmentE2eTest, CondaPackagesOnAnImageWithoutCondaFailSayingSo) {
  v1::JobSpec spec = Shell("echo never runs", {});
  spec.mutable_environment()->add_conda_packages("numpy");
  std::string id = jobs_->Submit(spec);
  v1::Job job = WaitFor(id, v1::JobStatus::FAILED);
  EXPECT_EQ(job.status().cause(), v1::JobStatus::LAUNCH_FAILED);
  EXPECT_THAT(job.status().message(),
              HasSubstr("image 'host' has neither conda nor mamba; remove conda_packages or use "
                        "an image with conda"));
}

TEST_F(EnvironmentE2eTest, PipPackageInAPlainPythonImage) {
  ASSERT_NO_FATAL_FAILURE(PutPythonImage());
  std::string id = jobs_->Submit(Shell(
      "python3 -c 'import drovertestpkg, sys; print(drovertestpkg.MARKER, sys.prefix)'; "
      "if [ -e /usr/lib/python3/dist-packages/apt ]; then echo host packages; fi",
      {"drovertestpkg==1.0"}, "drover-test/python:3"));
  v1::Job job = WaitFor(id, v1::JobStatus::COMPLETED);
  EXPECT_EQ(Stdout(id), absl::StrCat(kMarker, " /drover/env\n"));
  EXPECT_THAT(PrepareLog(id), HasSubstr("(image drover-test/python:3; pip: drovertestpkg==1.0)"));
  EXPECT_THAT(PrepareLog(id), HasSubstr("Successfully installed drovertestpkg-1.0\n"));
}

// Horovod's build needs tools this image does not have: the job fails before it starts, and
// its message names every missing one (the build itself is tests/e2e/horovod_e2e_test.cc).
TEST_F(EnvironmentE2eTest, HorovodInAnImageWithoutCompilerOrMpiFailsNamingWhatIsMissing) {
  ASSERT_NO_FATAL_FAILURE(PutPythonImage());
  v1::JobSpec spec = Shell("echo never", {}, "drover-test/python:3");
  spec.set_distributed_backend(v1::JobSpec::MPI);
  spec.mutable_environment()->set_horovod(true);
  std::string id = jobs_->Submit(spec);
  v1::Job job = WaitFor(id, v1::JobStatus::FAILED);
  EXPECT_EQ(job.status().cause(), v1::JobStatus::LAUNCH_FAILED);
  const std::string message = job.status().message();
  EXPECT_THAT(message, HasSubstr("image 'drover-test/python:3' cannot build Horovod "
                                 "(environment.horovod) on n1: it lacks "));
  for (const char* missing :
       {"a C++ compiler (c++ or g++; Debian: g++)", "cmake (Debian: cmake)",
        "MPI headers and compiler wrapper (mpi.h, mpicxx; Debian: libopenmpi-dev)",
        "torch (import torch fails"}) {
    EXPECT_THAT(message, HasSubstr(missing));
  }
  EXPECT_THAT(PrepareLog(id), HasSubstr("drover: cannot build Horovod; the image lacks:\n"));
  EXPECT_THAT(Stdout(id), Not(HasSubstr("never")));
}

}  // namespace
}  // namespace drover
