// A benchmark's fake node, as drover-agent would be one: it joins droverd with a one-time
// join token and a key and CSR of its own, gets a job placed on it alone (a compute target
// of the node label kNodeLabel and a job that takes the whole node), follows the job's
// state and reads its stored logs back. For benchmarks that play the agent's side
// (log_ingest_bench.h). Blocking calls with kCallTimeout each.
#ifndef DROVER_BENCH_BENCH_NODE_H_
#define DROVER_BENCH_BENCH_NODE_H_

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "drover/v1/agent.pb.h"
#include "drover/v1/job_service.grpc.pb.h"

namespace drover::bench {

// Deadline of each unary call (token, join, target, submit, job status).
inline constexpr absl::Duration kCallTimeout = absl::Seconds(30);
// The node label that puts the fake node, and only it, in the benchmark's compute target.
inline constexpr char kNodeLabel[] = "drover-bench-node";
// The fake node's capacity, which the benchmark job takes whole: nothing else fits beside it.
inline constexpr double kNodeCpus = 1;
inline constexpr int64_t kNodeMemoryMib = 1024;

// Sets `context`'s deadline kCallTimeout from now.
void SetDeadline(grpc::ClientContext& context);

// droverd's CA certificate: `ca_file`, else $DROVER_CA.
absl::StatusOr<std::string> ReadCa(std::string ca_file);

// The fake node's identity: what drover-agent gets when it joins (agent/node_certificate.h),
// held in memory.
struct NodeIdentity {
  std::string key_pem;
  std::string certificate_pem;
};

// Joins droverd as node `name` the way a new agent does: a one-time join token for that
// name (made here with the caller's admin token), a new key and CSR, JoinNode.
absl::StatusOr<NodeIdentity> JoinAsNode(const std::shared_ptr<grpc::Channel>& admin_channel,
                                        const std::string& server, const std::string& ca_pem,
                                        const std::string& name);
// The same with `joiner`, a channel to droverd that trusts its CA and presents no
// certificate (JoinNode's), reused across joins: a simulated cluster joins thousands.
absl::StatusOr<NodeIdentity> JoinAsNode(const std::shared_ptr<grpc::Channel>& admin_channel,
                                        const std::shared_ptr<grpc::Channel>& joiner,
                                        const std::string& name);

// The job whose attempt the fake node runs: one process per stream, all of the node.
v1::JobSpec BenchJobSpec(const std::string& target, int64_t streams, const std::string& key);

// Polls the job until it is in `state`; FAILED_PRECONDITION when it ends in another,
// DEADLINE_EXCEEDED at `deadline`.
absl::Status AwaitJobState(v1::JobService::Stub& jobs, const std::string& job_id,
                           v1::JobStatus::State state, absl::Time deadline);

// Bytes droverd stores of each rank's `stream` of the attempt, read back with StreamLogs.
absl::StatusOr<std::vector<int64_t>> StoredBytes(v1::JobService::Stub& jobs,
                                                 const v1::AttemptRef& attempt,
                                                 v1::LogStream stream, int64_t ranks);

}  // namespace drover::bench

#endif  // DROVER_BENCH_BENCH_NODE_H_
