// AdminSocket: droverd's local admin socket (`<state-dir>/admin.sock`, docs/security.md).
// droverd listens on it itself rather than through gRPC, so that it can read each
// connection's peer credentials (SO_PEERCRED) before gRPC sees a byte: a connection from
// root or from droverd's own uid goes to gRPC with local credentials (admin without a
// token, see auth.cc); any other goes to gRPC with insecure credentials, where every call
// is refused PERMISSION_DENIED saying why. The file mode (0600 in a 0700 folder) already
// keeps others out; this is the second lock, for a socket someone loosened.
//
// Owned by Droverd. One accept thread; the methods are called from Droverd's thread.
#ifndef DROVER_SERVER_ADMIN_SOCKET_H_
#define DROVER_SERVER_ADMIN_SOCKET_H_

#include <grpcpp/server_builder.h>
#include <sys/types.h>

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace drover::server {

// Whether a peer of uid `peer` may use the admin socket of a droverd running as `self`.
inline bool AdminSocketPeerAllowed(uid_t peer, uid_t self) { return peer == 0 || peer == self; }

class AdminSocket {
 public:
  // Replaces a stale socket at `path` (never another kind of file), binds and listens with
  // mode 0600. UNAVAILABLE naming the path when it cannot.
  static absl::StatusOr<std::unique_ptr<AdminSocket>> Listen(const std::string& path);
  ~AdminSocket();

  // Registers the socket's two ways into gRPC with `builder`; before BuildAndStart.
  void AddTo(grpc::ServerBuilder& builder);
  // Starts accepting connections; after the server started.
  void Start();
  // Stops accepting and closes the socket (connections already handed over stay with
  // gRPC). Idempotent.
  void Stop();

  const std::string& path() const { return path_; }

 private:
  AdminSocket() = default;
  void AcceptLoop();

  std::string path_;
  int listen_fd_ = -1;
  int stop_fd_ = -1;  // eventfd: written by Stop to end AcceptLoop
  std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> admitted_;
  std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> refused_;
  std::thread thread_;
};

}  // namespace drover::server

#endif  // DROVER_SERVER_ADMIN_SOCKET_H_
