// The environment cache's pure parts: the cache key and the packages in words, pip's options,
// the build script (pip, conda, Horovod), the failure summary and the eviction policy. The
// cache itself is in environment_cache_test.cc.
#include <string>
#include <vector>

#include "agent/environments/environment_cache.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/agent/environments/environment_test_util.h"

namespace drover::agent {
namespace {

using testing_util::PipRequest;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

TEST(EnvironmentKeyTest, IgnoresTheOrderAndRepeatsOfPackages) {
  EnvironmentRequest a = PipRequest({"numpy>=1.24", "drovertestpkg==1.0"});
  EnvironmentRequest b = PipRequest({"drovertestpkg==1.0", "numpy>=1.24", "numpy>=1.24"});
  EXPECT_EQ(EnvironmentKey(a), EnvironmentKey(b));
  EXPECT_THAT(EnvironmentKey(a), ::testing::MatchesRegex("[0-9a-f]{32}"));
}

TEST(EnvironmentKeyTest, DiffersForAnythingThatShapesTheResult) {
  const EnvironmentRequest base = PipRequest({"drovertestpkg==1.0"});
  const std::string key = EnvironmentKey(base);

  EnvironmentRequest other_version = PipRequest({"drovertestpkg==1.1"});
  EXPECT_NE(EnvironmentKey(other_version), key);

  EnvironmentRequest other_image = base;
  other_image.image_identity = "0123abcd";
  EXPECT_NE(EnvironmentKey(other_image), key);

  EnvironmentRequest as_conda = base;
  as_conda.conda_packages = as_conda.pip_packages;
  as_conda.pip_packages.clear();
  EXPECT_NE(EnvironmentKey(as_conda), key);

  EnvironmentRequest no_index = base;
  no_index.pip.set_no_index(true);
  EXPECT_NE(EnvironmentKey(no_index), key);

  EnvironmentRequest mirror = base;
  mirror.pip.set_index_url("https://mirror.example.com/simple");
  EXPECT_NE(EnvironmentKey(mirror), key);

  EnvironmentRequest wheels = base;
  wheels.pip.add_find_links("/srv/wheels");
  EXPECT_NE(EnvironmentKey(wheels), key);
  EnvironmentRequest other_wheels = base;
  other_wheels.pip.add_find_links("/srv/other-wheels");
  EXPECT_NE(EnvironmentKey(other_wheels), EnvironmentKey(wheels));

  // The image's name is not part of it: the same image under another name shares it.
  EnvironmentRequest renamed = base;
  renamed.image = "another-name";
  EXPECT_EQ(EnvironmentKey(renamed), key);
}

TEST(EnvironmentKeyTest, HorovodHasAKeyOfItsOwn) {
  EnvironmentRequest plain = PipRequest({"drovertestpkg==1.0"});
  EnvironmentRequest with_horovod = plain;
  with_horovod.horovod = true;
  EXPECT_NE(EnvironmentKey(with_horovod), EnvironmentKey(plain));
  EnvironmentRequest only_horovod = with_horovod;
  only_horovod.pip_packages.clear();
  EXPECT_NE(EnvironmentKey(only_horovod), EnvironmentKey(with_horovod));
  EXPECT_EQ(DescribePackages(with_horovod), "pip: drovertestpkg==1.0; horovod 0.28.1");
  EXPECT_EQ(DescribePackages(only_horovod), "horovod 0.28.1");
}

TEST(EnvironmentKeyTest, HostPythonIdentityIsStable) {
  EXPECT_EQ(HostPythonIdentity(), HostPythonIdentity());
  EXPECT_THAT(HostPythonIdentity(), ::testing::StartsWith("host:"));
}

TEST(DescribePackagesTest, CondaThenPipSortedWithoutRepeats) {
  EnvironmentRequest request = PipRequest({"torch==2.3", "numpy", "torch==2.3"});
  EXPECT_EQ(DescribePackages(request), "pip: numpy torch==2.3");
  request.conda_packages = {"python=3.11", "cudatoolkit"};
  EXPECT_EQ(DescribePackages(request), "conda: cudatoolkit python=3.11; pip: numpy torch==2.3");
  request.pip_packages.clear();
  EXPECT_EQ(DescribePackages(request), "conda: cudatoolkit python=3.11");
}

TEST(PipOptionsTest, KeepsTheClustersOrder) {
  v1::PipSettings settings;
  settings.set_index_url("https://a/simple");
  settings.add_extra_index_urls("https://b/simple");
  settings.add_find_links("/srv/wheels");
  settings.add_trusted_hosts("b");
  settings.set_no_index(true);
  EXPECT_THAT(PipOptions(settings),
              ElementsAre("--index-url", "https://a/simple", "--extra-index-url",
                          "https://b/simple", "--find-links", "/srv/wheels", "--trusted-host", "b",
                          "--no-index"));
  EXPECT_THAT(PipOptions(v1::PipSettings()), IsEmpty());
}

TEST(EnvironmentBuildScriptTest, PipPackagesGoIntoAVenvOverTheImagesPython) {
  EnvironmentRequest request = PipRequest({"drovertestpkg==1.0"});
  request.pip.add_find_links("/srv/wheels");
  request.pip.set_no_index(true);
  std::string script = EnvironmentBuildScript(request);
  EXPECT_THAT(script, HasSubstr("-m venv --without-pip --system-site-packages \"$E\""));
  EXPECT_THAT(script, HasSubstr("\"$E/bin/python\" -m pip install --no-cache-dir --no-input "
                                "--disable-pip-version-check --progress-bar off '--find-links' "
                                "'/srv/wheels' '--no-index' -r /job/requirements.txt"));
  EXPECT_THAT(script, HasSubstr("E=/drover/env\n"));
  EXPECT_THAT(script, HasSubstr("refuse 91 "));  // no python3
  EXPECT_THAT(script, HasSubstr("refuse 92 "));  // no pip
  EXPECT_THAT(script, HasSubstr("kind=venv"));
  EXPECT_THAT(script, Not(HasSubstr("conda")));
}

TEST(EnvironmentBuildScriptTest, CondaPackagesNeedCondaOrMambaAndComeFirst) {
  EnvironmentRequest request = PipRequest({"drovertestpkg==1.0"});
  request.conda_packages = {"python=3.11", "numpy"};
  std::string script = EnvironmentBuildScript(request);
  EXPECT_THAT(script, HasSubstr("C=$(command -v mamba || command -v conda) || refuse 90 "
                                "\"the image has neither conda nor mamba\""));
  // Sorted, each its own quoted word.
  EXPECT_THAT(script, HasSubstr("run \"$C\" create --yes --prefix \"$E\" 'numpy' 'python=3.11'"));
  EXPECT_LT(script.find("create --yes"), script.find("-m pip install"));
  EXPECT_THAT(script, HasSubstr("refuse 94 "));  // pip packages but no python in the env
  EXPECT_THAT(script, HasSubstr("kind=conda"));
  EXPECT_THAT(script, Not(HasSubstr("-m venv")));

  request.pip_packages.clear();
  EXPECT_THAT(EnvironmentBuildScript(request), Not(HasSubstr("pip install")));
}

TEST(EnvironmentBuildScriptTest, HorovodIsBuiltLastAgainstTheEnvironmentsTorchAndMpi) {
  EnvironmentRequest request = PipRequest({"drovertestpkg==1.0"});
  request.pip.set_index_url("https://mirror.example.com/simple");
  request.horovod = true;
  std::string script = EnvironmentBuildScript(request);
  // Every tool is looked for before the build, and what is missing is listed, not guessed.
  for (const char* check : {"command -v cmake", "mpicxx --showme:incdirs", "import torch",
                            "torch/extension.h", "pybind11/pybind11.h", "Python.h",
                            "exit 95"}) {
    EXPECT_THAT(script, HasSubstr(check));
  }
  EXPECT_THAT(script, HasSubstr("HOROVOD_WITH_PYTORCH=1 HOROVOD_WITH_MPI=1 "
                                "HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_MXNET=1 "
                                "HOROVOD_WITHOUT_GLOO=1 HOROVOD_CPU_OPERATIONS=MPI"));
  // From source, with the cluster's pip settings, against the packages already installed.
  EXPECT_THAT(script, HasSubstr("--no-build-isolation --no-binary horovod '--index-url' "
                                "'https://mirror.example.com/simple' horovod==0.28.1"));
  EXPECT_LT(script.find("-r /job/requirements.txt"), script.find("horovod==0.28.1"));
  EXPECT_LT(script.find("horovod==0.28.1"), script.find("kind=venv"));
  EXPECT_THAT(script, HasSubstr("horovodrun\" --check-build"));

  request.pip_packages.clear();
  script = EnvironmentBuildScript(request);
  EXPECT_THAT(script, Not(HasSubstr("-r /job/requirements.txt")));
  EXPECT_THAT(script, HasSubstr("horovod==0.28.1"));

  request.conda_packages = {"python=3.11"};
  script = EnvironmentBuildScript(request);
  EXPECT_LT(script.find("create --yes"), script.find("horovod==0.28.1"));
  EXPECT_LT(script.find("horovod==0.28.1"), script.find("kind=conda"));

  EXPECT_THAT(EnvironmentBuildScript(PipRequest({"a"})), Not(HasSubstr("orovod")));
}

TEST(EnvironmentBuildScriptTest, QuotesPackagesForTheShell) {
  EnvironmentRequest request;
  request.image = "host";
  request.conda_packages = {"it's;rm"};
  EXPECT_THAT(EnvironmentBuildScript(request), HasSubstr("'it'\\''s;rm'"));
}

TEST(BuildFailureSummaryTest, PrefersPipsErrorLines) {
  std::string output =
      "+ /drover/env/bin/python -m pip install -r /job/requirements.txt\n"
      "Looking in links: /srv/wheels\n"
      "ERROR: Could not find a version that satisfies the requirement nosuchpkg (from versions: "
      "none)\n"
      "ERROR: No matching distribution found for nosuchpkg\n";
  EXPECT_EQ(BuildFailureSummary(output),
            "ERROR: Could not find a version that satisfies the requirement nosuchpkg (from "
            "versions: none); ERROR: No matching distribution found for nosuchpkg");
  EXPECT_EQ(BuildFailureSummary("Collecting\n\nPackagesNotFoundError: The following packages "
                                "are not available\n  - nosuchpkg\n"),
            "PackagesNotFoundError: The following packages are not available");
}

TEST(BuildFailureSummaryTest, ElseTheLastLines) {
  EXPECT_EQ(BuildFailureSummary("one\ntwo\n\nthree\nfour\n"), "two; three; four");
  EXPECT_EQ(BuildFailureSummary(""), "");
  EXPECT_LE(BuildFailureSummary(std::string(5000, 'x')).size(), 1003u);
}

TEST(ChooseEvictionsTest, NothingWithinTheBudget) {
  absl::Time t = absl::FromUnixSeconds(1000);
  EXPECT_THAT(ChooseEvictions({{"a", 10, t, false}, {"b", 10, t, false}}, 20), IsEmpty());
}

TEST(ChooseEvictionsTest, LeastRecentlyUsedFirstUntilWithinTheBudget) {
  absl::Time t = absl::FromUnixSeconds(1000);
  std::vector<CachedEnvironmentInfo> entries = {
      {"newest", 10, t + absl::Seconds(3), false},
      {"oldest", 10, t, false},
      {"middle", 10, t + absl::Seconds(2), false},
      {"older", 10, t + absl::Seconds(1), false}};
  EXPECT_THAT(ChooseEvictions(entries, 25), ElementsAre("oldest", "older"));
  EXPECT_THAT(ChooseEvictions(entries, 0), ElementsAre("oldest", "older", "middle", "newest"));
}

TEST(ChooseEvictionsTest, NeverOneInUse) {
  absl::Time t = absl::FromUnixSeconds(1000);
  std::vector<CachedEnvironmentInfo> entries = {{"running-job", 100, t, true},
                                                {"idle", 10, t + absl::Seconds(1), false},
                                                {"recent", 10, t + absl::Seconds(2), false}};
  // In-use bytes still count: everything idle goes, and that is all it can do.
  EXPECT_THAT(ChooseEvictions(entries, 50), ElementsAre("idle", "recent"));
  EXPECT_THAT(ChooseEvictions(entries, 110), ElementsAre("idle"));
}

}  // namespace
}  // namespace drover::agent
