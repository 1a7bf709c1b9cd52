// BlobClient: the agent's one client of droverd's BlobService. A blob is downloaded into a
// file, a file uploaded as a blob; the image cache (images), the snapshot cache (code
// snapshots) and the attempts (outputs) all go through it. It makes one try per call:
// retrying while droverd is out of reach is the caller's decision. Thread-safe (gRPC stubs
// are); the stub is not owned and outlives the client.
#ifndef DROVER_AGENT_BLOB_CLIENT_H_
#define DROVER_AGENT_BLOB_CLIENT_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "drover/v1/blob.grpc.pb.h"

namespace drover::agent {

class BlobClient {
 public:
  explicit BlobClient(v1::BlobService::Stub* stub) : stub_([stub] { return stub; }) {}
  // `stub` gives the stub of the droverd to call now (the agent follows the leader); it is
  // called once per call, from any thread.
  explicit BlobClient(std::function<v1::BlobService::Stub*()> stub) : stub_(std::move(stub)) {}

  // Writes blob `digest` ("sha256:...") into the file `path` (created or replaced).
  // `job_id` names the job it is for (droverd lets a node read only what its attempts need,
  // and names the job when it refuses); empty: none named. gRPC's code when the call fails
  // (UNAVAILABLE: droverd out of reach, try again); RESOURCE_EXHAUSTED when the file cannot
  // be written. The file may be left half written on failure: the caller removes it.
  absl::Status Download(const std::string& digest, const std::string& job_id,
                        const std::string& path) const;
  // Uploads the file `path` (`size` bytes) as blob `digest`, counted against the blob quota
  // of the owner of job `job_id`; nothing is sent when droverd has it already. gRPC's code
  // when a call fails (UNAVAILABLE: try again; RESOURCE_EXHAUSTED: a quota).
  absl::Status Upload(const std::string& path, const std::string& digest, uint64_t size,
                      const std::string& job_id) const;

 private:
  const std::function<v1::BlobService::Stub*()> stub_;
};

}  // namespace drover::agent

#endif  // DROVER_AGENT_BLOB_CLIENT_H_
