// BlobServiceImpl: uploads and downloads of content-addressed blobs (snapshots, images,
// outputs) over gRPC, onto the BlobStore. Handlers run on gRPC's threads; file I/O is done
// there in chunks of at most 1 MiB, never on the core loop. A user may download the blobs
// they uploaded, and the snapshot and outputs of jobs they may read (named by the
// request's job_id); admins any blob. A node (a caller with a node certificate, authz.h)
// may download only the code snapshot and the imported image of attempts it runs now, and
// check or upload blobs (a job's outputs) only while it runs one (Core::JobReadingBlob,
// Core::RunsAnAttempt), naming the job whose outputs it uploads (Core::RunsPartOf).
//
// Quotas (blob_quota.h): a user's upload counts against their quota, a node's against the
// job owner's; once stored, the blob is held by that user (storage::Store's holders). A
// user's StatBlob says `present` only for a blob they hold (or, for an admin, any): a user
// shows they have a blob's bytes by uploading them, never by naming its digest, and learns
// nothing of other users' blobs. A blob found present, or uploaded again, counts as used
// now for retention (retention.h).
#ifndef DROVER_SERVER_BLOB_SERVICE_H_
#define DROVER_SERVER_BLOB_SERVICE_H_

#include "drover/v1/blob.grpc.pb.h"
#include "server/auth.h"
#include "server/blob_quota.h"
#include "server/core.h"
#include "server/server_metrics.h"
#include "storage/blob_store.h"
#include "storage/store.h"

namespace drover::server {

class BlobServiceImpl final : public v1::BlobService::CallbackService {
 public:
  // Every call is checked with `auth` first; `store` keeps who uploaded which blob and the
  // jobs a download may name; `core` knows which attempts each node runs.
  BlobServiceImpl(storage::BlobStore& blobs, storage::Store& store, const Core& core,
                  Authenticator& auth, BlobQuota& quota, ServerMetrics* metrics = nullptr)
      : blobs_(blobs), store_(store), core_(core), auth_(auth), quota_(quota),
        metrics_(metrics) {}

  grpc::ServerUnaryReactor* StatBlob(grpc::CallbackServerContext* context,
                                     const v1::StatBlobRequest* request,
                                     v1::StatBlobResponse* response) override;
  grpc::ServerReadReactor<v1::UploadBlobRequest>* UploadBlob(
      grpc::CallbackServerContext* context, v1::UploadBlobResponse* response) override;
  grpc::ServerWriteReactor<v1::DownloadBlobResponse>* DownloadBlob(
      grpc::CallbackServerContext* context, const v1::DownloadBlobRequest* request) override;

 private:
  storage::BlobStore& blobs_;
  storage::Store& store_;
  const Core& core_;
  Authenticator& auth_;
  BlobQuota& quota_;
  ServerMetrics* const metrics_;
};

}  // namespace drover::server

#endif  // DROVER_SERVER_BLOB_SERVICE_H_
