// Pieces of the HTTP gateway's API shared by its unary routes (http_api.cc) and its event
// streams (http_events.cc). Loop thread only.
#ifndef DROVER_SERVER_HTTP_HTTP_API_H_
#define DROVER_SERVER_HTTP_HTTP_API_H_

#include <google/protobuf/message.h>
#include <grpcpp/support/status.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "drover/v1/job_service.pb.h"
#include "server/http/http_internal.h"

namespace drover::server::http::internal {

// `message` in protobuf's JSON mapping (lowerCamelCase, enums by name, defaults left out).
std::string ToJson(const google::protobuf::Message& message);

// Answers a gRPC error with its HTTP status and body; an UNAUTHENTICATED answer to a
// session's token ends the sessions made with that token.
void ReplyStatus(HttpGateway::Loop& loop, const ApiRequest& request, Exchange& exchange,
                 const grpc::Status& status);

// The query parameter `name` as an integer in [min, max], `fallback` when absent or empty;
// INVALID_ARGUMENT naming it otherwise.
absl::StatusOr<int64_t> IntParam(const Target& target, absl::string_view name, int64_t fallback,
                                 int64_t min, int64_t max);
// The query parameter `name` as 0/1 (or false/true), `fallback` when absent.
absl::StatusOr<bool> BoolParam(const Target& target, absl::string_view name, bool fallback);

// The GetMetricsRequest of a /metrics or /metrics/watch request's filters (job, attempt,
// name, rank, source). INVALID_ARGUMENT naming a malformed parameter.
absl::StatusOr<v1::GetMetricsRequest> MetricsRequestOf(const ApiRequest& request);

// The event stream routes: /watch, /logs, /metrics/watch (http_events.cc).
void ServeEvents(HttpGateway::Loop& loop, std::shared_ptr<Exchange> exchange,
                 std::shared_ptr<ApiRequest> request);

// GET /jobs/{id}/outputs and /jobs/{id}/outputs/{path} (http_outputs.cc).
void ServeOutputs(HttpGateway::Loop& loop, std::shared_ptr<Exchange> exchange,
                  std::shared_ptr<ApiRequest> request);

}  // namespace drover::server::http::internal

#endif  // DROVER_SERVER_HTTP_HTTP_API_H_
