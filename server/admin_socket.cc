#include "server/admin_socket.h"

#include <grpcpp/security/server_credentials.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace drover::server {

absl::StatusOr<std::unique_ptr<AdminSocket>> AdminSocket::Listen(const std::string& path) {
  auto socket = std::unique_ptr<AdminSocket>(new AdminSocket());
  socket->path_ = path;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof(address.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--admin-socket: '", path, "' is longer than a Unix socket path may be (",
        sizeof(address.sun_path) - 1, " bytes); give a shorter path"));
  }
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  auto fail = [&](absl::string_view what) {
    return absl::UnavailableError(
        absl::StrCat("cannot ", what, " the admin socket '", path, "': ", strerror(errno)));
  };
  // A stale socket of a droverd that died (this one holds the state lock) is replaced.
  struct stat existing;
  if (lstat(path.c_str(), &existing) == 0 && S_ISSOCK(existing.st_mode)) unlink(path.c_str());
  socket->listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (socket->listen_fd_ < 0) return fail("create");
  // Made under umask 077, so that no moment exists where others may connect.
  mode_t previous = umask(077);
  int bound = bind(socket->listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof address);
  umask(previous);
  if (bound != 0) return fail("bind");
  if (chmod(path.c_str(), 0600) != 0) return fail("chmod");
  if (listen(socket->listen_fd_, 64) != 0) return fail("listen on");
  socket->stop_fd_ = eventfd(0, EFD_CLOEXEC);
  if (socket->stop_fd_ < 0) return fail("make the stop event of");
  return socket;
}

AdminSocket::~AdminSocket() {
  Stop();
  if (stop_fd_ >= 0) close(stop_fd_);
}

void AdminSocket::AddTo(grpc::ServerBuilder& builder) {
  admitted_ = builder.experimental().AddExternalConnectionAcceptor(
      grpc::ServerBuilder::experimental_type::ExternalConnectionType::FROM_FD,
      grpc::experimental::LocalServerCredentials(UDS));
  refused_ = builder.experimental().AddExternalConnectionAcceptor(
      grpc::ServerBuilder::experimental_type::ExternalConnectionType::FROM_FD,
      grpc::InsecureServerCredentials());
}

void AdminSocket::Start() {
  if (thread_.joinable() || listen_fd_ < 0) return;
  thread_ = std::thread([this] { AcceptLoop(); });
}

void AdminSocket::Stop() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    (void)!write(stop_fd_, &one, sizeof one);
    thread_.join();
  }
  if (listen_fd_ >= 0) {
    close(listen_fd_);
    listen_fd_ = -1;
    struct stat existing;
    if (lstat(path_.c_str(), &existing) == 0 && S_ISSOCK(existing.st_mode)) unlink(path_.c_str());
  }
}

void AdminSocket::AcceptLoop() {
  const uid_t self = geteuid();
  while (true) {
    pollfd fds[2] = {{.fd = listen_fd_, .events = POLLIN, .revents = 0},
                     {.fd = stop_fd_, .events = POLLIN, .revents = 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      Log(LogLevel::kError, "admin_socket_poll_failed", {{"error", strerror(errno)}});
      return;
    }
    if (fds[1].revents != 0) return;
    if (fds[0].revents == 0) continue;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) continue;  // the peer gave up, or out of descriptors for now
    ucred peer{};
    socklen_t size = sizeof peer;
    const bool known = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &size) == 0;
    grpc::experimental::ExternalConnectionAcceptor::NewConnectionParameters connection;
    connection.listener_fd = listen_fd_;
    connection.fd = fd;
    if (known && AdminSocketPeerAllowed(peer.uid, self)) {
      admitted_->HandleNewConnection(&connection);
    } else {
      Log(LogLevel::kWarning, "admin_socket_refused",
          {{"uid", known ? static_cast<int64_t>(peer.uid) : int64_t{-1}},
           {"pid", known ? static_cast<int64_t>(peer.pid) : int64_t{-1}}});
      refused_->HandleNewConnection(&connection);
    }
  }
}

}  // namespace drover::server
