// Agent's peer port (agent.h): the AgentPeerService server other nodes' agents call for
// MPI's remote launches, the port it keeps across restarts, and the lookup of the container
// a call may run in.
#include <fcntl.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/server_builder.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "agent/agent.h"
#include "common/log.h"

namespace drover::agent {

int SavedPeerPort(const std::string& path) {
  // Not followed through a link, never blocking on a FIFO, a few bytes at most.
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return 0;
  struct stat st {};
  char text[16] = {};
  ssize_t n = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? ::read(fd, text, sizeof text - 1) : -1;
  ::close(fd);
  int port = 0;
  if (n <= 0 || !absl::SimpleAtoi(absl::StripAsciiWhitespace(absl::string_view(text, n)), &port) ||
      port <= 0 || port >= 65536) {
    return 0;
  }
  return port;
}

void SavePeerPort(const std::string& path, int port) {
  // A new file renamed over the old one: a link there is replaced, not written through.
  std::string temporary = path + ".new";
  ::unlink(temporary.c_str());
  int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return;
  std::string text = absl::StrCat(port, "\n");
  bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  if (!written || ::rename(temporary.c_str(), path.c_str()) != 0) ::unlink(temporary.c_str());
}

absl::Status Agent::StartPeerServer() {
  const std::string host = options_.peer_listen.substr(0, options_.peer_listen.rfind(':'));
  const std::string wanted = options_.peer_listen.substr(options_.peer_listen.rfind(':') + 1);
  // With a port the kernel picks, the port of the earlier agent process first: mpirun of a
  // live MPI attempt reaches this node through the endpoint droverd handed out then, which
  // must still lead here after a restart.
  const std::string port_file = options_.work_dir + "/peer-port";
  std::vector<std::string> candidates = {wanted};
  if (int saved = SavedPeerPort(port_file); wanted == "0" && saved > 0) {
    candidates.insert(candidates.begin(), absl::StrCat(saved));
  }
  // grpc.health.v1.Health on the same port, behind the same TLS: SERVING while the agent
  // serves (a process-wide switch; the peer server is the agent's only gRPC server).
  grpc::EnableDefaultHealthCheckService(true);
  for (size_t i = 0; i < candidates.size(); ++i) {
    // A service is registered with one server only: a new one for each try.
    peer_service_ = std::make_unique<PeerExecService>(
        runtime_, [this](const v1::AttemptRef& attempt, const std::string& token,
                         const std::string& caller) { return ExecTarget(attempt, token, caller); },
        clock_);
    grpc::ServerBuilder builder;
    // Not shared with another process that binds the same port (gRPC allows it by default).
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    int port = 0;
    // Mutual TLS with node certificates (agent/peer_tls.h); which node may do what is
    // checked per call (PeerExecService).
    builder.AddListeningPort(absl::StrCat(host, ":", candidates[i]),
                             peer_tls_.ServerCredentials(), &port);
    builder.RegisterService(peer_service_.get());
    peer_server_ = builder.BuildAndStart();
    if (peer_server_ == nullptr || port == 0) {
      peer_server_.reset();
      continue;
    }
    peer_endpoint_ = absl::StrCat(host, ":", port);
    if (wanted == "0") SavePeerPort(port_file, port);
    if (i > 0) {
      Log(LogLevel::kWarning, "peer_port_changed",
          {{"port", port}, {"earlier", candidates.front()},
           {"effect", "MPI attempts of this node from before the restart cannot start ranks here"}});
    }
    break;
  }
  if (peer_server_ == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on --peer-listen ", options_.peer_listen));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Agent::ExecTarget(const v1::AttemptRef& attempt,
                                              const std::string& token,
                                              const std::string& caller) {
  absl::MutexLock lock(&mu_);
  auto it = attempts_.find(Key(attempt));
  if (it == attempts_.end()) {
    if (ended_.contains(Key(attempt))) {
      return absl::NotFoundError("the attempt's processes have ended on this node");
    }
    return absl::NotFoundError(absl::StrCat("this node does not run job ", attempt.job_id(),
                                            " attempt ", attempt.epoch()));
  }
  return it->second->ExecTarget(token, caller);
}

}  // namespace drover::agent
