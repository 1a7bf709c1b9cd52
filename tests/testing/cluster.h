// Helpers for tests that talk to a real droverd (and agents) over gRPC: ports, blobs, node
// readiness. Used from one test thread.
#ifndef DROVER_TESTS_TESTING_CLUSTER_H_
#define DROVER_TESTS_TESTING_CLUSTER_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "drover/v1/admin_service.grpc.pb.h"
#include "drover/v1/blob.grpc.pb.h"

namespace drover::testing {

// A whole file's bytes; empty when it cannot be read.
std::string ReadWholeFile(const std::string& path);

// A TCP port on 127.0.0.1 that was free a moment ago (for a droverd that must keep its
// address across restarts).
int FreeLoopbackPort();

// Polls until droverd lists `count` nodes, all READY. DEADLINE_EXCEEDED after `timeout`.
absl::Status WaitForReadyNodes(v1::AdminService::Stub& admin, int count, absl::Duration timeout);

// Uploads the file at `path` as a blob and returns its digest.
absl::StatusOr<std::string> UploadBlobFile(v1::BlobService::Stub& blobs, const std::string& path);

// A blob's bytes.
absl::StatusOr<std::string> DownloadBlob(v1::BlobService::Stub& blobs, const std::string& digest);

}  // namespace drover::testing

#endif  // DROVER_TESTS_TESTING_CLUSTER_H_
