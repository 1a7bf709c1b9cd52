// The conversions between absl::Status and grpc::Status, for every RPC edge: a handler that
// answers a call, a client that reads an answer. The codes are equal by design; the message
// passes through unchanged (or, with `context`, behind it). Pure functions; any thread.
#ifndef DROVER_COMMON_GRPC_STATUS_H_
#define DROVER_COMMON_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace drover {

// What a handler answers for `status`: OK, or its code and message.
inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

// What a client was answered: OK, or the call's code and message.
inline absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

// The same, the message behind `context` (what the call was for): "`context`: message".
inline absl::Status FromGrpcStatus(const grpc::Status& status, absl::string_view context) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat(context, ": ", status.error_message()));
}

}  // namespace drover

#endif  // DROVER_COMMON_GRPC_STATUS_H_
