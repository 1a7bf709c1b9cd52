// The pure rules of node identity: what a join token looks like and what is stored of it,
// which certificates name a node, and which CSRs droverd signs.
#include "server/node_identity.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace drover::server {
namespace {

using ::testing::HasSubstr;

TEST(NodeIdentityTest, ATokenIs256RandomBitsAndOnlyItsHashIsKept) {
  absl::StatusOr<std::string> a = NewJoinToken(), b = NewJoinToken();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->size(), kJoinTokenLength);
  EXPECT_NE(*a, *b);
  absl::StatusOr<std::string> hash = JoinTokenHash(*a);
  ASSERT_TRUE(hash.ok());
  EXPECT_EQ(*hash, pki::Sha256Hex(*a));
  EXPECT_NE(*hash, *a);
  EXPECT_EQ(*JoinTokenHash(*a + "\n"), *hash);  // a file's newline is not part of it
}

TEST(NodeIdentityTest, GarbageIsNoTokenAndIsNotEchoed) {
  for (const std::string& bad : {std::string(""), std::string("../../etc/passwd"),
                                 std::string(64, 'G'), std::string(65, 'a'),
                                 std::string(1 << 16, 'a')}) {
    absl::StatusOr<std::string> hash = JoinTokenHash(bad);
    EXPECT_EQ(hash.status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_THAT(hash.status().message(), HasSubstr("not a join token"));
    if (!bad.empty()) {
      EXPECT_THAT(hash.status().message(), ::testing::Not(HasSubstr(bad)));
    }
  }
}

TEST(NodeIdentityTest, ANodeCertificateNamesItsNodeInItsUriAndCommonName) {
  pki::CertificateInfo info{.common_name = "gpu-01", .uris = {"drover-node://gpu-01"}};
  EXPECT_EQ(*NodeNameOfCertificate(info), "gpu-01");
  for (const pki::CertificateInfo& bad :
       {pki::CertificateInfo{.common_name = "gpu-01"},  // no URI: not a node certificate
        pki::CertificateInfo{.common_name = "gpu-02", .uris = {"drover-node://gpu-01"}},
        pki::CertificateInfo{.common_name = "../x", .uris = {"drover-node://../x"}},
        pki::CertificateInfo{.common_name = "a", .uris = {"drover-node://a", "drover-node://b"}}}) {
    EXPECT_EQ(NodeNameOfCertificate(bad).status().code(), absl::StatusCode::kUnauthenticated)
        << bad.common_name;
  }
}

TEST(NodeIdentityTest, OnlyStrongKeysAndTheNodesOwnNameAreSigned) {
  pki::CsrInfo good{.common_name = "n1", .uris = {"drover-node://n1"}, .key_type = "EC",
                    .key_curve = "prime256v1", .key_bits = 256};
  EXPECT_TRUE(CheckNodeCsr(good, "n1").ok());
  pki::CsrInfo rsa = good;
  rsa.key_type = "RSA";
  rsa.key_bits = 1024;
  EXPECT_THAT(CheckNodeCsr(rsa, "n1").message(), HasSubstr("too weak"));
  rsa.key_bits = 2048;
  EXPECT_TRUE(CheckNodeCsr(rsa, "n1").ok());
  pki::CsrInfo small = good;
  small.key_bits = 160;
  EXPECT_THAT(CheckNodeCsr(small, "n1").message(), HasSubstr("too weak"));
  pki::CsrInfo dsa = good;
  dsa.key_type = "DSA";
  EXPECT_EQ(CheckNodeCsr(dsa, "n1").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(CheckNodeCsr(good, "n2").message(), HasSubstr("not the node's name 'n2'"));
  pki::CsrInfo extra = good;
  extra.uris.push_back("drover-node://n2");
  EXPECT_THAT(CheckNodeCsr(extra, "n1").message(), HasSubstr("asks for the name"));
}

}  // namespace
}  // namespace drover::server
