// AdminServiceImpl: node, compute target, image and datastore administration over gRPC.
// Every call is answered from the core loop. Handlers run on gRPC's threads and never block
// (PutImage stats one file of the blob store).
#ifndef DROVER_SERVER_ADMIN_SERVICE_H_
#define DROVER_SERVER_ADMIN_SERVICE_H_

#include "drover/v1/admin_service.grpc.pb.h"
#include "common/clock.h"
#include "server/auth.h"
#include "server/blob_quota.h"
#include "server/core.h"
#include "storage/store.h"
#include "server/core_loop.h"
#include "server/retention.h"
#include "storage/blob_store.h"

namespace drover::server {

class AdminServiceImpl final : public v1::AdminService::CallbackService {
 public:
  // `blobs`: where PutImage finds the uploaded archive; `store`: users; every call is
  // checked with `auth` first.
  // `retention` runs CollectGarbage's pass.
  AdminServiceImpl(Core& core, CoreLoop& loop, const storage::BlobStore& blobs,
                   storage::Store& store, Authenticator& auth, const Clock& clock,
                   Retention& retention, BlobQuota& quota)
      : core_(core), loop_(loop), blobs_(blobs), store_(store), auth_(auth), clock_(clock),
        retention_(retention), quota_(quota) {}

  grpc::ServerUnaryReactor* ListNodes(grpc::CallbackServerContext* context,
                                      const v1::ListNodesRequest* request,
                                      v1::ListNodesResponse* response) override;
  grpc::ServerUnaryReactor* CordonNode(grpc::CallbackServerContext* context,
                                       const v1::NodeRequest* request, v1::Node* response) override;
  grpc::ServerUnaryReactor* UncordonNode(grpc::CallbackServerContext* context,
                                         const v1::NodeRequest* request,
                                         v1::Node* response) override;
  grpc::ServerUnaryReactor* DrainNode(grpc::CallbackServerContext* context,
                                      const v1::NodeRequest* request, v1::Node* response) override;
  grpc::ServerUnaryReactor* DeclareNodeLost(grpc::CallbackServerContext* context,
                                            const v1::NodeRequest* request,
                                            v1::Node* response) override;
  grpc::ServerUnaryReactor* PutComputeTarget(grpc::CallbackServerContext* context,
                                             const v1::PutComputeTargetRequest* request,
                                             v1::ComputeTarget* response) override;
  grpc::ServerUnaryReactor* ListComputeTargets(grpc::CallbackServerContext* context,
                                               const v1::ListComputeTargetsRequest* request,
                                               v1::ListComputeTargetsResponse* response) override;
  grpc::ServerUnaryReactor* DeleteComputeTarget(grpc::CallbackServerContext* context,
                                                const v1::DeleteComputeTargetRequest* request,
                                                v1::DeleteComputeTargetResponse* response) override;
  grpc::ServerUnaryReactor* PutImage(grpc::CallbackServerContext* context,
                                     const v1::PutImageRequest* request,
                                     v1::Image* response) override;
  grpc::ServerUnaryReactor* ListImages(grpc::CallbackServerContext* context,
                                       const v1::ListImagesRequest* request,
                                       v1::ListImagesResponse* response) override;
  grpc::ServerUnaryReactor* DeleteImage(grpc::CallbackServerContext* context,
                                        const v1::DeleteImageRequest* request,
                                        v1::DeleteImageResponse* response) override;
  grpc::ServerUnaryReactor* PutDatastore(grpc::CallbackServerContext* context,
                                         const v1::PutDatastoreRequest* request,
                                         v1::Datastore* response) override;
  grpc::ServerUnaryReactor* ListDatastores(grpc::CallbackServerContext* context,
                                           const v1::ListDatastoresRequest* request,
                                           v1::ListDatastoresResponse* response) override;
  grpc::ServerUnaryReactor* DeleteDatastore(grpc::CallbackServerContext* context,
                                            const v1::DeleteDatastoreRequest* request,
                                            v1::DeleteDatastoreResponse* response) override;
  grpc::ServerUnaryReactor* CreateUser(grpc::CallbackServerContext* context,
                                       const v1::CreateUserRequest* request,
                                       v1::UserToken* response) override;
  grpc::ServerUnaryReactor* ListUsers(grpc::CallbackServerContext* context,
                                      const v1::ListUsersRequest* request,
                                      v1::ListUsersResponse* response) override;
  grpc::ServerUnaryReactor* RevokeUser(grpc::CallbackServerContext* context,
                                       const v1::RevokeUserRequest* request,
                                       v1::User* response) override;
  grpc::ServerUnaryReactor* SetUserBlobQuota(grpc::CallbackServerContext* context,
                                             const v1::SetUserBlobQuotaRequest* request,
                                             v1::User* response) override;
  grpc::ServerUnaryReactor* IssueUserToken(grpc::CallbackServerContext* context,
                                           const v1::IssueUserTokenRequest* request,
                                           v1::UserToken* response) override;
  grpc::ServerUnaryReactor* WhoAmI(grpc::CallbackServerContext* context,
                                   const v1::WhoAmIRequest* request, v1::User* response) override;
  grpc::ServerUnaryReactor* ListAuditRecords(grpc::CallbackServerContext* context,
                                             const v1::ListAuditRecordsRequest* request,
                                             v1::ListAuditRecordsResponse* response) override;
  // Runs the retention pass on this gRPC thread (it reads every job once).
  grpc::ServerUnaryReactor* CollectGarbage(grpc::CallbackServerContext* context,
                                           const v1::CollectGarbageRequest* request,
                                           v1::CollectGarbageResponse* response) override;

 private:
  Core& core_;
  CoreLoop& loop_;
  const storage::BlobStore& blobs_;
  storage::Store& store_;
  Authenticator& auth_;
  const Clock& clock_;
  Retention& retention_;
  BlobQuota& quota_;
};

}  // namespace drover::server

#endif  // DROVER_SERVER_ADMIN_SERVICE_H_
