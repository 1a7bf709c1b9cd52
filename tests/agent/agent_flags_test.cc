#include "agent/agent_flags.h"

#include <filesystem>
#include <fstream>

#include <sys/stat.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"

namespace drover::agent {
namespace {

using ::testing::HasSubstr;

constexpr char kCa[] = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

// A --python-dir that holds the module and a --ca, so that the other flags are what is
// checked.
class AgentFlagsTest : public ::testing::Test {
 protected:
  AgentFlagsTest() {
    std::filesystem::create_directories(dir_.path() + "/drover");
    std::ofstream(dir_.path() + "/drover/__init__.py") << "\n";
    std::ofstream(dir_.path() + "/ca.crt") << kCa;
  }
  absl::StatusOr<AgentSettings> Parse(std::vector<std::string> args) {
    args.insert(args.begin(), {"--python-dir", dir_.path(), "--ca", dir_.path() + "/ca.crt"});
    return ParseAgentFlags(args);
  }
  std::string Error(std::vector<std::string> args) {
    absl::StatusOr<AgentSettings> settings = Parse(std::move(args));
    EXPECT_EQ(settings.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(settings.status().message());
  }
  testing::TempDir dir_;
};

TEST_F(AgentFlagsTest, DefaultsKeepJobsAndSampleEveryTenSeconds) {
  absl::StatusOr<AgentSettings> settings = Parse({});
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_FALSE(settings->stop_jobs_on_exit);
  EXPECT_EQ(settings->metrics_interval, absl::Seconds(10));
  EXPECT_EQ(settings->scheduler, "127.0.0.1:7070");
  EXPECT_EQ(settings->environment_cache_bytes, int64_t{20} << 30);
  EXPECT_EQ(settings->gpu_count, -1);
}

TEST_F(AgentFlagsTest, ValuesAreTurnedIntoSettings) {
  absl::StatusOr<AgentSettings> settings =
      Parse({"--jobs-on-exit", "stop", "--label", "pool=gpu", "--memory", "2Gi",
             "--metrics-interval", "500ms", "--gpus", "0", "--log-level", "debug"});
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_TRUE(settings->stop_jobs_on_exit);
  EXPECT_EQ(settings->labels.at("pool"), "gpu");
  EXPECT_EQ(settings->memory_mib, 2048);
  EXPECT_EQ(settings->metrics_interval, absl::Milliseconds(500));
  EXPECT_EQ(settings->gpu_count, 0);
  EXPECT_EQ(settings->log_level, LogLevel::kDebug);
}

TEST_F(AgentFlagsTest, BadValuesNameTheFlagAndWhatToWrite) {
  EXPECT_THAT(Error({"--jobs-on-exit", "pause"}), HasSubstr("--jobs-on-exit: 'pause' is neither keep nor stop"));
  EXPECT_THAT(Error({"--label", "gpu"}), HasSubstr("--label: 'gpu' is not KEY=VALUE"));
  EXPECT_THAT(Error({"--metrics-interval", "10ms"}), HasSubstr("at least 100ms"));
  EXPECT_THAT(Error({"--gpus", "-1"}), HasSubstr("--gpus"));
  EXPECT_THAT(Error({"--memory", "lots"}), HasSubstr("--memory"));
  EXPECT_THAT(Error({"extra"}), HasSubstr("unexpected argument 'extra'"));
  absl::StatusOr<AgentSettings> no_module =
      ParseAgentFlags({"--python-dir", dir_.path() + "/nowhere"});
  EXPECT_THAT(std::string(no_module.status().message()), HasSubstr("holds no drover/__init__.py"));
}

TEST_F(AgentFlagsTest, SchedulerTakesSeveralDroverdsAndRefusesABadList) {
  absl::StatusOr<AgentSettings> settings =
      Parse({"--scheduler", "head-a.example.org:7070,head-b.example.org:7070"});
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->scheduler, "head-a.example.org:7070,head-b.example.org:7070");
  for (const char* bad : {"head-a:7070,", ",head-a:7070", "head-a:7070,,head-b:7070",
                          "head-a:7070, head-b:7070", ""}) {
    EXPECT_THAT(Error({"--scheduler", bad}), HasSubstr("--scheduler: '")) << bad;
  }
}

TEST_F(AgentFlagsTest, DatastoreRootsAreRepeatableAndSystemFoldersAreRefused) {
  absl::StatusOr<AgentSettings> settings = Parse({});
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_TRUE(settings->datastore_roots.empty()) << "no HOSTPATH datastores by default";
  EXPECT_FALSE(settings->allow_unpatched_runc);
  settings = Parse({"--datastore-root", "/srv/data", "--datastore-root", "/mnt/nfs",
                    "--allow-unpatched-runc"});
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_THAT(settings->datastore_roots, ::testing::ElementsAre("/srv/data", "/mnt/nfs"));
  EXPECT_TRUE(settings->allow_unpatched_runc);
  EXPECT_THAT(Error({"--datastore-root", "/"}), HasSubstr("--datastore-root: '/' would offer"));
  EXPECT_THAT(Error({"--datastore-root", "/etc"}), HasSubstr("--datastore-root: '/etc' is in /etc"));
  EXPECT_THAT(Error({"--datastore-root", "/var/lib/drover-agent"}),
              HasSubstr("Drover's own state"));
  EXPECT_THAT(Error({"--datastore-root", "/srv/../etc"}), HasSubstr("has a '..' component"));
}

TEST_F(AgentFlagsTest, JobsGetAUserNamespaceAndAPidsLimitByDefault) {
  absl::StatusOr<AgentSettings> settings = Parse({});
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->userns_host_id, 100000u);
  EXPECT_EQ(settings->userns_size, 65536u);
  EXPECT_EQ(settings->pids_limit, 4096);
  settings = Parse({"--userns-range", "200000:1000", "--pids-limit", "64"});
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->userns_host_id, 200000u);
  EXPECT_EQ(settings->userns_size, 1000u);
  EXPECT_EQ(settings->pids_limit, 64);
  settings = Parse({"--userns-range", "none", "--pids-limit", "0"});
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->userns_size, 0u);
  EXPECT_EQ(settings->pids_limit, 0);
  for (const char* bad : {"0:65536", "100000", "100000:0", "4294967295:2", "x:y", ""}) {
    EXPECT_THAT(Error({"--userns-range", bad}), HasSubstr("is not HOST_ID:SIZE")) << bad;
  }
  EXPECT_THAT(Error({"--pids-limit", "-1"}), HasSubstr("--pids-limit: -1 is negative"));
}

TEST_F(AgentFlagsTest, HelpNamesTheFlagsAndSetsNothingElse) {
  absl::StatusOr<AgentSettings> settings = ParseAgentFlags({"--help"});
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_TRUE(settings->help);
  EXPECT_THAT(settings->help_text, HasSubstr("--jobs-on-exit"));
  EXPECT_THAT(settings->help_text, HasSubstr("--metrics-interval"));
  EXPECT_THAT(settings->help_text, HasSubstr("--userns-range"));
  EXPECT_THAT(settings->help_text, HasSubstr("--pids-limit"));
}

TEST_F(AgentFlagsTest, TheCaCertificateIsReadAndAMissingOneIsNamed) {
  absl::StatusOr<AgentSettings> settings = Parse({});
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->ca_pem, kCa);
  EXPECT_THAT(Error({"--ca", dir_.path() + "/none.crt"}),
              HasSubstr("--ca: cannot read a certificate from"));
  std::ofstream(dir_.path() + "/garbage.crt") << "not a certificate\n";
  EXPECT_THAT(Error({"--ca", dir_.path() + "/garbage.crt"}), HasSubstr("tls/ca.crt"));
}

TEST_F(AgentFlagsTest, AJoinFileIsOneRegularFileAndNothingElseIsWaitedOnOrSwallowed) {
  const std::string token = std::string(64, 'a');
  std::ofstream(dir_.path() + "/join") << token << "\n";
  absl::StatusOr<AgentSettings> settings = Parse({"--join-file", dir_.path() + "/join"});
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->join_token, token);
  // An administrator's link to the file is followed.
  std::filesystem::create_symlink(dir_.path() + "/join", dir_.path() + "/join-link");
  settings = Parse({"--join-file", dir_.path() + "/join-link"});
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->join_token, token);
  // A FIFO is refused at once (nothing ever writes to it), a huge file is not read whole.
  ASSERT_EQ(mkfifo((dir_.path() + "/fifo").c_str(), 0600), 0);
  EXPECT_THAT(Error({"--join-file", dir_.path() + "/fifo"}), HasSubstr("not a regular file"));
  std::ofstream(dir_.path() + "/huge") << std::string(1 << 20, 'a');
  EXPECT_THAT(Error({"--join-file", dir_.path() + "/huge"}), HasSubstr("larger than"));
  EXPECT_THAT(Error({"--join-file", dir_.path() + "/none"}), HasSubstr("--join-file"));
}

}  // namespace
}  // namespace drover::agent
