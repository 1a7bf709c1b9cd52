// StandbyServer: what a standby droverd serves while another droverd holds the leader
// lease (docs/operations.md#standby): every call on every service, streams included, is
// answered UNAVAILABLE at once, with the leader's address in the message and in the
// trailing metadata `drover-leader` (common/leader_redirect.h), so that clients and agents
// that know that address go there. It holds no state of the cluster and reads nothing.
// Thread-safe.
#ifndef DROVER_SERVER_STANDBY_SERVER_H_
#define DROVER_SERVER_STANDBY_SERVER_H_

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace drover::server {

class StandbyServer {
 public:
  // Listens on `listen` ("HOST:PORT"; port 0: the kernel picks, see port()). UNAVAILABLE when
  // the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<StandbyServer>> Start(
      const std::string& listen, std::shared_ptr<grpc::ServerCredentials> credentials);
  ~StandbyServer();

  // The port bound.
  int port() const { return port_; }
  // The leader's address named from now on; empty: none known (the lease ran out, or the
  // database could not be read).
  void SetLeader(std::string address);
  // Stops answering and closes the port (calls in flight end). Idempotent.
  void Stop();

 private:
  class Service : public grpc::CallbackGenericService {
   public:
    explicit Service(StandbyServer& server) : server_(server) {}
    grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* context) override;

   private:
    StandbyServer& server_;
  };

  StandbyServer() : service_(*this) {}
  std::string leader() const;

  Service service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  mutable absl::Mutex mu_;
  std::string leader_ ABSL_GUARDED_BY(mu_);
};

}  // namespace drover::server

#endif  // DROVER_SERVER_STANDBY_SERVER_H_
