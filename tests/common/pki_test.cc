// The cluster CA and the certificates it issues: what a certificate says is what was asked
// for, it verifies against its own CA only and only while valid, and names that could
// smuggle other names into a certificate are refused.
#include "common/pki/pki.h"

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace drover::pki {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

KeyAndCertificate Ca(const std::string& name = "drover cluster CA") {
  absl::StatusOr<KeyAndCertificate> ca =
      CreateCertificateAuthority(name, absl::Hours(24 * 3650), kNow);
  EXPECT_TRUE(ca.ok()) << ca.status();
  return ca.ok() ? *ca : KeyAndCertificate{};
}

TEST(PkiTest, TheCaIsACaAndSignsItself) {
  KeyAndCertificate ca = Ca();
  EXPECT_THAT(ca.key_pem, HasSubstr("BEGIN PRIVATE KEY"));
  absl::StatusOr<CertificateInfo> info = ReadCertificate(ca.certificate_pem);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->common_name, "drover cluster CA");
  EXPECT_TRUE(info->is_ca);
  EXPECT_EQ(info->not_before, kNow - absl::Minutes(1));
  EXPECT_TRUE(VerifyCertificate(ca.certificate_pem, ca.certificate_pem, kNow).ok());
  EXPECT_TRUE(KeyMatchesCertificate(ca.key_pem, ca.certificate_pem));
}

TEST(PkiTest, AnIssuedCertificateSaysWhatWasAskedAndVerifiesAgainstItsCaOnly) {
  KeyAndCertificate ca = Ca();
  absl::StatusOr<std::string> key = GenerateKey();
  ASSERT_TRUE(key.ok()) << key.status();
  absl::StatusOr<std::string> cert = IssueCertificate(
      ca, *key,
      {.common_name = "droverd",
       .dns_names = {"localhost", "head.example"},
       .ip_addresses = {"127.0.0.1", "10.0.0.5", "::1"},
       .server = true,
       .validity = absl::Hours(24)},
      kNow);
  ASSERT_TRUE(cert.ok()) << cert.status();
  absl::StatusOr<CertificateInfo> info = ReadCertificate(*cert);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->common_name, "droverd");
  EXPECT_THAT(info->dns_names, ElementsAre("localhost", "head.example"));
  EXPECT_THAT(info->ip_addresses, ElementsAre("127.0.0.1", "10.0.0.5", "::1"));
  EXPECT_FALSE(info->is_ca);
  EXPECT_EQ(info->not_after, kNow + absl::Hours(24));
  EXPECT_TRUE(KeyMatchesCertificate(*key, *cert));
  EXPECT_FALSE(KeyMatchesCertificate(ca.key_pem, *cert));

  EXPECT_TRUE(VerifyCertificate(*cert, ca.certificate_pem, kNow + absl::Hours(1)).ok());
  absl::Status expired = VerifyCertificate(*cert, ca.certificate_pem, kNow + absl::Hours(25));
  EXPECT_EQ(expired.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(expired.message(), HasSubstr("expired"));
  absl::Status other = VerifyCertificate(*cert, Ca("another CA").certificate_pem, kNow);
  EXPECT_EQ(other.code(), absl::StatusCode::kPermissionDenied);
}

TEST(PkiTest, NamesThatCouldSmuggleOtherNamesAreRefused) {
  KeyAndCertificate ca = Ca();
  absl::StatusOr<std::string> key = GenerateKey();
  ASSERT_TRUE(key.ok());
  for (std::string bad : {"a,IP:1.2.3.4", "host name", "", "x\n", "a/b"}) {
    absl::StatusOr<std::string> cert =
        IssueCertificate(ca, *key, {.common_name = "n", .dns_names = {bad}}, kNow);
    EXPECT_EQ(cert.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  for (std::string bad : {"1.2.3", "1.2.3.4,DNS:evil", "localhost", ""}) {
    absl::StatusOr<std::string> cert =
        IssueCertificate(ca, *key, {.common_name = "n", .ip_addresses = {bad}}, kNow);
    EXPECT_EQ(cert.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(IssueCertificate(ca, *key, {.common_name = std::string(65, 'a')}, kNow).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(PkiTest, GarbageIsRefusedNotCrashedOn) {
  KeyAndCertificate ca = Ca();
  EXPECT_EQ(ReadCertificate("not a certificate").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(IssueCertificate(ca, "not a key", {.common_name = "n"}, kNow).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(IssueCertificate({.key_pem = "x", .certificate_pem = "y"}, ca.key_pem,
                             {.common_name = "n"}, kNow)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(VerifyCertificate("junk", ca.certificate_pem, kNow).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_FALSE(KeyMatchesCertificate("junk", ca.certificate_pem));
}

TEST(PkiTest, ACsrCarriesItsNamesAndGetsACertificateForItsOwnKey) {
  KeyAndCertificate ca = Ca();
  absl::StatusOr<std::string> key = GenerateKey();
  ASSERT_TRUE(key.ok());
  absl::StatusOr<std::string> csr = CreateCsr(*key, "gpu-01", {"drover-node://gpu-01"});
  ASSERT_TRUE(csr.ok()) << csr.status();
  absl::StatusOr<CsrInfo> info = ReadCsr(*csr);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->common_name, "gpu-01");
  EXPECT_THAT(info->uris, ElementsAre("drover-node://gpu-01"));
  EXPECT_EQ(info->key_type, "EC");
  EXPECT_EQ(info->key_curve, "prime256v1");
  EXPECT_EQ(info->key_bits, 256);

  absl::StatusOr<std::string> cert = IssueCertificateForCsr(
      ca, *csr,
      {.common_name = "gpu-01", .uris = {"drover-node://gpu-01"}, .client = true,
       .validity = absl::Hours(1)},
      kNow);
  ASSERT_TRUE(cert.ok()) << cert.status();
  EXPECT_TRUE(KeyMatchesCertificate(*key, *cert));
  absl::StatusOr<CertificateInfo> read = ReadCertificate(*cert);
  ASSERT_TRUE(read.ok());
  EXPECT_THAT(read->uris, ElementsAre("drover-node://gpu-01"));
  EXPECT_EQ(read->fingerprint.size(), 64u);
  EXPECT_TRUE(VerifyCertificate(*cert, ca.certificate_pem, kNow).ok());
}

TEST(PkiTest, AWeakKeyIsSeenInItsCsr) {
  EVP_PKEY* rsa = EVP_RSA_gen(1024);
  ASSERT_NE(rsa, nullptr);
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, rsa, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long size = BIO_get_mem_data(bio, &data);
  std::string key_pem(data, static_cast<size_t>(size));
  BIO_free(bio);
  EVP_PKEY_free(rsa);
  absl::StatusOr<std::string> csr = CreateCsr(key_pem, "n1", {});
  ASSERT_TRUE(csr.ok()) << csr.status();
  absl::StatusOr<CsrInfo> info = ReadCsr(*csr);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->key_type, "RSA");
  EXPECT_EQ(info->key_bits, 1024);
}

TEST(PkiTest, HostileCsrsAreRefused) {
  absl::StatusOr<std::string> key = GenerateKey();
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(ReadCsr("garbage").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadCsr("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n")
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<CsrInfo> huge = ReadCsr(std::string(kMaxCsrBytes + 1, 'A'));
  EXPECT_EQ(huge.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(huge.status().message(), HasSubstr("too large"));
  // A URI that would smuggle another name into the extension's text.
  EXPECT_EQ(CreateCsr(*key, "n1", {"drover-node://n1,DNS:evil"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  // A signature that does not match: one byte of the body changed.
  absl::StatusOr<std::string> csr = CreateCsr(*key, "n1", {});
  ASSERT_TRUE(csr.ok());
  std::string tampered = *csr;
  size_t at = tampered.find('\n', 40) + 10;
  tampered[at] = tampered[at] == 'A' ? 'B' : 'A';
  EXPECT_EQ(ReadCsr(tampered).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(PkiTest, RandomHexAndSha256) {
  absl::StatusOr<std::string> a = RandomHex(32), b = RandomHex(32);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->size(), 64u);
  EXPECT_NE(*a, *b);
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace drover::pki
