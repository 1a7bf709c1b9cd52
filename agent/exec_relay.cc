#include "agent/exec_relay.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/launcher/exec_frames.h"
#include "agent/peer_tls.h"
#include "common/grpc_status.h"
#include "common/log.h"

namespace drover::agent {
namespace {

namespace frames = exec_frames;

// How long a peer waits for its container of the attempt to start: node rank 0 may launch
// before another node has acted on droverd's START.
constexpr absl::Duration kStartWait = absl::Seconds(60);

}  // namespace

absl::Status CheckCallerOfAttempt(const v1::AssignAttempt& assignment, absl::string_view caller) {
  for (const std::string& node : assignment.node_names()) {
    if (node == caller) return absl::OkStatus();
  }
  return absl::PermissionDeniedError(absl::StrCat(
      "node '", caller, "' is not a node of job ", assignment.attempt().job_id(), " attempt ",
      assignment.attempt().epoch(), ": only the attempt's own nodes may run commands in it"));
}

ExecRelay::ExecRelay(v1::AttemptRef attempt, std::string token,
                     std::map<std::string, ExecPeer> peers, Connect connect,
                     int max_connections, const Clock& clock)
    : attempt_(std::move(attempt)),
      token_(std::move(token)),
      peers_(std::move(peers)),
      connect_(std::move(connect)),
      max_connections_(max_connections),
      clock_(clock) {}

ExecRelay::~ExecRelay() { Stop(); }

absl::Status ExecRelay::Listen(const std::string& path) {
  sockaddr_un address = {};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof address.sun_path) {
    return absl::InvalidArgumentError(absl::StrCat("exec relay socket path too long: ", path));
  }
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  unlink(path.c_str());
  listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0 ||
      bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      listen(listen_fd_, 64) != 0) {
    absl::Status error = absl::UnavailableError(
        absl::StrCat("exec relay socket ", path, ": ", std::strerror(errno)));
    if (listen_fd_ >= 0) close(listen_fd_);
    listen_fd_ = -1;
    return error;
  }
  acceptor_ = std::thread([this] { AcceptLoop(); });
  return absl::OkStatus();
}

void ExecRelay::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
    // shutdown() wakes the acceptor's accept() and the workers' reads.
    if (listen_fd_ >= 0) shutdown(listen_fd_, SHUT_RDWR);
    for (const auto& [fd, worker] : workers_) shutdown(fd, SHUT_RDWR);
    for (grpc::ClientContext* call : calls_) call->TryCancel();
  }
  waiter_.Notify();
  if (acceptor_.joinable()) acceptor_.join();
  std::vector<std::thread> workers;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [fd, worker] : workers_) workers.push_back(std::move(worker));
    workers_.clear();
    for (std::thread& worker : finished_) workers.push_back(std::move(worker));
    finished_.clear();
  }
  for (std::thread& worker : workers) worker.join();
  if (listen_fd_ >= 0) close(listen_fd_);
  listen_fd_ = -1;
}

void ExecRelay::AcceptLoop() {
  while (true) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    const int accept_errno = errno;
    std::vector<std::thread> finished;
    bool go_on = true;
    {
      absl::MutexLock lock(&mu_);
      finished.swap(finished_);
      if (stopped_) {
        if (fd >= 0) close(fd);
        go_on = false;
      } else if (fd < 0) {
        if (accept_errno != EINTR && accept_errno != ECONNABORTED) {
          Log(LogLevel::kWarning, "exec_relay_accept_failed",
              {{"job", attempt_.job_id()}, {"error", std::strerror(accept_errno)}});
          go_on = false;
        }
      } else if (static_cast<int>(workers_.size()) >= max_connections_) {
        Refuse(fd);
      } else {
        workers_.emplace(fd, std::thread([this, fd] { Serve(fd); }));
      }
    }
    // Threads that are done (they leave the lock last thing): quick to join.
    for (std::thread& worker : finished) worker.join();
    if (!go_on) return;
  }
}

void ExecRelay::Refuse(int fd) {
  ++refused_;
  // One line for the first refusal of a flood, then one per hundred.
  if (refused_ == 1 || refused_ % 100 == 0) {
    Log(LogLevel::kWarning, "exec_relay_connection_refused",
        {{"job", attempt_.job_id()}, {"epoch", attempt_.epoch()},
         {"open", static_cast<int64_t>(workers_.size())}, {"limit", max_connections_},
         {"refused_total", refused_}});
  }
  // A new socket's buffer takes this small frame without blocking.
  frames::WriteFrame(fd, frames::kError,
                     absl::StrCat("drover-agent: the exec relay of job ", attempt_.job_id(),
                                  " has ", workers_.size(), " connections open, the most it "
                                  "serves at once; close some (each remote launch holds one)"));
  close(fd);
}

void ExecRelay::Finish(int fd) {
  absl::MutexLock lock(&mu_);
  if (auto worker = workers_.find(fd); worker != workers_.end()) {
    finished_.push_back(std::move(worker->second));
    workers_.erase(worker);
  }
  // Under the lock: the number is not reused by accept() before it left `workers_`.
  close(fd);
}

void ExecRelay::Serve(int fd) {
  frames::Type type;
  std::string host, command;
  bool request = frames::ReadFrame(fd, &type, &host) && type == frames::kHost &&
                 frames::ReadFrame(fd, &type, &command) && type == frames::kCommand;
  auto done = [&] { Finish(fd); };
  if (!request) {
    done();
    return;
  }
  auto peer = peers_.find(host);
  if (peer == peers_.end()) {
    frames::WriteFrame(fd, frames::kError,
                       absl::StrCat("not a node of job ", attempt_.job_id(), " attempt ",
                                    attempt_.epoch(), "; hosts are its nodes' addresses"));
    done();
    return;
  }
  const ExecPeer& target = peer->second;
  std::shared_ptr<grpc::Channel> channel;
  {
    absl::MutexLock lock(&mu_);
    std::shared_ptr<grpc::Channel>& cached = channels_[target.node + "@" + target.endpoint];
    if (cached == nullptr && connect_ != nullptr) cached = connect_(target);
    channel = cached;
  }
  if (channel == nullptr) {
    frames::WriteFrame(fd, frames::kError,
                       absl::StrCat("drover-agent cannot reach node ", target.node));
    done();
    return;
  }
  auto stub = v1::AgentPeerService::NewStub(channel);
  v1::ExecRequest exec;
  *exec.mutable_attempt() = attempt_;
  exec.set_token(token_);
  exec.set_command(command);
  // The peer's agent may be restarting: it comes back on the same port (agent.cc) and takes
  // its attempt over, so a call that found no agent there is tried again, for as long as a
  // peer waits for an attempt's processes to start.
  const absl::Time deadline = clock_.Now() + kStartWait;
  for (int tries = 1;; ++tries) {
    grpc::ClientContext context;
    {
      absl::MutexLock lock(&mu_);
      if (stopped_) break;
      calls_.insert(&context);
    }
    Log(LogLevel::kDebug, "exec_relayed",
        {{"job", attempt_.job_id()}, {"host", host}, {"node", target.node}, {"peer", target.endpoint}, {"try", tries}});
    auto reader = stub->Exec(&context, exec);
    v1::ExecOutput output;
    bool have_exit = false;
    bool started = false;
    int exit_code = 0;
    while (reader->Read(&output)) {
      bool written = true;
      if (output.kind_case() == v1::ExecOutput::kStarted) {
        started = true;
        written = frames::WriteFrame(fd, frames::kStarted, "");
      } else if (output.has_stdout()) {
        written = frames::WriteFrame(fd, frames::kStdout, output.stdout());
      } else if (output.has_stderr()) {
        written = frames::WriteFrame(fd, frames::kStderr, output.stderr());
      } else if (output.kind_case() == v1::ExecOutput::kExitCode) {
        have_exit = true;
        exit_code = output.exit_code();
      }
      // drover-rsh is gone (mpirun ended it): stop following; the command, left running,
      // ends with mpirun or with the container.
      if (!written) context.TryCancel();
    }
    grpc::Status status = reader->Finish();
    {
      absl::MutexLock lock(&mu_);
      calls_.erase(&context);
    }
    if (!started && status.error_code() == grpc::StatusCode::UNAVAILABLE &&
        clock_.Now() < deadline) {
      if (tries == 1) {
        Log(LogLevel::kInfo, "exec_peer_unreachable",
            {{"job", attempt_.job_id()}, {"host", host}, {"error", status.error_message()},
             {"retrying_for", absl::FormatDuration(kStartWait)}});
      }
      waiter_.WaitFor(absl::Milliseconds(200), [this] {
        absl::MutexLock lock(&mu_);
        return stopped_;
      });
      continue;
    }
    if (status.ok() && have_exit) {
      frames::WriteFrame(fd, frames::kExit, std::to_string(exit_code));
    } else if (started) {
      // The peer agent went away (a restart) or this one stops: the command goes on there,
      // unfollowed; drover-rsh reads the closed connection as that.
      Log(LogLevel::kInfo, "exec_unfollowed",
          {{"job", attempt_.job_id()}, {"host", host}, {"error", status.error_message()}});
    } else {
      frames::WriteFrame(fd, frames::kError,
                         absl::StrCat("agent at ", target.endpoint, ": ",
                                      status.ok() ? "no exit status" : status.error_message()));
    }
    break;
  }
  done();
}

grpc::Status PeerExecService::Exec(grpc::ServerContext* context, const v1::ExecRequest* request,
                                   grpc::ServerWriter<v1::ExecOutput>* writer) {
  // TLS verified the caller's certificate against the cluster CA; which node it is decides
  // whether it may run commands in an attempt.
  absl::StatusOr<std::string> caller = CallerNode(*context);
  absl::StatusOr<std::string> container =
      caller.ok() ? lookup_(request->attempt(), request->token(), *caller)
                  : absl::StatusOr<std::string>(caller.status());
  // Nothing tells this call when the attempt's processes start: it looks again every 20 ms.
  Waiter waiter(clock_);
  waiter.WaitFor(
      kStartWait,
      [&] {
        if (!absl::IsFailedPrecondition(container.status()) || context->IsCancelled()) {
          return true;
        }
        container = lookup_(request->attempt(), request->token(), *caller);
        return !absl::IsFailedPrecondition(container.status());
      },
      /*recheck=*/absl::Milliseconds(20));
  if (!container.ok()) {
    Log(LogLevel::kWarning, "exec_refused",
        {{"job", request->attempt().job_id()}, {"epoch", request->attempt().epoch()},
         {"caller", caller.ok() ? *caller : "?"}, {"peer", context->peer()},
         {"error", container.status().message()}});
    return ToGrpcStatus(container.status());
  }
  Log(LogLevel::kDebug, "exec_started",
      {{"job", request->attempt().job_id()}, {"container", *container}});
  v1::ExecOutput started;
  started.set_started(true);
  writer->Write(started);
  // A caller that goes away (its agent restarts, or this one stops) leaves the command
  // running: an MPI daemon ends by itself when mpirun does, and with the container. It
  // ignores SIGPIPE, so that writing to its output once no agent reads it (this one was
  // killed) does not kill it; Open MPI gives the ranks it starts the default back.
  absl::StatusOr<int> code = runtime_.Exec(
      *container, {"/bin/sh", "-c", absl::StrCat("trap '' PIPE; ", request->command())},
      [writer](bool is_stderr, absl::string_view bytes) {
        v1::ExecOutput out;
        if (is_stderr) {
          out.set_stderr(std::string(bytes));
        } else {
          out.set_stdout(std::string(bytes));
        }
        writer->Write(out);
      },
      [context] { return context->IsCancelled(); });
  if (!code.ok()) {
    if (absl::IsCancelled(code.status())) {
      Log(LogLevel::kInfo, "exec_left_running",
          {{"job", request->attempt().job_id()}, {"container", *container}});
    }
    return ToGrpcStatus(code.status());
  }
  v1::ExecOutput last;
  last.set_exit_code(*code);
  writer->Write(last);
  return grpc::Status::OK;
}

}  // namespace drover::agent
