// BlobServiceImpl: uploads and downloads of content-addressed blobs (snapshots, images,
// outputs) over gRPC, onto the BlobStore. Handlers run on gRPC's threads; file I/O is done
// there in chunks of at most 1 MiB, never on the core loop.
#ifndef DROVER_SERVER_BLOB_SERVICE_H_
#define DROVER_SERVER_BLOB_SERVICE_H_

#include "drover/v1/blob.grpc.pb.h"
#include "storage/blob_store.h"

namespace drover::server {

class BlobServiceImpl final : public v1::BlobService::CallbackService {
 public:
  explicit BlobServiceImpl(storage::BlobStore& blobs) : blobs_(blobs) {}

  grpc::ServerUnaryReactor* StatBlob(grpc::CallbackServerContext* context,
                                     const v1::StatBlobRequest* request,
                                     v1::StatBlobResponse* response) override;
  grpc::ServerReadReactor<v1::UploadBlobRequest>* UploadBlob(
      grpc::CallbackServerContext* context, v1::UploadBlobResponse* response) override;
  grpc::ServerWriteReactor<v1::DownloadBlobResponse>* DownloadBlob(
      grpc::CallbackServerContext* context, const v1::DownloadBlobRequest* request) override;

 private:
  storage::BlobStore& blobs_;
};

}  // namespace drover::server

#endif  // DROVER_SERVER_BLOB_SERVICE_H_
