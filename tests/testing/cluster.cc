#include "tests/testing/cluster.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <netinet/in.h>
#include <signal.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/archive/sha256.h"
#include "common/grpc_status.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/test_tls.h"

namespace drover::testing {

std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::string TestAdminTokenValue() { return TestAdminToken(); }

namespace {

std::shared_ptr<grpc::ChannelCredentials> WithToken(
    std::shared_ptr<grpc::ChannelCredentials> tls, const std::string& token) {
  if (token.empty()) return tls;
  // Sends `authorization: Bearer TOKEN` with every call.
  return grpc::CompositeChannelCredentials(tls, grpc::AccessTokenCredentials(token));
}

}  // namespace

std::shared_ptr<grpc::ChannelCredentials> TlsCredentials(const std::string& ca_file,
                                                         const std::string& token) {
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = ca_file.empty() ? TestCaPem() : ReadWholeFile(ca_file);
  return WithToken(grpc::SslCredentials(tls), token);
}

std::shared_ptr<grpc::ChannelCredentials> TlsCredentialsTrusting(const std::string& ca_pem) {
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = ca_pem;
  return WithToken(grpc::SslCredentials(tls), TestAdminToken());
}

std::shared_ptr<grpc::Channel> TlsChannelTrusting(const std::string& address,
                                                  const std::string& ca_pem,
                                                  const std::string& token) {
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = ca_pem;
  return grpc::CreateChannel(address, WithToken(grpc::SslCredentials(tls), token));
}

std::shared_ptr<grpc::Channel> NodeChannel(const std::string& address, const std::string& ca_pem,
                                           const pki::KeyAndCertificate& ca,
                                           const std::string& node) {
  absl::StatusOr<pki::KeyAndCertificate> made = IssueNodeCertificate(ca, node);
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = ca_pem;
  if (made.ok()) {
    tls.pem_private_key = made->key_pem;
    tls.pem_cert_chain = made->certificate_pem;
  }
  // A channel of its own (not shared with other channels of the same target): each node is
  // one connection with one certificate.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(address, grpc::SslCredentials(tls), args);
}

std::shared_ptr<grpc::Channel> TestNodeChannel(const std::string& address,
                                               const std::string& node) {
  return NodeChannel(address, TestCaPem(), TestCaKeyAndCertificate(), node);
}

std::shared_ptr<grpc::Channel> TlsChannel(const std::string& address, const std::string& ca_file,
                                          const std::string& token) {
  return grpc::CreateChannel(address, TlsCredentials(ca_file, token));
}

int FreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t length = sizeof address;
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

absl::Status CreateHostpathDatastore(v1::AdminService::Stub& admin, const std::string& name,
                                     const std::string& root, bool allow_write) {
  grpc::ClientContext context;
  v1::PutDatastoreRequest request;
  v1::Datastore* store = request.mutable_datastore();
  store->set_name(name);
  store->set_type(v1::Datastore::HOSTPATH);
  store->set_path(root);
  store->set_allow_write(allow_write);
  v1::Datastore created;
  grpc::Status status = admin.PutDatastore(&context, request, &created);
  return FromGrpcStatus(status, absl::StrCat("PutDatastore ", name));
}

absl::StatusOr<std::unique_ptr<LoopbackWebdav>> LoopbackWebdav::Start(const std::string& folder,
                                                                     const std::string& log_path) {
  const int port = FreeLoopbackPort();
  absl::StatusOr<pid_t> pid = SpawnDaemon(
      {"/usr/bin/rclone", "serve", "webdav", folder, "--addr", absl::StrCat("127.0.0.1:", port)},
      log_path);
  if (!pid.ok()) return pid.status();
  std::unique_ptr<LoopbackWebdav> server(
      new LoopbackWebdav(*pid, absl::StrCat("http://127.0.0.1:", port)));
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool up = connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    close(fd);
    if (up) return server;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::DeadlineExceededError(absl::StrCat("rclone serve webdav did not listen on port ",
                                                  port, ": ", ReadWholeFile(log_path)));
}

LoopbackWebdav::~LoopbackWebdav() {
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
}

absl::Status WaitForReadyNodes(v1::AdminService::Stub& admin, int count, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    grpc::ClientContext context;
    v1::ListNodesResponse nodes;
    if (admin.ListNodes(&context, v1::ListNodesRequest(), &nodes).ok() &&
        nodes.nodes_size() == count) {
      bool ready = true;
      for (const v1::Node& node : nodes.nodes()) ready = ready && node.state() == v1::Node::READY;
      if (ready) return absl::OkStatus();
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::DeadlineExceededError(
      absl::StrCat(count, " READY node(s) did not register within ", absl::FormatDuration(timeout)));
}

absl::StatusOr<std::string> UploadBlobFile(v1::BlobService::Stub& blobs, const std::string& path) {
  std::string bytes = ReadWholeFile(path);
  std::string digest = archive::Sha256Digest(bytes);
  grpc::ClientContext context;
  v1::UploadBlobResponse response;
  auto writer = blobs.UploadBlob(&context, &response);
  v1::UploadBlobRequest header;
  header.mutable_header()->set_digest(digest);
  header.mutable_header()->set_size(static_cast<int64_t>(bytes.size()));
  writer->Write(header);
  for (size_t at = 0; at < bytes.size(); at += 1 << 20) {
    v1::UploadBlobRequest chunk;
    chunk.set_chunk(bytes.substr(at, 1 << 20));
    if (!writer->Write(chunk)) break;
  }
  writer->WritesDone();
  if (absl::Status s = FromGrpcStatus(writer->Finish()); !s.ok()) return s;
  return digest;
}

absl::StatusOr<std::string> DownloadBlob(v1::BlobService::Stub& blobs, const std::string& digest) {
  grpc::ClientContext context;
  v1::DownloadBlobRequest request;
  request.set_digest(digest);
  auto reader = blobs.DownloadBlob(&context, request);
  std::string out;
  v1::DownloadBlobResponse response;
  while (reader->Read(&response)) out += response.chunk();
  if (absl::Status s = FromGrpcStatus(reader->Finish()); !s.ok()) return s;
  return out;
}

std::string JobClient::Submit(const v1::JobSpec& spec) {
  grpc::ClientContext context;
  v1::SubmitJobRequest request;
  *request.mutable_spec() = spec;
  v1::SubmitJobResponse response;
  grpc::Status status = jobs_->SubmitJob(&context, request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return response.job().id();
}

v1::Job JobClient::Get(const std::string& id) {
  grpc::ClientContext context;
  v1::GetJobRequest request;
  request.set_job_id(id);
  v1::Job job;
  grpc::Status status = jobs_->GetJob(&context, request, &job);
  EXPECT_TRUE(status.ok()) << id << ": " << status.error_message();
  return job;
}

void GiveToJobContainers(const std::string& dir) {
  ASSERT_EQ(lchown(dir.c_str(), kJobRootUid, kJobRootUid), 0) << dir;
  std::error_code error;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir, error)) {
    ASSERT_EQ(lchown(entry.path().c_str(), kJobRootUid, kJobRootUid), 0) << entry.path();
  }
  ASSERT_FALSE(error) << dir << ": " << error.message();
}

v1::Job JobClient::WaitFor(const std::string& id, v1::JobStatus::State state,
                           absl::Duration timeout, const std::function<std::string()>& context) {
  absl::Time deadline = absl::Now() + timeout;
  v1::Job job;
  while (absl::Now() < deadline) {
    job = Get(id);
    if (job.status().state() == state) return job;
    if (job.status().end_time().seconds() > 0) break;  // ended otherwise
    absl::SleepFor(absl::Milliseconds(20));
  }
  ADD_FAILURE() << id << " did not reach " << v1::JobStatus::State_Name(state) << ": "
                << job.status().DebugString() << (context ? context() : std::string());
  return job;
}

std::string JobClient::Logs(const std::string& id, int rank, v1::LogStream stream) {
  grpc::ClientContext context;
  v1::StreamLogsRequest request;
  request.set_job_id(id);
  if (rank >= 0) request.add_ranks(rank);
  request.add_streams(stream);
  auto reader = jobs_->StreamLogs(&context, request);
  std::string out;
  v1::StreamLogsResponse response;
  while (reader->Read(&response)) out += response.data();
  grpc::Status status = reader->Finish();
  EXPECT_TRUE(status.ok()) << id << ": " << status.error_message();
  return out;
}

}  // namespace drover::testing
