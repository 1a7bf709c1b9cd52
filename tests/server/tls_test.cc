// droverd's TLS material: its own cluster CA made once and kept, a server certificate for
// the names droverd is reached by, issued again only when it must be, and an
// administrator's own files checked before droverd serves with them.
#include "server/tls.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/cluster.h"
#include "tests/testing/subprocess.h"

namespace drover::server {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;

mode_t Mode(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 0777;
}

TEST(TlsTest, TheOwnCaIsMadeOnceWithPrivateKeysAndKept) {
  testing::TempDir dir;
  absl::Time now = absl::Now();
  absl::StatusOr<ServerTls> first = LoadServerTls(dir.path(), {}, "10.1.2.3", now);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(Mode(dir.path() + "/tls/ca.key"), 0600u);
  EXPECT_EQ(Mode(dir.path() + "/tls/server.key"), 0600u);
  EXPECT_EQ(Mode(dir.path() + "/tls/ca.crt"), 0600u) << "the state folder holds only 0600 files";
  EXPECT_EQ(testing::ReadWholeFile(dir.path() + "/tls/ca.crt"), first->ca_pem);
  EXPECT_TRUE(pki::VerifyCertificate(first->certificate_pem, first->ca_pem, now).ok());
  absl::StatusOr<pki::CertificateInfo> info = pki::ReadCertificate(first->certificate_pem);
  ASSERT_TRUE(info.ok());
  EXPECT_THAT(info->ip_addresses, Contains("10.1.2.3"));
  EXPECT_THAT(info->ip_addresses, Contains("127.0.0.1"));
  EXPECT_THAT(info->dns_names, Contains("localhost"));

  absl::StatusOr<ServerTls> again = LoadServerTls(dir.path(), {}, "10.1.2.3", now);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->ca_pem, first->ca_pem) << "the CA is kept";
  EXPECT_EQ(again->certificate_pem, first->certificate_pem) << "nothing new was needed";
}

TEST(TlsTest, TheServerCertificateIsIssuedAgainForANewNameOrBeforeItExpires) {
  testing::TempDir dir;
  absl::Time now = absl::Now();
  absl::StatusOr<ServerTls> first = LoadServerTls(dir.path(), {}, "10.1.2.3", now);
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<ServerTls> moved =
      LoadServerTls(dir.path(), {.extra_names = {"head.example"}}, "10.1.2.4", now);
  ASSERT_TRUE(moved.ok()) << moved.status();
  EXPECT_NE(moved->certificate_pem, first->certificate_pem);
  EXPECT_EQ(moved->ca_pem, first->ca_pem);
  absl::StatusOr<pki::CertificateInfo> info = pki::ReadCertificate(moved->certificate_pem);
  ASSERT_TRUE(info.ok());
  EXPECT_THAT(info->ip_addresses, Contains("10.1.2.4"));
  EXPECT_THAT(info->dns_names, Contains("head.example"));

  absl::StatusOr<ServerTls> late = LoadServerTls(dir.path(), {.extra_names = {"head.example"}},
                                                 "10.1.2.4", now + absl::Hours(24 * 340));
  ASSERT_TRUE(late.ok()) << late.status();
  EXPECT_NE(late->certificate_pem, moved->certificate_pem) << "renewed within 30 days of its end";
}

TEST(TlsTest, HalfACaOrABadNameIsRefusedNotReplaced) {
  testing::TempDir dir;
  ASSERT_TRUE(LoadServerTls(dir.path(), {}, "127.0.0.1", absl::Now()).ok());
  std::filesystem::remove(dir.path() + "/tls/ca.key");
  absl::StatusOr<ServerTls> half = LoadServerTls(dir.path(), {}, "127.0.0.1", absl::Now());
  EXPECT_EQ(half.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(half.status().message(), HasSubstr("restore both"));

  testing::TempDir other;
  absl::StatusOr<ServerTls> bad =
      LoadServerTls(other.path(), {.extra_names = {"a,IP:6.6.6.6"}}, "127.0.0.1", absl::Now());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(TlsTest, AnAdministratorsFilesAreCheckedBeforeUse) {
  testing::TempDir dir;
  absl::StatusOr<ServerTls> own = LoadServerTls(dir.path() + "/a", {}, "127.0.0.1", absl::Now());
  absl::StatusOr<ServerTls> other = LoadServerTls(dir.path() + "/b", {}, "127.0.0.1", absl::Now());
  ASSERT_TRUE(own.ok() && other.ok());
  const std::string a = dir.path() + "/a/tls/", b = dir.path() + "/b/tls/";
  TlsOptions good{.certificate_file = a + "server.crt", .key_file = a + "server.key",
                  .ca_file = a + "ca.crt"};
  absl::StatusOr<ServerTls> given = LoadServerTls(dir.path() + "/c", good, "", absl::Now());
  ASSERT_TRUE(given.ok()) << given.status();
  EXPECT_EQ(given->certificate_pem, own->certificate_pem);
  EXPECT_TRUE(given->ca.key_pem.empty()) << "no CA key of droverd's own";
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/c/tls")) << "nothing of its own made";

  TlsOptions wrong_key = good;
  wrong_key.key_file = b + "server.key";
  EXPECT_THAT(LoadServerTls(dir.path() + "/c", wrong_key, "", absl::Now()).status().message(),
              HasSubstr("--tls-key"));
  TlsOptions wrong_ca = good;
  wrong_ca.ca_file = b + "ca.crt";
  EXPECT_THAT(LoadServerTls(dir.path() + "/c", wrong_ca, "", absl::Now()).status().message(),
              HasSubstr("does not verify against --tls-ca"));
  TlsOptions missing = good;
  missing.ca_file.clear();
  EXPECT_THAT(LoadServerTls(dir.path() + "/c", missing, "", absl::Now()).status().message(),
              HasSubstr("go together"));
  TlsOptions unreadable = good;
  unreadable.certificate_file = dir.path() + "/none.crt";
  EXPECT_THAT(LoadServerTls(dir.path() + "/c", unreadable, "", absl::Now()).status().message(),
              HasSubstr("--tls-cert: cannot read"));
}

}  // namespace
}  // namespace drover::server
