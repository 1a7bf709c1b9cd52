#include "bench/bench_node.h"

#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "common/pki/pki.h"
#include "drover/v1/node_identity.grpc.pb.h"

namespace drover::bench {

void SetDeadline(grpc::ClientContext& context) {
  context.set_deadline(absl::ToChronoTime(absl::Now() + kCallTimeout));
}

absl::StatusOr<std::string> ReadCa(std::string ca_file) {
  if (ca_file.empty() && std::getenv("DROVER_CA") != nullptr) ca_file = std::getenv("DROVER_CA");
  if (ca_file.empty()) {
    return absl::InvalidArgumentError(
        "--ca: required (or $DROVER_CA); pass droverd's <state-dir>/tls/ca.crt");
  }
  std::ifstream in(ca_file);
  std::stringstream text;
  if (in) text << in.rdbuf();
  if (!in || text.str().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--ca: cannot read '", ca_file, "'; pass droverd's <state-dir>/tls/ca.crt"));
  }
  return text.str();
}

absl::StatusOr<NodeIdentity> JoinAsNode(const std::shared_ptr<grpc::Channel>& admin_channel,
                                        const std::string& server, const std::string& ca_pem,
                                        const std::string& name) {
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = ca_pem;
  return JoinAsNode(admin_channel, grpc::CreateChannel(server, grpc::SslCredentials(tls)), name);
}

absl::StatusOr<NodeIdentity> JoinAsNode(const std::shared_ptr<grpc::Channel>& admin_channel,
                                        const std::shared_ptr<grpc::Channel>& joiner_channel,
                                        const std::string& name) {
  auto identity = v1::NodeIdentityService::NewStub(admin_channel);
  v1::CreateJoinTokenRequest token_request;
  token_request.mutable_ttl()->set_seconds(600);
  token_request.set_node_name(name);
  v1::CreateJoinTokenResponse token;
  {
    grpc::ClientContext context;
    SetDeadline(context);
    if (grpc::Status s = identity->CreateJoinToken(&context, token_request, &token); !s.ok()) {
      return FromGrpcStatus(s, absl::StrCat("making a join token for node '", name,
                                      "' (needs an admin's token in $DROVER_TOKEN)"));
    }
  }
  NodeIdentity node;
  absl::StatusOr<std::string> key = pki::GenerateKey();
  if (!key.ok()) return key.status();
  node.key_pem = *key;
  absl::StatusOr<std::string> csr = pki::CreateCsr(node.key_pem, name, {"drover-node://" + name});
  if (!csr.ok()) return csr.status();
  v1::JoinNodeRequest join;
  join.set_token(token.token());
  join.set_node_name(name);
  join.set_csr_pem(*csr);
  auto joiner = v1::NodeIdentityService::NewStub(joiner_channel);
  v1::NodeCertificateResponse certificate;
  grpc::ClientContext context;
  SetDeadline(context);
  if (grpc::Status s = joiner->JoinNode(&context, join, &certificate); !s.ok()) {
    return FromGrpcStatus(s, absl::StrCat("joining as node '", name, "'"));
  }
  node.certificate_pem = certificate.certificate_pem();
  return node;
}

v1::JobSpec BenchJobSpec(const std::string& target, int64_t streams, const std::string& key) {
  v1::JobSpec spec;
  spec.set_name("bench-log-ingest");
  spec.set_entry_script("bin/sh");
  spec.add_arguments()->set_value("-c");
  spec.add_arguments()->set_value("true");
  spec.set_compute_target(target);
  spec.set_process_count_per_node(static_cast<int32_t>(streams));
  spec.mutable_resources()->set_cpus(kNodeCpus);
  spec.mutable_resources()->set_memory_mib(kNodeMemoryMib);
  spec.set_idempotency_key(key);
  return spec;
}

absl::Status AwaitJobState(v1::JobService::Stub& jobs, const std::string& job_id,
                           v1::JobStatus::State state, absl::Time deadline) {
  v1::Job job;
  while (true) {
    grpc::ClientContext context;
    SetDeadline(context);
    v1::GetJobRequest request;
    request.set_job_id(job_id);
    if (grpc::Status s = jobs.GetJob(&context, request, &job); !s.ok()) {
      return FromGrpcStatus(s, absl::StrCat("reading job ", job_id));
    }
    const v1::JobStatus::State now = job.status().state();
    if (now == state) return absl::OkStatus();
    if (now == v1::JobStatus::COMPLETED || now == v1::JobStatus::FAILED ||
        now == v1::JobStatus::CANCELED) {
      return absl::FailedPreconditionError(
          absl::StrCat("job ", job_id, " ended ", v1::JobStatus::State_Name(now), " (",
                       job.status().message(), ") instead of reaching ",
                       v1::JobStatus::State_Name(state)));
    }
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("job ", job_id, " is ", v1::JobStatus::State_Name(now), " (",
                       job.status().reason(), "), not ", v1::JobStatus::State_Name(state)));
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
}

absl::StatusOr<std::vector<int64_t>> StoredBytes(v1::JobService::Stub& jobs,
                                                 const v1::AttemptRef& attempt,
                                                 v1::LogStream stream, int64_t ranks) {
  std::vector<int64_t> stored(static_cast<size_t>(ranks), 0);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Minutes(5)));
  v1::StreamLogsRequest request;
  request.set_job_id(attempt.job_id());
  request.set_attempt(attempt.epoch());
  request.add_streams(stream);
  auto reader = jobs.StreamLogs(&context, request);
  v1::StreamLogsResponse piece;
  while (reader->Read(&piece)) {
    if (piece.rank() >= 0 && piece.rank() < ranks && piece.stream() == stream) {
      stored[static_cast<size_t>(piece.rank())] =
          std::max(stored[static_cast<size_t>(piece.rank())],
                   piece.offset() + static_cast<int64_t>(piece.data().size()));
    }
  }
  if (grpc::Status s = reader->Finish(); !s.ok()) {
    return FromGrpcStatus(s, absl::StrCat("reading back the logs of job ", attempt.job_id()));
  }
  return stored;
}

}  // namespace drover::bench
