// BlobClient: see blob_client.h.
#include "agent/blob_client.h"

#include <grpcpp/client_context.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"

namespace drover::agent {
namespace {

constexpr int64_t kChunkBytes = 1 << 20;

}  // namespace

absl::Status BlobClient::Download(const std::string& digest, const std::string& job_id,
                                  const std::string& path) const {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  grpc::ClientContext context;
  v1::DownloadBlobRequest request;
  request.set_digest(digest);
  if (!job_id.empty()) request.set_job_id(job_id);
  auto reader = stub_()->DownloadBlob(&context, request);
  v1::DownloadBlobResponse chunk;
  bool written = static_cast<bool>(out);
  while (reader->Read(&chunk)) {
    if (written) written = static_cast<bool>(out.write(chunk.chunk().data(), chunk.chunk().size()));
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) return FromGrpcStatus(status);
  if (!written || !out.flush()) {
    return absl::ResourceExhaustedError(absl::StrCat("cannot write ", path, " (disk full?)"));
  }
  return absl::OkStatus();
}

absl::Status BlobClient::Upload(const std::string& path, const std::string& digest,
                                uint64_t size, const std::string& job_id) const {
  grpc::ClientContext stat_context;
  v1::StatBlobRequest stat;
  stat.set_digest(digest);
  v1::StatBlobResponse present;
  if (grpc::Status status = stub_()->StatBlob(&stat_context, stat, &present); !status.ok()) {
    return FromGrpcStatus(status);
  }
  if (present.present()) return absl::OkStatus();
  grpc::ClientContext context;
  v1::UploadBlobResponse response;
  auto writer = stub_()->UploadBlob(&context, &response);
  v1::UploadBlobRequest header;
  header.mutable_header()->set_digest(digest);
  header.mutable_header()->set_size(static_cast<int64_t>(size));
  header.mutable_header()->set_job_id(job_id);
  bool ok = writer->Write(header);
  std::ifstream in(path, std::ios::binary);
  std::string buffer(kChunkBytes, '\0');
  while (ok && in) {
    in.read(buffer.data(), kChunkBytes);
    std::streamsize n = in.gcount();
    if (n <= 0) break;
    v1::UploadBlobRequest piece;
    piece.set_chunk(buffer.substr(0, static_cast<size_t>(n)));
    ok = writer->Write(piece);
  }
  writer->WritesDone();
  return FromGrpcStatus(writer->Finish());
}

}  // namespace drover::agent
