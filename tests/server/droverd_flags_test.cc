#include "server/droverd_flags.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"

namespace drover::server {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

class DroverdFlagsTest : public ::testing::Test {
 protected:
  absl::StatusOr<DroverdSettings> Parse(std::vector<std::string> args) {
    args.insert(args.begin(), {"--state-dir", dir_.path() + "/state"});
    return ParseDroverdFlags(args);
  }
  // The message of a setting refused (not a command-line mistake: those are not logged).
  std::string Error(std::vector<std::string> args) {
    absl::StatusOr<DroverdSettings> settings = Parse(std::move(args));
    EXPECT_EQ(settings.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_FALSE(IsDroverdUsageError(settings.status())) << settings.status();
    return std::string(settings.status().message());
  }
  // The message of a mistake in the command line itself.
  std::string UsageError(std::vector<std::string> args) {
    absl::StatusOr<DroverdSettings> settings = Parse(std::move(args));
    EXPECT_EQ(settings.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(IsDroverdUsageError(settings.status())) << settings.status();
    return std::string(settings.status().message());
  }
  std::string WriteFile(const std::string& name, const std::string& text) {
    std::string path = dir_.path() + "/" + name;
    std::ofstream(path) << text;
    return path;
  }
  testing::TempDir dir_;
};

TEST_F(DroverdFlagsTest, StoreIsSqliteByDefaultAndTakesOnlyAPostgresUri) {
  absl::StatusOr<DroverdSettings> settings = Parse({});
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->options.store, "");
  settings = Parse({"--store", "postgres://drover@db.example/drover"});
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->options.store, "postgres://drover@db.example/drover");
  settings = Parse({"--store", "postgresql:///drover?host=/run/postgresql"});
  ASSERT_TRUE(settings.ok()) << settings.status();
  // Refused without repeating the value, which may hold a password.
  std::string error = Error({"--store", "mysql://root:hunter2@db/drover"});
  EXPECT_THAT(error, HasSubstr("--store: not a PostgreSQL URI"));
  EXPECT_THAT(error, ::testing::Not(HasSubstr("hunter2")));
}

TEST_F(DroverdFlagsTest, LeaderLeaseAndAdvertisedAddressAreCheckedAndNamed) {
  absl::StatusOr<DroverdSettings> settings = Parse({});
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->options.leader_lease_ttl, absl::Seconds(5));
  EXPECT_EQ(settings->options.advertise_address, "");
  settings = Parse({"--leader-lease-ttl", "10s", "--advertise-address", "head-2.example.org:7070"});
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->options.leader_lease_ttl, absl::Seconds(10));
  EXPECT_EQ(settings->options.advertise_address, "head-2.example.org:7070");
  settings = Parse({"--advertise-address", "[fd00::2]:7070"});
  ASSERT_TRUE(settings.ok()) << settings.status();

  settings = Parse({"--leader-lease-ttl", "0"});
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->options.leader_lease_ttl, absl::ZeroDuration()) << "no lease";
  EXPECT_THAT(Error({"--leader-lease-ttl", "100ms"}), HasSubstr("--leader-lease-ttl: give 1s to 10m"));
  EXPECT_THAT(Error({"--leader-lease-ttl", "1h"}), HasSubstr("--leader-lease-ttl"));
  EXPECT_THAT(Error({"--leader-lease-ttl", "soon"}), HasSubstr("--leader-lease-ttl: 'soon'"));
  // What a standby names to agents and clients: one HOST:PORT, nothing else.
  for (const char* bad : {"head-2", "head-2:", ":7070", "head-2:0", "head-2:70700",
                          "head-2:7070,evil:7070", "head 2:7070", "head-2:7070\n",
                          "https://head-2:7070/x", "head-2:7x"}) {
    EXPECT_THAT(Error({"--advertise-address", bad}), HasSubstr("--advertise-address: '"))
        << bad;
  }
}

TEST_F(DroverdFlagsTest, DefaultsAreTheDocumentedOnes) {
  absl::StatusOr<DroverdSettings> settings = Parse({});
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_FALSE(settings->help);
  EXPECT_EQ(settings->log_level, LogLevel::kInfo);
  EXPECT_EQ(settings->address_file, "");
  const DroverdOptions& o = settings->options;
  EXPECT_EQ(o.listen, "127.0.0.1:7070");
  EXPECT_EQ(o.state_dir, dir_.path() + "/state");
  EXPECT_EQ(o.metrics_listen, "");
  EXPECT_EQ(o.shutdown_grace, absl::Seconds(10));
  EXPECT_EQ(o.core.launch_timeout, absl::Minutes(15));
  EXPECT_EQ(o.core.heartbeat_interval, absl::Seconds(2));
  EXPECT_EQ(o.core.lease, absl::Seconds(15));
  EXPECT_EQ(o.core.node_loss_pause_fraction, 0.5);
  EXPECT_EQ(o.node_certificate_validity, absl::Hours(720));
  EXPECT_EQ(o.audit_retention, absl::Hours(2160));
  EXPECT_EQ(o.audit_max_records, 1'000'000);
  EXPECT_EQ(o.retention.logs, absl::Hours(720));
  EXPECT_EQ(o.retention.snapshots, absl::Hours(720));
  EXPECT_EQ(o.retention.outputs, absl::Hours(2160));
  EXPECT_EQ(o.retention.upload_grace, absl::Hours(24));
  EXPECT_EQ(o.retention.interval, absl::Hours(1));
  EXPECT_EQ(o.blob_quota_bytes, int64_t{100} << 30);
  EXPECT_EQ(o.log_limits.max_log_bytes, int64_t{256} << 20);
  EXPECT_EQ(o.log_limits.max_metric_records, 1'000'000);
  EXPECT_EQ(o.max_open_log_files, 1024);
  EXPECT_EQ(o.admin_socket, "");
  EXPECT_EQ(o.secrets_key, "");
  EXPECT_EQ(o.bootstrap_admin_token, "");
  EXPECT_EQ(o.tls.certificate_file, "");
  EXPECT_TRUE(o.tls.extra_names.empty());
  EXPECT_EQ(o.core.pip.ByteSizeLong(), 0u) << "pip's own defaults: PyPI";
  EXPECT_TRUE(o.core.datastore_roots.allowed.empty()) << "no HOSTPATH datastores by default";
  EXPECT_THAT(o.core.datastore_roots.refused, ElementsAre(dir_.path() + "/state"));
}

TEST_F(DroverdFlagsTest, EveryFlagReachesItsOption) {
  absl::StatusOr<DroverdSettings> settings = Parse(
      {"--listen", "0.0.0.0:7171", "--address-file", "/run/addr", "--log-level", "debug",
       "--metrics-listen", "127.0.0.1:9090", "--shutdown-grace", "3s", "--launch-timeout", "0",
       "--heartbeat-interval", "500ms", "--node-lease", "5s", "--node-loss-pause-fraction",
       "0.25", "--tls-cert", "/c.pem", "--tls-key", "/k.pem", "--tls-ca", "/ca.pem",
       "--tls-san", "head", "--tls-san", "10.0.0.1", "--secrets-key", "/s.key",
       "--admin-socket", "none", "--audit-retention", "1h", "--audit-max-records", "1000",
       "--node-cert-validity", "1m", "--pip-index-url", "https://pypi.example.com/simple",
       "--pip-extra-index-url", "https://extra.example.com/simple", "--pip-find-links",
       "/srv/wheels", "--pip-trusted-host", "pypi.example.com", "--datastore-root",
       "/srv/data", "--datastore-root", "/mnt/nfs", "--max-log-bytes", "0",
       "--max-metric-records", "7", "--max-open-log-files", "1000000", "--log-retention", "0",
       "--snapshot-retention", "2h", "--outputs-retention", "3h", "--upload-grace", "1s",
       "--gc-interval", "10m", "--blob-quota", "0"});
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->address_file, "/run/addr");
  EXPECT_EQ(settings->log_level, LogLevel::kDebug);
  const DroverdOptions& o = settings->options;
  EXPECT_EQ(o.listen, "0.0.0.0:7171");
  EXPECT_EQ(o.metrics_listen, "127.0.0.1:9090");
  EXPECT_EQ(o.shutdown_grace, absl::Seconds(3));
  EXPECT_EQ(o.core.launch_timeout, absl::ZeroDuration());
  EXPECT_EQ(o.core.heartbeat_interval, absl::Milliseconds(500));
  EXPECT_EQ(o.core.lease, absl::Seconds(5));
  EXPECT_EQ(o.core.node_loss_pause_fraction, 0.25);
  EXPECT_EQ(o.tls.certificate_file, "/c.pem");
  EXPECT_EQ(o.tls.key_file, "/k.pem");
  EXPECT_EQ(o.tls.ca_file, "/ca.pem");
  EXPECT_THAT(o.tls.extra_names, ElementsAre("head", "10.0.0.1"));
  EXPECT_EQ(o.secrets_key, "/s.key");
  EXPECT_EQ(o.admin_socket, "none");
  EXPECT_EQ(o.audit_retention, absl::Hours(1));
  EXPECT_EQ(o.audit_max_records, 1000);
  EXPECT_EQ(o.node_certificate_validity, absl::Minutes(1));
  EXPECT_EQ(o.core.pip.index_url(), "https://pypi.example.com/simple");
  EXPECT_THAT(o.core.pip.extra_index_urls(), ElementsAre("https://extra.example.com/simple"));
  EXPECT_THAT(o.core.pip.find_links(), ElementsAre("/srv/wheels"));
  EXPECT_THAT(o.core.pip.trusted_hosts(), ElementsAre("pypi.example.com"));
  EXPECT_FALSE(o.core.pip.no_index());
  EXPECT_THAT(o.core.datastore_roots.allowed, ElementsAre("/srv/data", "/mnt/nfs"));
  EXPECT_EQ(o.log_limits.max_log_bytes, 0);
  EXPECT_EQ(o.log_limits.max_metric_records, 7);
  EXPECT_EQ(o.max_open_log_files, 1'000'000);
  EXPECT_EQ(o.retention.logs, absl::ZeroDuration());
  EXPECT_EQ(o.retention.snapshots, absl::Hours(2));
  EXPECT_EQ(o.retention.outputs, absl::Hours(3));
  EXPECT_EQ(o.retention.upload_grace, absl::Seconds(1));
  EXPECT_EQ(o.retention.interval, absl::Minutes(10));
  EXPECT_EQ(o.blob_quota_bytes, 0);

  settings = Parse({"--pip-no-index", "--pip-find-links", "/srv/wheels"});
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_TRUE(settings->options.core.pip.no_index());
}

TEST_F(DroverdFlagsTest, TheConfigFileSetsWhatTheCommandLineDoesNot) {
  std::string config = WriteFile("droverd.conf",
                                 "# droverd\n"
                                 "listen = 0.0.0.0:7272\n"
                                 "launch-timeout = 5m\n"
                                 "datastore-root = /srv/data\n");
  absl::StatusOr<DroverdSettings> settings =
      Parse({"--config", config, "--launch-timeout", "1m"});
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->options.listen, "0.0.0.0:7272");
  EXPECT_EQ(settings->options.core.launch_timeout, absl::Minutes(1)) << "the command line wins";
  EXPECT_THAT(settings->options.core.datastore_roots.allowed, ElementsAre("/srv/data"));

  // A bad value in the file is checked like one on the command line, and logged.
  config = WriteFile("bad.conf", "upload-grace = 0\n");
  EXPECT_THAT(Error({"--config", config}), HasSubstr("--upload-grace: at least 1s"));
  config = WriteFile("unknown.conf", "no-such-flag = 1\n");
  EXPECT_THAT(Error({"--config", config}), HasSubstr("no-such-flag"));
  absl::StatusOr<DroverdSettings> missing = Parse({"--config", dir_.path() + "/none.conf"});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound) << "droverd exits 1, not 2";
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("cannot be read"));
}

TEST_F(DroverdFlagsTest, BadDurationsNameTheFlagAndHowToWriteOne) {
  for (const char* flag :
       {"shutdown-grace", "launch-timeout", "heartbeat-interval", "node-lease",
        "node-cert-validity", "audit-retention", "log-retention", "snapshot-retention",
        "outputs-retention", "upload-grace", "gc-interval"}) {
    for (const char* bad : {"soon", "-1s", "", "10", "1e400h"}) {
      EXPECT_THAT(Error({std::string("--") + flag, bad}),
                  HasSubstr(absl::StrCat("--", flag, ": '", bad,
                                         "' is not a duration; write it like ")))
          << flag << " " << bad;
    }
  }
}

TEST_F(DroverdFlagsTest, ValuesBelowTheirFloorAreRefusedWithTheFloor) {
  EXPECT_EQ(Error({"--audit-retention", "59m"}), "--audit-retention: at least 1h");
  EXPECT_EQ(Error({"--upload-grace", "999ms"}),
            "--upload-grace: at least 1s (a blob a client checked must outlive its submit)");
  EXPECT_EQ(Error({"--node-cert-validity", "59s"}), "--node-cert-validity: at least 1m");
  EXPECT_EQ(Error({"--audit-max-records", "999"}), "--audit-max-records: at least 1000");
  EXPECT_EQ(Error({"--blob-quota", "-1"}), "--blob-quota: give 0 (no quota) or a number of bytes");
  EXPECT_EQ(Error({"--max-log-bytes", "-1"}),
            "--max-log-bytes and --max-metric-records: give 0 (no cap) or a positive number");
  EXPECT_EQ(Error({"--max-metric-records", "-5"}),
            "--max-log-bytes and --max-metric-records: give 0 (no cap) or a positive number");
  for (const char* bad : {"0", "-1", "1000001", "9223372036854775807"}) {
    EXPECT_EQ(Error({"--max-open-log-files", bad}), "--max-open-log-files: give 1 to 1000000")
        << bad;
  }
  EXPECT_THAT(Error({"--node-lease", "1s"}),
              HasSubstr("--node-lease: 1s is less than 3 heartbeat intervals"));
  EXPECT_THAT(Error({"--node-lease", "1s"}), HasSubstr("give a lease of at least 6s"));
  EXPECT_THAT(Error({"--log-level", "loud"}), HasSubstr("--log-level: log level 'loud'"));
}

TEST_F(DroverdFlagsTest, CommandLineMistakesAreUsageErrors) {
  EXPECT_THAT(UsageError({"--bogus"}), HasSubstr("unknown flag --bogus"));
  EXPECT_EQ(UsageError({"extra"}), "unexpected argument 'extra'; see --help");
  // A number too large for any counter is not wrapped into a small or negative one.
  EXPECT_THAT(UsageError({"--blob-quota", "99999999999999999999999"}),
              HasSubstr("--blob-quota: '99999999999999999999999' is not a whole number"));
  EXPECT_THAT(UsageError({"--max-log-bytes", "1e3"}), HasSubstr("--max-log-bytes"));
  EXPECT_THAT(UsageError({"--node-loss-pause-fraction", "half"}),
              HasSubstr("--node-loss-pause-fraction"));
  EXPECT_THAT(UsageError({"--listen"}), HasSubstr("--listen"));
}

TEST_F(DroverdFlagsTest, DatastoreRootsAreCheckedAndTheStateDirIsRefused) {
  EXPECT_THAT(Error({"--datastore-root", ""}), HasSubstr("--datastore-root"));
  EXPECT_THAT(Error({"--datastore-root", "/"}), HasSubstr("--datastore-root: '/' would offer"));
  EXPECT_THAT(Error({"--datastore-root", "/etc"}),
              HasSubstr("--datastore-root: '/etc' is in /etc"));
  EXPECT_THAT(Error({"--datastore-root", "/srv/../etc"}), HasSubstr("has a '..' component"));
  EXPECT_THAT(Error({"--datastore-root", "srv/data"}), HasSubstr("--datastore-root"));
  EXPECT_THAT(Error({"--datastore-root", "/var/lib/drover"}), HasSubstr("Drover's own state"));

  absl::StatusOr<DroverdSettings> settings =
      ParseDroverdFlags({"--state-dir", dir_.path() + "/./state//"});
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_THAT(settings->options.core.datastore_roots.refused, ElementsAre(dir_.path() + "/state"))
      << "made clean, without a trailing '/'";
}

// The shared data folder (docs/operations.md#shared-data) holds every job's logs and
// outputs: the state folder by default, and, when apart, no datastore may offer it to jobs.
TEST_F(DroverdFlagsTest, DataDirIsTheStateDirByDefaultAndIsNoDatastore) {
  absl::StatusOr<DroverdSettings> plain = Parse({});
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(plain->options.data_dir, "");
  absl::StatusOr<DroverdSettings> shared = Parse({"--data-dir", "/mnt/drover-shared/./data/"});
  ASSERT_TRUE(shared.ok()) << shared.status();
  EXPECT_EQ(shared->options.data_dir, "/mnt/drover-shared/./data/");
  EXPECT_THAT(shared->options.core.datastore_roots.refused,
              ElementsAre(dir_.path() + "/state", "/mnt/drover-shared/data"));
}

TEST_F(DroverdFlagsTest, PipSettingsAreChecked) {
  EXPECT_THAT(Error({"--pip-index-url", "ftp://x"}),
              HasSubstr("--pip-index-url: 'ftp://x' is not an index URL"));
  EXPECT_THAT(Error({"--pip-trusted-host", ""}), HasSubstr("--pip-trusted-host: empty value"));
  EXPECT_THAT(Error({"--pip-find-links", "wheels"}), HasSubstr("--pip-find-links"));
  EXPECT_THAT(Error({"--pip-no-index", "--pip-index-url", "https://pypi.example.com/simple"}),
              HasSubstr("--pip-no-index"));
}

TEST_F(DroverdFlagsTest, TheBootstrapTokenIsTheFirstLineOfOneRegularFile) {
  const std::string token = "drv_" + std::string(40, 'a');
  std::string file = WriteFile("token", token + "\nignored\n");
  absl::StatusOr<DroverdSettings> settings = Parse({"--bootstrap-admin-token-file", file});
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->options.bootstrap_admin_token, token);
  // An administrator's link to the file is followed.
  std::filesystem::create_symlink(file, dir_.path() + "/token-link");
  settings = Parse({"--bootstrap-admin-token-file", dir_.path() + "/token-link"});
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->options.bootstrap_admin_token, token);

  const std::string refused = "--bootstrap-admin-token-file: cannot read a token from '";
  const std::string fix = "write the token, drv_..., on the first line of a regular file";
  EXPECT_THAT(Error({"--bootstrap-admin-token-file", dir_.path() + "/none"}),
              StartsWith(refused + dir_.path() + "/none'"));
  EXPECT_THAT(Error({"--bootstrap-admin-token-file", dir_.path() + "/none"}), HasSubstr(fix));
  EXPECT_THAT(Error({"--bootstrap-admin-token-file", WriteFile("empty", "")}),
              HasSubstr("its first line is empty"));
  EXPECT_THAT(Error({"--bootstrap-admin-token-file", WriteFile("blank", "\n" + token)}),
              HasSubstr("its first line is empty"));
  // A FIFO is refused at once (nothing may ever write to it), a huge file is not read whole,
  // a folder is not a token.
  ASSERT_EQ(mkfifo((dir_.path() + "/fifo").c_str(), 0600), 0);
  EXPECT_THAT(Error({"--bootstrap-admin-token-file", dir_.path() + "/fifo"}),
              HasSubstr("not a regular file"));
  EXPECT_THAT(Error({"--bootstrap-admin-token-file", WriteFile("huge", std::string(1 << 20, 'a'))}),
              HasSubstr("larger than"));
  EXPECT_THAT(Error({"--bootstrap-admin-token-file", dir_.path()}), HasSubstr(refused));
}

TEST_F(DroverdFlagsTest, HelpNamesTheFlagsAndSetsNothingElse) {
  absl::StatusOr<DroverdSettings> settings = ParseDroverdFlags({"--help", "--upload-grace", "0"});
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_TRUE(settings->help);
  EXPECT_THAT(settings->help_text, StartsWith("Usage: droverd [flags]"));
  for (const char* flag :
       {"--listen", "--state-dir", "--data-dir", "--config", "--address-file", "--launch-timeout",
        "--node-lease", "--audit-retention", "--upload-grace", "--blob-quota",
        "--max-open-log-files", "--datastore-root", "--pip-no-index",
        "--bootstrap-admin-token-file"}) {
    EXPECT_THAT(settings->help_text, HasSubstr(flag));
  }
  // Defaults are shown as written.
  EXPECT_THAT(settings->help_text, HasSubstr("2160h"));
}

}  // namespace
}  // namespace drover::server
