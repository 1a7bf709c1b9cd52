#include "cli/keeper.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/server_posix.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "cli/grpc_drover_client.h"
#include "cli/keeper_socket.h"

namespace drover::cli {
namespace {

int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// What the keeper knows of its calls: how many are running and when the last one that
// reached droverd ended (steady clock). Any thread.
struct Activity {
  std::atomic<int> in_flight{0};
  std::atomic<int64_t> last_used{NowNanos()};
};

// Metadata gRPC itself sets on a call (pseudo-headers, transport headers): the forwarded
// call gets its own. Everything else (`authorization` above all) goes through unchanged.
bool IsTransportHeader(absl::string_view key) {
  return absl::StartsWith(key, ":") || absl::StartsWith(key, "grpc-") || key == "user-agent" ||
         key == "te" || key == "content-type" || key == "host";
}

// One forwarded unary call: read the request, call droverd with the caller's metadata and
// deadline, answer with droverd's response and status.
class Forward final : public grpc::ServerGenericBidiReactor {
 public:
  Forward(grpc::GenericCallbackServerContext* server, grpc::GenericStub* upstream,
          Activity* activity)
      : server_(server), upstream_(upstream), activity_(activity) {
    activity_->in_flight.fetch_add(1);
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "the drover keeper forwards unary calls only: no request came"));
      return;
    }
    for (const auto& [key, value] : server_->client_metadata()) {
      absl::string_view k(key.data(), key.size());
      if (!IsTransportHeader(k)) {
        client_.AddMetadata(std::string(k), std::string(value.data(), value.size()));
      }
    }
    client_.set_deadline(server_->deadline());
    upstream_->UnaryCall(&client_, server_->method(), grpc::StubOptions(), &request_,
                         &response_, [this](grpc::Status status) {
                           // UNAVAILABLE: droverd not reached; the CLI goes direct and
                           // this keeper should not be kept alive by it.
                           if (status.error_code() != grpc::StatusCode::UNAVAILABLE) {
                             activity_->last_used.store(NowNanos());
                           }
                           if (status.ok()) {
                             StartWriteAndFinish(&response_, grpc::WriteOptions(), status);
                           } else {
                             Finish(status);
                           }
                         });
  }

  // The caller went away (or its deadline passed): so does the forwarded call.
  void OnCancel() override { client_.TryCancel(); }

  void OnDone() override {
    activity_->in_flight.fetch_sub(1);
    delete this;
  }

 private:
  grpc::GenericCallbackServerContext* server_;
  grpc::GenericStub* upstream_;
  Activity* activity_;
  grpc::ClientContext client_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;
};

class ForwardingService final : public grpc::CallbackGenericService {
 public:
  ForwardingService(grpc::GenericStub* upstream, Activity* activity)
      : upstream_(upstream), activity_(activity) {}
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override {
    return new Forward(ctx, upstream_, activity_);
  }

 private:
  grpc::GenericStub* upstream_;
  Activity* activity_;
};

// Whether `path` is still the socket this keeper bound (same device and inode).
bool StillOurs(const std::string& path, const struct stat& bound) {
  struct stat now;
  return lstat(path.c_str(), &now) == 0 && now.st_dev == bound.st_dev &&
         now.st_ino == bound.st_ino;
}

// Binds and listens on `path` (0600), replacing a stale socket file. The caller holds the
// lock, so no live keeper is listening there.
absl::StatusOr<int> Listen(const std::string& path) {
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat(path, " is too long for a Unix socket"));
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("socket: ", std::strerror(errno)));
  unlink(path.c_str());
  mode_t old_mask = umask(077);
  int bound = bind(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr));
  umask(old_mask);
  if (bound != 0 || listen(fd, 64) != 0) {
    int error = errno;
    close(fd);
    return absl::UnavailableError(absl::StrCat("cannot listen on ", path, ": ",
                                               std::strerror(error)));
  }
  return fd;
}

}  // namespace

absl::StatusOr<KeeperOptions> ParseKeeperArgs(const std::vector<std::string>& args) {
  KeeperOptions options;
  for (size_t i = 0; i < args.size(); i += 2) {
    if (i + 1 >= args.size()) {
      return absl::InvalidArgumentError(absl::StrCat("__keeper: ", args[i], " needs a value"));
    }
    const std::string& value = args[i + 1];
    if (args[i] == "--socket") {
      options.socket_path = value;
    } else if (args[i] == "--server") {
      options.address = value;
    } else if (args[i] == "--ca") {
      options.ca_file = value;
    } else if (args[i] == "--idle") {
      int64_t seconds;
      if (!absl::SimpleAtoi(value, &seconds) || seconds <= 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("__keeper: --idle '", value, "' is not a number of seconds"));
      }
      options.idle = absl::Seconds(seconds);
    } else {
      return absl::InvalidArgumentError(absl::StrCat("__keeper: unknown flag '", args[i], "'"));
    }
  }
  if (options.socket_path.empty() || options.address.empty() || options.ca_file.empty()) {
    return absl::InvalidArgumentError("__keeper: --socket, --server and --ca are required");
  }
  return options;
}

absl::Status RunKeeper(const KeeperOptions& options) {
  std::string folder = options.socket_path.substr(0, options.socket_path.rfind('/'));
  if (absl::Status safe = CheckPrivateFolder(folder, getuid()); !safe.ok()) return safe;
  // One keeper per socket: the lock is held for the keeper's life and let go by the kernel
  // when it ends, so a stale socket file next to a free lock is safe to replace.
  std::string lock_path = options.socket_path + ".lock";
  int lock = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (lock < 0 || flock(lock, LOCK_EX | LOCK_NB) != 0) {
    return absl::AlreadyExistsError(absl::StrCat(lock_path, " is held by another keeper"));
  }
  ConnectOptions connect{.address = options.address, .ca_file = options.ca_file};
  absl::StatusOr<std::string> ca_pem = ReadCaFile(connect);
  if (!ca_pem.ok()) return ca_pem.status();
  std::shared_ptr<grpc::Channel> channel = DroverTlsChannel(options.address, *ca_pem);
  if (channel == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("'", options.address, "' is not an address"));
  }
  channel->GetState(/*try_to_connect=*/true);  // the handshake before the first call
  grpc::GenericStub upstream(channel);
  Activity activity;
  ForwardingService service(&upstream, &activity);
  grpc::ServerBuilder builder;
  builder.RegisterCallbackGenericService(&service);
  builder.SetMaxReceiveMessageSize(-1);  // droverd decides what is too large
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr) return absl::InternalError("cannot start the keeper's gRPC server");

  absl::StatusOr<int> listener = Listen(options.socket_path);
  if (!listener.ok()) return listener.status();
  struct stat bound;
  if (lstat(options.socket_path.c_str(), &bound) != 0) {
    return absl::UnavailableError(absl::StrCat(options.socket_path, " vanished"));
  }
  const int64_t idle_nanos = absl::ToInt64Nanoseconds(options.idle);
  while (true) {
    struct pollfd pfd = {.fd = *listener, .events = POLLIN, .revents = 0};
    if (poll(&pfd, 1, /*timeout_ms=*/500) > 0) {
      int fd = accept4(*listener, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd >= 0) {
        absl::StatusOr<uid_t> peer = PeerUid(fd);
        if (peer.ok() && *peer == getuid()) {
          grpc::AddInsecureChannelFromFd(server.get(), fd);  // gRPC owns fd now
        } else {
          close(fd);  // another user: nothing to say to them
        }
      }
    }
    if (!StillOurs(options.socket_path, bound)) break;  // removed or replaced: not ours
    if (activity.in_flight.load() == 0 &&
        NowNanos() - activity.last_used.load() > idle_nanos) {
      if (StillOurs(options.socket_path, bound)) unlink(options.socket_path.c_str());
      break;
    }
    channel->GetState(/*try_to_connect=*/true);  // keep reconnecting while droverd restarts
  }
  close(*listener);
  return absl::OkStatus();
}

}  // namespace drover::cli
