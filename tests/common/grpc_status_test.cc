#include "common/grpc_status.h"

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace drover {
namespace {

TEST(GrpcStatusTest, AnAnswerKeepsItsCodeAndMessageBothWays) {
  absl::Status refused = absl::FailedPreconditionError("node 'n1' is draining; undrain it first");
  grpc::Status sent = ToGrpcStatus(refused);
  EXPECT_EQ(sent.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(sent.error_message(), "node 'n1' is draining; undrain it first");
  EXPECT_EQ(FromGrpcStatus(sent), refused);
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
}

TEST(GrpcStatusTest, AContextGoesBeforeTheMessageOfAFailureOnly) {
  absl::Status s = FromGrpcStatus(grpc::Status(grpc::StatusCode::UNAVAILABLE, "connection reset"),
                                  "fetching snapshot sha256:ab");
  EXPECT_EQ(s, absl::UnavailableError("fetching snapshot sha256:ab: connection reset"));
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK, "fetching snapshot sha256:ab").ok());
}

}  // namespace
}  // namespace drover
