// SweepServiceImpl: the gRPC SweepService (sweep_service.proto, callback API). A submit is
// validated (the trial template as a job's spec, with the same checks of its compute
// target, image, datastores and snapshot), stored (Store::CreateSweep) and handed to the
// SweepRunner (server/sweeps.h), which starts its trials; reads go to the store and the log
// store; a cancel goes through the runner. Constructed and destroyed by Droverd; the
// handlers run on gRPC's threads.
#ifndef DROVER_SERVER_SWEEP_SERVICE_H_
#define DROVER_SERVER_SWEEP_SERVICE_H_

#include <atomic>

#include "common/clock.h"
#include "drover/v1/sweep_service.grpc.pb.h"
#include "server/auth.h"
#include "server/core.h"
#include "server/sweeps.h"
#include "storage/blob_store.h"
#include "storage/log_store.h"
#include "storage/store.h"

namespace drover::server {

class SweepServiceImpl final : public v1::SweepService::CallbackService {
 public:
  // All references must outlive the service. `core` is read only through its thread-safe
  // registries (targets, images, datastores).
  SweepServiceImpl(storage::Store& store, storage::LogStore& logs,
                   const storage::BlobStore& blobs, Core& core, SweepRunner& runner,
                   const Clock& clock, Authenticator& auth);

  // From now on SubmitSweep and CancelSweep answer UNAVAILABLE (droverd is stopping).
  void StopAccepting() { accepting_.store(false); }

  grpc::ServerUnaryReactor* SubmitSweep(grpc::CallbackServerContext* context,
                                        const v1::SubmitSweepRequest* request,
                                        v1::SubmitSweepResponse* response) override;
  grpc::ServerUnaryReactor* GetSweep(grpc::CallbackServerContext* context,
                                     const v1::GetSweepRequest* request,
                                     v1::Sweep* response) override;
  grpc::ServerUnaryReactor* ListSweeps(grpc::CallbackServerContext* context,
                                       const v1::ListSweepsRequest* request,
                                       v1::ListSweepsResponse* response) override;
  grpc::ServerUnaryReactor* CancelSweep(grpc::CallbackServerContext* context,
                                        const v1::CancelSweepRequest* request,
                                        v1::Sweep* response) override;

 private:
  storage::Store& store_;
  storage::LogStore& logs_;
  const storage::BlobStore& blobs_;
  Core& core_;
  SweepRunner& runner_;
  const Clock& clock_;
  Authenticator& auth_;
  std::atomic<bool> accepting_{true};
};

}  // namespace drover::server

#endif  // DROVER_SERVER_SWEEP_SERVICE_H_
