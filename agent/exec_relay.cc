#include "agent/exec_relay.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/launcher/exec_frames.h"
#include "common/log.h"

namespace drover::agent {
namespace {

namespace frames = exec_frames;

// How long a peer waits for its container of the attempt to start: node rank 0 may launch
// before another node has acted on droverd's START.
constexpr absl::Duration kStartWait = absl::Seconds(60);

}  // namespace

ExecRelay::ExecRelay(v1::AttemptRef attempt, std::string token,
                     std::map<std::string, std::string> peers)
    : attempt_(std::move(attempt)), token_(std::move(token)), peers_(std::move(peers)) {}

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
  std::vector<std::thread> workers;
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
    // shutdown() wakes the acceptor's accept() and the workers' reads.
    if (listen_fd_ >= 0) shutdown(listen_fd_, SHUT_RDWR);
    for (int fd : connections_) shutdown(fd, SHUT_RDWR);
    for (grpc::ClientContext* call : calls_) call->TryCancel();
  }
  if (acceptor_.joinable()) acceptor_.join();
  {
    absl::MutexLock lock(&mu_);
    workers.swap(workers_);
  }
  for (std::thread& worker : workers) worker.join();
  if (listen_fd_ >= 0) close(listen_fd_);
  listen_fd_ = -1;
}

void ExecRelay::AcceptLoop() {
  while (true) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    absl::MutexLock lock(&mu_);
    if (stopped_) {
      if (fd >= 0) close(fd);
      return;
    }
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      Log(LogLevel::kWarning, "exec_relay_accept_failed",
          {{"job", attempt_.job_id()}, {"error", std::strerror(errno)}});
      return;
    }
    connections_.insert(fd);
    workers_.emplace_back([this, fd] { Serve(fd); });
  }
}

void ExecRelay::Serve(int fd) {
  frames::Type type;
  std::string host, command;
  bool request = frames::ReadFrame(fd, &type, &host) && type == frames::kHost &&
                 frames::ReadFrame(fd, &type, &command) && type == frames::kCommand;
  auto done = [&] {
    absl::MutexLock lock(&mu_);
    connections_.erase(fd);
    close(fd);
  };
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
  std::shared_ptr<grpc::Channel> channel;
  {
    absl::MutexLock lock(&mu_);
    std::shared_ptr<grpc::Channel>& cached = channels_[peer->second];
    if (cached == nullptr) {
      cached = grpc::CreateChannel(peer->second, grpc::InsecureChannelCredentials());
    }
    channel = cached;
  }
  auto stub = v1::AgentPeerService::NewStub(channel);
  v1::ExecRequest exec;
  *exec.mutable_attempt() = attempt_;
  exec.set_token(token_);
  exec.set_command(command);
  // The peer's agent may be restarting: it comes back on the same port (agent.cc) and takes
  // its attempt over, so a call that found no agent there is tried again, for as long as a
  // peer waits for an attempt's processes to start.
  const absl::Time deadline = absl::Now() + kStartWait;
  for (int tries = 1;; ++tries) {
    grpc::ClientContext context;
    {
      absl::MutexLock lock(&mu_);
      if (stopped_) {
        connections_.erase(fd);
        close(fd);
        return;
      }
      calls_.insert(&context);
    }
    Log(LogLevel::kDebug, "exec_relayed",
        {{"job", attempt_.job_id()}, {"host", host}, {"peer", peer->second}, {"try", tries}});
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
        absl::Now() < deadline) {
      if (tries == 1) {
        Log(LogLevel::kInfo, "exec_peer_unreachable",
            {{"job", attempt_.job_id()}, {"host", host}, {"error", status.error_message()},
             {"retrying_for", absl::FormatDuration(kStartWait)}});
      }
      absl::SleepFor(absl::Milliseconds(200));
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
                         absl::StrCat("agent at ", peer->second, ": ",
                                      status.ok() ? "no exit status" : status.error_message()));
    }
    break;
  }
  done();
}

grpc::Status PeerExecService::Exec(grpc::ServerContext* context, const v1::ExecRequest* request,
                                   grpc::ServerWriter<v1::ExecOutput>* writer) {
  absl::StatusOr<std::string> container = lookup_(request->attempt(), request->token());
  absl::Time deadline = absl::Now() + kStartWait;
  while (absl::IsFailedPrecondition(container.status()) && absl::Now() < deadline &&
         !context->IsCancelled()) {
    absl::SleepFor(absl::Milliseconds(20));
    container = lookup_(request->attempt(), request->token());
  }
  if (!container.ok()) {
    Log(LogLevel::kWarning, "exec_refused",
        {{"job", request->attempt().job_id()}, {"epoch", request->attempt().epoch()},
         {"peer", context->peer()}, {"error", container.status().message()}});
    return grpc::Status(static_cast<grpc::StatusCode>(container.status().code()),
                        std::string(container.status().message()));
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
    return grpc::Status(static_cast<grpc::StatusCode>(code.status().code()),
                        std::string(code.status().message()));
  }
  v1::ExecOutput last;
  last.set_exit_code(*code);
  writer->Write(last);
  return grpc::Status::OK;
}

}  // namespace drover::agent
