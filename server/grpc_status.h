// The one conversion from absl::Status to grpc::Status at the RPC edge. The codes are equal
// by design; the message passes through unchanged.
#ifndef DROVER_SERVER_GRPC_STATUS_H_
#define DROVER_SERVER_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"

namespace drover::server {

inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

}  // namespace drover::server

#endif  // DROVER_SERVER_GRPC_STATUS_H_
