#include "tests/testing/cluster.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/archive/sha256.h"

namespace drover::testing {
namespace {

absl::Status FromGrpc(const grpc::Status& status) {
  return status.ok() ? absl::OkStatus()
                     : absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                                    status.error_message());
}

}  // namespace

std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
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
  if (absl::Status s = FromGrpc(writer->Finish()); !s.ok()) return s;
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
  if (absl::Status s = FromGrpc(reader->Finish()); !s.ok()) return s;
  return out;
}

}  // namespace drover::testing
