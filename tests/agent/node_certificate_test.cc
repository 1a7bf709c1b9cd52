// The node certificate's timing on a fake clock: when a certificate on disk is still usable
// (EnsureNodeCertificate without a join token) and when it is renewed (RenewIfDue, against
// a fake NodeIdentityService on loopback that signs what it is sent). The clock is moved by
// days without waiting; hostile times included: a certificate already expired, a clock that
// jumps back before the certificate's start.
#include "agent/node_certificate.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/server_builder.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/safe_open.h"
#include "drover/v1/node_identity.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/subprocess.h"

namespace drover::agent {
namespace {

using ::testing::HasSubstr;

constexpr absl::Duration kValidity = absl::Hours(24 * 30);

// droverd's renewal, reduced to its signature: a certificate for the CSR's key, valid from
// the fake clock's now. Counts the calls.
class FakeNodeIdentity final : public v1::NodeIdentityService::Service {
 public:
  FakeNodeIdentity(const pki::KeyAndCertificate& ca, const Clock& clock)
      : ca_(ca), clock_(clock) {}

  grpc::Status RenewNodeCertificate(grpc::ServerContext*,
                                    const v1::RenewNodeCertificateRequest* request,
                                    v1::NodeCertificateResponse* response) override {
    absl::StatusOr<std::string> cert = pki::IssueCertificateForCsr(
        ca_, request->csr_pem(),
        {.common_name = "n1", .uris = {"drover-node://n1"}, .client = true,
         .validity = kValidity},
        clock_.Now());
    if (!cert.ok()) return grpc::Status(grpc::StatusCode::INTERNAL, std::string(cert.status().message()));
    response->set_certificate_pem(*cert);
    absl::MutexLock lock(&mu_);
    ++renewals_;
    return grpc::Status::OK;
  }

  int renewals() {
    absl::MutexLock lock(&mu_);
    return renewals_;
  }

 private:
  const pki::KeyAndCertificate ca_;
  const Clock& clock_;
  absl::Mutex mu_;
  int renewals_ ABSL_GUARDED_BY(mu_) = 0;
};

class NodeCertificateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<pki::KeyAndCertificate> ca =
        pki::CreateCertificateAuthority("cluster-ca", absl::Hours(24 * 3650), clock_.Now());
    ASSERT_TRUE(ca.ok()) << ca.status();
    ca_ = *ca;
    files_ = {.certificate_file = dir_.path() + "/node.crt",
              .key_file = dir_.path() + "/node.key",
              .ca_file = dir_.path() + "/ca.crt",
              .managed = true};
    ASSERT_TRUE(ReplaceFile(files_.ca_file, ca_.certificate_pem, 0600).ok());
    absl::StatusOr<std::string> key = pki::GenerateKey();
    ASSERT_TRUE(key.ok()) << key.status();
    absl::StatusOr<std::string> cert = pki::IssueCertificate(
        ca_, *key,
        {.common_name = "n1", .uris = {"drover-node://n1"}, .client = true,
         .validity = kValidity},
        clock_.Now());
    ASSERT_TRUE(cert.ok()) << cert.status();
    ASSERT_TRUE(ReplaceFile(files_.key_file, *key, 0600).ok());
    ASSERT_TRUE(ReplaceFile(files_.certificate_file, *cert, 0600).ok());
    issued_ = *cert;

    identity_ = std::make_unique<FakeNodeIdentity>(ca_, clock_);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(identity_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                   grpc::InsecureChannelCredentials());
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown(absl::ToChronoTime(absl::Now()));
  }

  std::string Certificate() const {
    return ReadSmallFile(files_.certificate_file, 64 << 10).value_or("");
  }

  absl::Status Ensure() {
    // No join token: only the certificate on disk can make this OK, and nothing is dialled
    // (the address leads nowhere).
    return EnsureNodeCertificate("127.0.0.1:1", ca_.certificate_pem, "n1", files_, "", clock_);
  }

  testing::FakeClock clock_;
  testing::TempDir dir_;
  pki::KeyAndCertificate ca_;
  NodeCertificateFiles files_;
  std::string issued_;
  std::unique_ptr<FakeNodeIdentity> identity_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(NodeCertificateTest, RenewsOnlyOnceAThirdOfItsLifeIsLeft) {
  // Valid from a minute back (pki's allowance for clocks that differ) for 30 days: a third
  // of its life is left 20 days less 20 s on.
  clock_.Advance(absl::Hours(24 * 20) - absl::Seconds(21));
  ASSERT_TRUE(RenewIfDue(channel_, "n1", files_, clock_.Now()).ok());
  EXPECT_EQ(identity_->renewals(), 0);
  EXPECT_EQ(Certificate(), issued_);

  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(RenewIfDue(channel_, "n1", files_, clock_.Now()).ok());
  EXPECT_EQ(identity_->renewals(), 1);
  EXPECT_NE(Certificate(), issued_);
  absl::StatusOr<pki::CertificateInfo> renewed = pki::ReadCertificate(Certificate());
  ASSERT_TRUE(renewed.ok()) << renewed.status();
  EXPECT_EQ(renewed->not_after, absl::FromUnixSeconds(absl::ToUnixSeconds(clock_.Now() + kValidity)));
  // The new key goes with the new certificate, and the agent can start with them.
  EXPECT_TRUE(Ensure().ok());

  // The next checks (every 10 s in the agent) find the new one far from due.
  clock_.Advance(absl::Seconds(10));
  ASSERT_TRUE(RenewIfDue(channel_, "n1", files_, clock_.Now()).ok());
  EXPECT_EQ(identity_->renewals(), 1);
}

TEST_F(NodeCertificateTest, AnExpiredCertificateIsRefusedAtStartAndRenewedByARunningAgent) {
  EXPECT_TRUE(Ensure().ok());
  clock_.Advance(kValidity + absl::Seconds(1));  // its not-after is past

  absl::Status usable = Ensure();
  EXPECT_EQ(usable.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(usable.message(), HasSubstr(files_.certificate_file));
  EXPECT_THAT(usable.message(), HasSubstr("--join"));

  // A running agent whose certificate ran out (a machine suspended for weeks) still asks:
  // RenewIfDue leaves judging the old certificate to droverd's TLS.
  ASSERT_TRUE(RenewIfDue(channel_, "n1", files_, clock_.Now()).ok());
  EXPECT_EQ(identity_->renewals(), 1);
  EXPECT_TRUE(Ensure().ok());
}

TEST_F(NodeCertificateTest, AClockThatJumpsBackNeitherRenewsNorTrustsTheCertificate) {
  clock_.Advance(absl::Hours(24 * 25));
  ASSERT_TRUE(RenewIfDue(channel_, "n1", files_, clock_.Now()).ok());
  ASSERT_EQ(identity_->renewals(), 1);

  // Back before the renewed certificate's start: far from its renewal time, so no renewal
  // (asking again would not help), and not valid yet.
  clock_.Advance(-absl::Hours(24 * 26));
  ASSERT_TRUE(RenewIfDue(channel_, "n1", files_, clock_.Now()).ok());
  EXPECT_EQ(identity_->renewals(), 1);
  absl::Status usable = Ensure();
  EXPECT_EQ(usable.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(usable.message(), HasSubstr(files_.certificate_file));

  // Back on time: usable again, nothing asked.
  clock_.Advance(absl::Hours(24 * 26));
  EXPECT_TRUE(Ensure().ok());
  ASSERT_TRUE(RenewIfDue(channel_, "n1", files_, clock_.Now()).ok());
  EXPECT_EQ(identity_->renewals(), 1);
}

TEST_F(NodeCertificateTest, AnAdministratorsCertificateIsNeverRenewedByTheAgent) {
  files_.managed = false;
  clock_.Advance(kValidity - absl::Hours(1));  // well past its renewal time
  ASSERT_TRUE(RenewIfDue(channel_, "n1", files_, clock_.Now()).ok());
  EXPECT_EQ(identity_->renewals(), 0);
  EXPECT_EQ(Certificate(), issued_);
}

TEST(RenewalTimeTest, IsWhenAThirdOfTheLifeIsLeft) {
  const absl::Time start = absl::FromUnixSeconds(1700000000);
  EXPECT_EQ(RenewalTime(start, start + absl::Hours(90)), start + absl::Hours(60));
  // A certificate that ends before it starts (hostile input) is due at once.
  EXPECT_LE(RenewalTime(start, start - absl::Hours(3)), start);
}

}  // namespace
}  // namespace drover::agent
