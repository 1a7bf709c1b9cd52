// ReadableStatus: how gRPC failures read on the CLI's one error line.
#include "cli/grpc_drover_client.h"

#include <grpcpp/grpcpp.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace drover::cli {
namespace {

using ::testing::HasSubstr;

constexpr char kRefused[] =
    "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:7070: Failed to "
    "connect to remote host: Connection refused";

TEST(ReadableStatusTest, UnreachableServerNamesTheAddressAndTheFix) {
  absl::Status s = ReadableStatus(grpc::Status(grpc::StatusCode::UNAVAILABLE, kRefused),
                                  "localhost:7070", absl::Seconds(30), /*connected=*/false,
                                  nullptr);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(s.message(),
            "cannot reach droverd at localhost:7070 (connection refused); is it running? set "
            "--server or DROVER_SERVER");
}

TEST(ReadableStatusTest, UnknownHostSaysSo) {
  absl::Status s = ReadableStatus(
      grpc::Status(grpc::StatusCode::UNAVAILABLE,
                   "DNS resolution failed for nosuch:7070: C-ares status is not ARES_SUCCESS"),
      "nosuch:7070", absl::Seconds(30), false, nullptr);
  EXPECT_THAT(s.message(), HasSubstr("(host name not found)"));
}

TEST(ReadableStatusTest, KeepsTheClearReasonWhenARetryFailsVaguely) {
  std::string last;
  absl::Status first = ReadableStatus(grpc::Status(grpc::StatusCode::UNAVAILABLE, kRefused), "h:1",
                                      absl::Seconds(1), false, &last);
  EXPECT_THAT(first.message(), HasSubstr("(connection refused)"));
  absl::Status s = ReadableStatus(
      grpc::Status(grpc::StatusCode::UNAVAILABLE,
                   "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: "
                   "tcp handshaker shutdown"),
      "h:1", absl::Seconds(1), false, &last);
  EXPECT_THAT(s.message(), HasSubstr("(connection refused)"));
}

TEST(ReadableStatusTest, NoAnswerBeforeTheDeadline) {
  absl::Status s = ReadableStatus(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "Deadline Exceeded"),
                                  "h:1", absl::Seconds(5), /*connected=*/false, nullptr);
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(s.message(), HasSubstr("cannot reach droverd at h:1 (no answer within 5s)"));
  s = ReadableStatus(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "Deadline Exceeded"), "h:1",
                     absl::Seconds(5), /*connected=*/true, nullptr);
  EXPECT_EQ(s.message(), "droverd at h:1 did not answer within 5s; retry, or allow longer with --timeout");
}

TEST(ReadableStatusTest, ServerMessagesPassThroughOnOneLine) {
  absl::Status s = ReadableStatus(
      grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "spec.node_count: 0 is out of range;\nuse 1 to 1024\n"),
      "h:1", absl::Seconds(5), true, nullptr);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "spec.node_count: 0 is out of range; use 1 to 1024");
  // droverd's own UNAVAILABLE (it is stopping) keeps its words.
  s = ReadableStatus(grpc::Status(grpc::StatusCode::UNAVAILABLE, "droverd is stopping; retry"), "h:1",
                     absl::Seconds(5), /*connected=*/true, nullptr);
  EXPECT_EQ(s.message(), "droverd is stopping; retry");
}

TEST(ReadableStatusTest, ServerSideCancelIsRetryable) {
  absl::Status s = ReadableStatus(grpc::Status(grpc::StatusCode::CANCELLED, "CANCELLED"), "h:1",
                                  absl::Seconds(5), true, nullptr);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(s.message(), HasSubstr("closed the call"));
}

TEST(ReadableStatusTest, EmptyMessageNamesTheCode) {
  absl::Status s = ReadableStatus(grpc::Status(grpc::StatusCode::INTERNAL, ""), "h:1",
                                  absl::Seconds(5), true, nullptr);
  EXPECT_EQ(s.message(), "droverd answered INTERNAL without a message");
}

}  // namespace
}  // namespace drover::cli
