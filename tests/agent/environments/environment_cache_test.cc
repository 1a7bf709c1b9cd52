// EnvironmentCache without containers: the cache with a fake ContainerRuntime that plays the
// build container (writes the layer, the result and the output as the real script would),
// and what it adds to a job container. The pure parts (key, script, failure summary,
// eviction policy) are in environment_rules_test.cc; the real builds run in
// tests/e2e/environment_e2e_test.cc.
#include "agent/environments/environment_cache.h"

#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utime.h>

#include <cerrno>
#include <cstring>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/agent/environments/environment_test_util.h"
#include "tests/testing/fake_runtime.h"
#include "tests/testing/subprocess.h"

namespace drover::agent {
namespace {

namespace fs = std::filesystem;
using testing::FakeRuntime;
using testing_util::PipRequest;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// The host folder bound at `destination` in `spec`.
std::string HostPath(const ContainerSpec& spec, absl::string_view destination) {
  for (const BindMount& m : spec.mounts) {
    if (m.destination == destination) return m.source;
  }
  return "";
}

// What a successful pip build leaves: a venv with the package, the result, pip's output.
int SucceedingBuild(const ContainerSpec& spec) {
  std::string layer = HostPath(spec, kEnvironmentMount);
  fs::create_directories(layer + "/env/lib/python3.11/site-packages/drovertestpkg");
  std::ofstream(layer + "/env/lib/python3.11/site-packages/drovertestpkg/__init__.py")
      << std::string(4096, '#');
  std::ofstream(spec.job_dir + "/result")
      << "kind=venv\nsite=/drover/env/lib/python3.11/site-packages\n";
  std::ofstream(HostPath(spec, "/job/logs") + "/rank-0.stdout", std::ios::app)
      << "Successfully installed drovertestpkg-1.0\n";
  return 0;
}

class EnvironmentCacheTest : public ::testing::Test {
 protected:
  void SetUp() override { runtime_.play = SucceedingBuild; }

  EnvironmentCache::BuildContext Context(const std::string& name) {
    // Not created: the cache makes it.
    std::string log_dir = absl::StrCat(dir_.path(), "/attempts/", name);
    return {.job_id = name,
            .node_name = "n1",
            .log_dir = log_dir,
            .building = [this] { ++building_reports_; },
            .stopped = [this] { return stopped_.load(); }};
  }
  std::string LogOf(const std::string& name) {
    return ReadFile(EnvironmentCache::LogPath(absl::StrCat(dir_.path(), "/attempts/", name)));
  }
  std::string root() const { return dir_.path() + "/environments"; }

  testing::TempDir dir_;
  FakeRuntime runtime_;
  std::atomic<int> building_reports_{0};
  std::atomic<bool> stopped_{false};
};

TEST_F(EnvironmentCacheTest, BuildsOnceAndReusesTheLayer) {
  EnvironmentCache cache({.root = root()}, runtime_);
  EnvironmentRequest request = PipRequest({"drovertestpkg==1.0"});
  absl::StatusOr<EnvironmentCache::Prepared> first = cache.Get(request, Context("j-1"));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(runtime_.runs, 1);
  EXPECT_EQ(building_reports_, 1);
  const std::string key = EnvironmentKey(request);
  EXPECT_EQ(first->key, key);
  EXPECT_EQ(first->layer_dir, root() + "/" + key + "/layer");
  EXPECT_EQ(first->kind, "venv");
  EXPECT_EQ(first->site_packages, "/drover/env/lib/python3.11/site-packages");
  EXPECT_THAT(LogOf("j-1"), HasSubstr("drover: building environment " + key + " on n1"));
  EXPECT_THAT(LogOf("j-1"), HasSubstr("Successfully installed drovertestpkg-1.0\n"));
  EXPECT_THAT(LogOf("j-1"), HasSubstr("drover: environment " + key + " built in "));
  EXPECT_THAT(ReadFile(root() + "/" + key + "/environment.json"), HasSubstr("\"bytes\": "));

  // Reordered packages: the same environment, no second build.
  absl::StatusOr<EnvironmentCache::Prepared> second =
      cache.Get(PipRequest({"drovertestpkg==1.0", "drovertestpkg==1.0"}), Context("j-2"));
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(runtime_.runs, 1);
  EXPECT_EQ(building_reports_, 1);
  EXPECT_EQ(second->layer_dir, first->layer_dir);
  EXPECT_EQ(LogOf("j-2"), absl::StrCat("drover: using cached environment ", key,
                                       " on n1 (image host; pip: drovertestpkg==1.0)\n"));
  // Nothing of the build is left but the environment.
  for (const auto& entry : fs::directory_iterator(root())) {
    EXPECT_EQ(entry.path().filename(), key);
  }
  EXPECT_FALSE(fs::exists(first->layer_dir + "/tmp"));
}

TEST_F(EnvironmentCacheTest, FilesTheBuildContainerPlantsNeitherLeakNorHangTheAgent) {
  // The build runs packages' own code as the container's root: it can leave links and
  // FIFOs where the agent reads and writes. A host secret must not reach the preparation
  // log (which the job's owner reads), no host file may be written through a link, and
  // nothing may block the agent.
  const std::string secret = dir_.path() + "/host-secret";
  const std::string victim = dir_.path() + "/host-victim";
  { std::ofstream(secret) << "root:$6$secret-hash"; }
  { std::ofstream(victim) << "untouched\n"; }
  runtime_.play = [&](const ContainerSpec& spec) {
    int code = SucceedingBuild(spec);
    const std::string logs = HostPath(spec, "/job/logs");
    fs::remove(logs + "/rank-0.stderr");
    fs::create_symlink(secret, logs + "/rank-0.stderr");
    fs::remove(spec.job_dir + "/result");
    EXPECT_EQ(mkfifo((spec.job_dir + "/result").c_str(), 0644), 0);
    return code;
  };
  EnvironmentCache cache({.root = root()}, runtime_);
  absl::StatusOr<EnvironmentCache::Prepared> built =
      cache.Get(PipRequest({"evil==1.0"}), Context("j-1"));
  EXPECT_TRUE(built.ok()) << built.status();
  EXPECT_THAT(LogOf("j-1"), Not(HasSubstr("secret-hash")));

  // A preparation log replaced by a link: the cache's next lines go nowhere, not into the
  // link's target.
  runtime_.play = [&](const ContainerSpec& spec) {
    int code = SucceedingBuild(spec);
    const std::string log = HostPath(spec, "/job/logs") + "/rank-0.stdout";
    fs::remove(log);
    fs::create_symlink(victim, log);
    return code;
  };
  (void)cache.Get(PipRequest({"evil==2.0"}), Context("j-2"));
  EXPECT_EQ(ReadFile(victim), "untouched\n");

  // A failing build whose log is a FIFO: the failure is reported, the agent does not block
  // reading it for the summary.
  runtime_.play = [&](const ContainerSpec& spec) {
    const std::string log = HostPath(spec, "/job/logs") + "/rank-0.stdout";
    fs::remove(log);
    EXPECT_EQ(mkfifo(log.c_str(), 0644), 0);
    return 1;
  };
  absl::StatusOr<EnvironmentCache::Prepared> failed =
      cache.Get(PipRequest({"evil==3.0"}), Context("j-3"));
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kFailedPrecondition) << failed.status();
  EXPECT_THAT(std::string(failed.status().message()), HasSubstr("failed with exit code 1"));

  // A stderr of a gigabyte (sparse): only its tail reaches the preparation log.
  runtime_.play = [&](const ContainerSpec& spec) {
    int code = SucceedingBuild(spec);
    const std::string err = HostPath(spec, "/job/logs") + "/rank-0.stderr";
    {
      std::ofstream out(err, std::ios::trunc);
    }
    fs::resize_file(err, std::uintmax_t{1} << 30);
    std::ofstream(err, std::ios::app) << "TAIL-OF-STDERR\n";
    return code;
  };
  ASSERT_TRUE(cache.Get(PipRequest({"huge==1.0"}), Context("j-4")).ok());
  EXPECT_LT(LogOf("j-4").size(), 256u << 10);
  EXPECT_THAT(LogOf("j-4"), HasSubstr("TAIL-OF-STDERR"));
}

TEST_F(EnvironmentCacheTest, TheBuildContainerRunsTheScriptInTheJobsImage) {
  ContainerSpec seen;
  runtime_.play = [&](const ContainerSpec& spec) {
    seen = spec;
    seen.args.push_back(ReadFile(spec.job_dir + "/build.sh"));
    seen.args.push_back(ReadFile(spec.job_dir + "/requirements.txt"));
    return SucceedingBuild(spec);
  };
  fs::create_directories(dir_.path() + "/wheels");
  EnvironmentCache cache({.root = root()}, runtime_);
  EnvironmentRequest request = PipRequest({"b==2", "a==1"});
  request.image = "team/py:1";
  request.image_rootfs = dir_.path() + "/rootfs";
  request.image_env = {"PATH=/opt/py/bin:/bin", "LANG=C.UTF-8"};
  request.pip.add_find_links(dir_.path() + "/wheels");
  request.pip.add_find_links("https://wheels.example.com/");
  ASSERT_TRUE(cache.Get(request, Context("j-1")).ok());
  EXPECT_EQ(seen.image_rootfs, request.image_rootfs);
  EXPECT_EQ(seen.cwd, "/job");
  EXPECT_THAT(seen.env, ::testing::IsSupersetOf({"PATH=/opt/py/bin:/bin", "LANG=C.UTF-8",
                                                 "HOME=/root", "PIP_CONFIG_FILE=/dev/null"}));
  EXPECT_EQ(HostPath(seen, dir_.path() + "/wheels"), dir_.path() + "/wheels");
  ASSERT_EQ(seen.mounts.size(), 3u);  // the layer, the log folder, the one wheel folder
  EXPECT_TRUE(seen.mounts[2].read_only);
  EXPECT_FALSE(seen.mounts[0].read_only);
  EXPECT_THAT(seen.id, ::testing::StartsWith("drover-env-"));
  EXPECT_THAT(seen.args, ::testing::Contains("/bin/sh"));
  EXPECT_EQ(seen.args.back(), "a==1\nb==2\n");
  EXPECT_EQ(seen.args[seen.args.size() - 2], EnvironmentBuildScript(request));
}

TEST_F(EnvironmentCacheTest, AMissingWheelFolderFailsNamingIt) {
  EnvironmentCache cache({.root = root()}, runtime_);
  EnvironmentRequest request = PipRequest({"a==1"});
  request.pip.add_find_links("/no/such/wheels");
  absl::StatusOr<EnvironmentCache::Prepared> got = cache.Get(request, Context("j-1"));
  EXPECT_EQ(got.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(got.status().message()),
              HasSubstr("pip find-links folder '/no/such/wheels' (droverd --pip-find-links) does "
                        "not exist on node n1"));
  EXPECT_EQ(runtime_.runs, 0);
}

TEST_F(EnvironmentCacheTest, AFailedBuildSaysWhyLeavesNothingAndIsRetried) {
  runtime_.play = [](const ContainerSpec& spec) {
    std::ofstream(HostPath(spec, "/job/logs") + "/rank-0.stdout", std::ios::app)
        << "ERROR: No matching distribution found for nosuchpkg\n";
    return 1;
  };
  EnvironmentCache cache({.root = root()}, runtime_);
  EnvironmentRequest request = PipRequest({"nosuchpkg"});
  absl::StatusOr<EnvironmentCache::Prepared> got = cache.Get(request, Context("j-1"));
  EXPECT_EQ(got.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(got.status().message()),
              HasSubstr("building the environment (pip: nosuchpkg) in image 'host' on n1 failed "
                        "with exit code 1: ERROR: No matching distribution found for nosuchpkg; "
                        "the whole output: drover logs j-1 --prepare"));
  EXPECT_THAT(LogOf("j-1"), HasSubstr("drover: building environment "));
  EXPECT_THAT(LogOf("j-1"), HasSubstr(" failed: "));
  EXPECT_TRUE(fs::is_empty(root()));
  // Nothing was cached: the next attempt builds again.
  EXPECT_FALSE(cache.Get(request, Context("j-2")).ok());
  EXPECT_EQ(runtime_.runs, 2);
}

TEST_F(EnvironmentCacheTest, TheScriptsRefusalsBecomeMessages) {
  struct Case {
    int code;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {90, "image 'host' has neither conda nor mamba; remove conda_packages or use an "
                "image with conda"},
           {91, "image 'host' has no python3; pip_packages need an image with python3 and pip"},
           {92, "image 'host''s python3 has no pip"},
           {93, "image 'host''s python3 has no venv module"},
           {94, "add python to conda_packages"}}) {
    runtime_.play = [&](const ContainerSpec&) { return c.code; };
    EnvironmentCache cache({.root = root()}, runtime_);
    EnvironmentRequest request = PipRequest({"a"});
    request.conda_packages = {"numpy"};
    absl::StatusOr<EnvironmentCache::Prepared> got =
        cache.Get(request, Context(absl::StrCat("j-", c.code)));
    EXPECT_EQ(got.status().code(), absl::StatusCode::kFailedPrecondition) << c.code;
    EXPECT_THAT(std::string(got.status().message()), HasSubstr(c.message)) << c.code;
  }
}

TEST_F(EnvironmentCacheTest, AnImageThatCannotBuildHorovodIsToldEverythingItLacks) {
  runtime_.play = [](const ContainerSpec& spec) {
    std::ofstream(spec.job_dir + "/missing")
        << "a C++ compiler (c++ or g++; Debian: g++)\n"
           "MPI headers and compiler wrapper (mpi.h, mpicxx; Debian: libopenmpi-dev)\n";
    return 95;
  };
  EnvironmentCache cache({.root = root()}, runtime_);
  EnvironmentRequest request = PipRequest({});
  request.horovod = true;
  absl::StatusOr<EnvironmentCache::Prepared> got = cache.Get(request, Context("j-hvd"));
  EXPECT_EQ(got.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(got.status().message(),
            "image 'host' cannot build Horovod (environment.horovod) on n1: it lacks a C++ "
            "compiler (c++ or g++; Debian: g++), MPI headers and compiler wrapper (mpi.h, "
            "mpicxx; Debian: libopenmpi-dev); use an image with them, or leave horovod out");

  // A list the build container planted as a link is not followed.
  runtime_.play = [](const ContainerSpec& spec) {
    fs::create_symlink("/etc/shadow", spec.job_dir + "/missing");
    return 95;
  };
  got = cache.Get(request, Context("j-hvd-link"));
  EXPECT_EQ(got.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("it lacks a tool the build needs"));
  EXPECT_THAT(std::string(got.status().message()), Not(HasSubstr("root:")));

  // A FIFO there does not hang the agent.
  runtime_.play = [](const ContainerSpec& spec) {
    EXPECT_EQ(mkfifo((spec.job_dir + "/missing").c_str(), 0600), 0) << strerror(errno);
    return 95;
  };
  got = cache.Get(request, Context("j-hvd-fifo"));
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("it lacks a tool the build needs"));

  // A huge list is cut: the message stays short.
  runtime_.play = [](const ContainerSpec& spec) {
    std::ofstream(spec.job_dir + "/missing") << std::string(8 << 20, 'x');
    return 95;
  };
  got = cache.Get(request, Context("j-hvd-huge"));
  EXPECT_EQ(got.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_LT(got.status().message().size(), 8192u);
}

TEST_F(EnvironmentCacheTest, ConcurrentAttemptsBuildOnce) {
  absl::Notification release;
  runtime_.release = &release;
  EnvironmentCache cache({.root = root()}, runtime_);
  EnvironmentRequest request = PipRequest({"drovertestpkg==1.0"});
  std::vector<absl::StatusOr<EnvironmentCache::Prepared>> got(3);
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&, i] { got[i] = cache.Get(request, Context(absl::StrCat("j-", i))); });
  }
  // Every attempt reported BUILDING_ENVIRONMENT (one builds, two wait) before the build ends.
  while (building_reports_ < 3) absl::SleepFor(absl::Milliseconds(5));
  release.Notify();
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(runtime_.runs, 1);
  int waited = 0;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(got[i].ok()) << got[i].status();
    std::string log = LogOf(absl::StrCat("j-", i));
    if (absl::StrContains(log, "which another job is building")) {
      ++waited;
      EXPECT_THAT(log, HasSubstr("drover: using cached environment"));
    }
  }
  EXPECT_EQ(waited, 2);
}

TEST_F(EnvironmentCacheTest, AStopEndsTheBuildAndLeavesNothing) {
  absl::Notification never;
  runtime_.release = &never;
  EnvironmentCache cache({.root = root()}, runtime_);
  std::thread stopper([&] {
    while (runtime_.runs == 0) absl::SleepFor(absl::Milliseconds(5));
    stopped_ = true;
  });
  absl::StatusOr<EnvironmentCache::Prepared> got =
      cache.Get(PipRequest({"drovertestpkg==1.0"}), Context("j-1"));
  stopper.join();
  EXPECT_EQ(got.status().code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(fs::is_empty(root()));
}

TEST_F(EnvironmentCacheTest, EvictsTheLeastRecentlyUsedBeyondTheBudgetButNeverOneInUse) {
  auto get = [&](EnvironmentCache& cache, const std::string& package) {
    absl::StatusOr<EnvironmentCache::Prepared> got =
        cache.Get(PipRequest({package}), Context(package));
    EXPECT_TRUE(got.ok()) << got.status();
    return got.ok() ? *got : EnvironmentCache::Prepared();
  };
  auto set_last_used = [&](const std::string& key, int64_t seconds) {
    std::string stamp = root() + "/" + key + "/last-used";
    struct utimbuf times {seconds, seconds};
    ASSERT_EQ(utime(stamp.c_str(), &times), 0);
  };
  auto exists = [&](const std::string& key) { return fs::exists(root() + "/" + key); };
  // What one environment takes on this disk (folders count too).
  int64_t size = 0;
  {
    EnvironmentCache probe({.root = root()}, runtime_);
    std::string key = get(probe, "probe==1").key;
    std::string meta = ReadFile(root() + "/" + key + "/environment.json");
    size = std::stoll(meta.substr(meta.find("\"bytes\": ") + 9));
    fs::remove_all(root() + "/" + key);
  }
  ASSERT_GT(size, 0);
  // Room for two and a half.
  EnvironmentCache cache({.root = root(), .budget_bytes = size * 5 / 2}, runtime_);
  std::string a = get(cache, "a==1").key;  // released at once
  std::string b = get(cache, "b==1").key;
  set_last_used(a, 1000);
  set_last_used(b, 2000);
  EXPECT_TRUE(exists(a) && exists(b));

  // A third, held: over the budget, so the least recently used goes.
  EnvironmentCache::Prepared c = get(cache, "c==1");
  EXPECT_FALSE(exists(a));
  EXPECT_TRUE(exists(b) && exists(c.key));

  // c is now the least recently used, but in use: b goes instead.
  set_last_used(c.key, 500);
  EnvironmentCache::Prepared d = get(cache, "d==1");
  EXPECT_TRUE(exists(c.key) && exists(d.key));
  EXPECT_FALSE(exists(b));
  EXPECT_TRUE(fs::exists(c.layer_dir + "/env"));
}

TEST_F(EnvironmentCacheTest, RemovesUnfinishedBuildsAndDeletionsAtStart) {
  fs::create_directories(root() + "/.build-0123-1-0/layer/env");
  fs::create_directories(root() + "/.trash-4567-1-0/layer");
  EnvironmentCache cache({.root = root()}, runtime_);
  cache.RemoveLeftovers();
  EXPECT_TRUE(fs::is_empty(root()));
}

TEST(EnvironmentAddToTest, AVenvPrependsPathAndPythonPathAndMountsTheLayerReadOnly) {
  ContainerSpec spec;
  spec.env = {"PATH=/usr/bin:/bin", "PYTHONPATH=/job/code/lib", "HOME=/root"};
  EnvironmentCache::Prepared env{.key = "k",
                                 .layer_dir = "/w/environments/k/layer",
                                 .kind = "venv",
                                 .site_packages = "/drover/env/lib/python3.11/site-packages"};
  EnvironmentCache::AddTo(env, &spec);
  EXPECT_THAT(spec.env, ElementsAre("PATH=/drover/env/bin:/usr/bin:/bin",
                                    "PYTHONPATH=/drover/env/lib/python3.11/site-packages:/job/code/lib",
                                    "HOME=/root", "VIRTUAL_ENV=/drover/env"));
  ASSERT_EQ(spec.mounts.size(), 1u);
  EXPECT_EQ(spec.mounts[0].source, "/w/environments/k/layer");
  EXPECT_EQ(spec.mounts[0].destination, "/drover");
  EXPECT_TRUE(spec.mounts[0].read_only);
}

TEST(EnvironmentAddToTest, ACondaEnvironmentSetsCondaPrefixAndLeavesPythonPathAlone) {
  ContainerSpec spec;
  spec.env = {"PATH=/usr/bin"};
  EnvironmentCache::AddTo({.key = "k", .layer_dir = "/l", .kind = "conda",
                           .site_packages = "/drover/env/lib/python3.12/site-packages"},
                          &spec);
  EXPECT_THAT(spec.env, ElementsAre("PATH=/drover/env/bin:/usr/bin", "CONDA_PREFIX=/drover/env"));
}

// A work folder whose path holds a space: mountinfo writes it escaped (`\040`). A mount
// left under a build folder (a container the killed agent left) must still be seen, or
// removing the folder reaches through the mount and deletes what it shows.
TEST(EnvironmentLeftoversTest, AMountUnderALeftoverBuildFolderIsSeenWhenThePathHoldsASpace) {
  if (geteuid() != 0) GTEST_SKIP() << "mounting needs root";
  // A mount namespace of this test's process only (ctest runs each test in its own).
  ASSERT_EQ(unshare(CLONE_NEWNS), 0) << strerror(errno);
  ASSERT_EQ(mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), 0) << strerror(errno);
  testing::TempDir dir;
  const std::string root = dir.path() + "/work dir/environments";
  const std::string leftover = root + "/.build-0123456789abcdef-77-0";
  const std::string mountpoint = leftover + "/bundle/rootfs";
  const std::string shown = dir.path() + "/shown";
  fs::create_directories(mountpoint);
  fs::create_directories(shown);
  std::ofstream(shown + "/data") << "not the cache's";
  ASSERT_EQ(mount(shown.c_str(), mountpoint.c_str(), nullptr, MS_BIND, nullptr), 0)
      << strerror(errno);

  FakeRuntime runtime;
  EnvironmentCache cache({.root = root}, runtime);
  cache.RemoveLeftovers();

  EXPECT_EQ(ReadFile(shown + "/data"), "not the cache's");
  EXPECT_TRUE(fs::exists(leftover));
  umount2(mountpoint.c_str(), MNT_DETACH);
}

}  // namespace
}  // namespace drover::agent
