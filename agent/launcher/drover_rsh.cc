// drover-rsh: the remote-shell agent Drover places in MPI job containers (at
// /run/drover-mpi/rsh), so that `mpirun --mca plm_rsh_agent /run/drover-mpi/rsh` starts its remote
// daemons without sshd or keys. Open MPI calls it as ssh:
//
//   drover-rsh [ssh-style options] HOST COMMAND...
//
// It asks the node's drover-agent over the attempt's Unix socket (bound into the container
// at /run/drover-mpi/relay/exec.sock, or $DROVER_EXEC_SOCKET) to run COMMAND (the words joined
// with spaces, as ssh does) with `/bin/sh -c` in HOST's container of the same attempt; the
// agent asks HOST's agent, which checks the attempt's secret. The command's output comes
// back on stdout and stderr, and its exit code is drover-rsh's. Standard input is not
// forwarded (Open MPI's daemons do not read it). Exit 255 when the command could not be run,
// with the reason on stderr, as ssh does. When an agent on the way restarts while the
// command runs, the command goes on (an Open MPI daemon keeps its own connection to
// mpirun): drover-rsh says so on stderr and exits 0, since to mpirun a failed remote shell
// means a daemon that failed to start, and it would end the job. When the agent does not
// answer (it restarts), drover-rsh waits for the next one, up to a minute.
//
// Statically linked, plain C++ and libc, like drover-init.
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <string>

#include "agent/launcher/exec_frames.h"

namespace {

namespace frames = drover::agent::exec_frames;

constexpr int kFailedExit = 255;
// How long a refused connection to the agent is tried again, and how often.
constexpr int kConnectWaitMs = 60 * 1000;
constexpr int kConnectRetryMs = 100;

int Fail(const std::string& message) {
  fprintf(stderr, "drover-rsh: %s\n", message.c_str());
  return kFailedExit;
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  int i = 1;
  // ssh-style options before the host: the ones that take a value skip it too.
  for (; i < argc && argv[i][0] == '-'; ++i) {
    std::string option = argv[i];
    if (option == "--") {
      ++i;
      break;
    }
    if (option.size() == 2 && strchr("bcDEeFIiJLlmOopQRSWw", option[1]) != nullptr) ++i;
  }
  if (i >= argc) return Fail("usage: drover-rsh [options] HOST COMMAND...");
  std::string host = argv[i++];
  // ssh's own `user@host`: the user part means nothing here.
  if (size_t at = host.rfind('@'); at != std::string::npos) host = host.substr(at + 1);
  std::string command;
  for (; i < argc; ++i) {
    if (!command.empty()) command += ' ';
    command += argv[i];
  }
  if (command.empty()) return Fail("no command given for " + host + " (no login shells)");

  const char* path = getenv("DROVER_EXEC_SOCKET");
  if (path == nullptr || *path == '\0') path = frames::kSocketPath;
  sockaddr_un address = {};
  address.sun_family = AF_UNIX;
  if (strlen(path) >= sizeof address.sun_path) return Fail(std::string("socket path too long: ") + path);
  strcpy(address.sun_path, path);
  // The node's agent may be restarting: the next one serves the socket again once it took
  // the attempt over (within seconds). A refused connection is tried again, for as long as
  // the agents wait for a node's processes to start (exec_relay.cc).
  int fd = -1;
  for (int waited_ms = 0;; waited_ms += kConnectRetryMs) {
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return Fail(std::string("socket: ") + strerror(errno));
    if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) break;
    int error = errno;
    close(fd);
    // A missing socket is the agent between unlinking the old one and binding the new one
    // (a moment), or not a Drover job at all.
    int wait_ms = error == ECONNREFUSED ? kConnectWaitMs : error == ENOENT ? 1000 : 0;
    if (waited_ms >= wait_ms) {
      return Fail(std::string("cannot reach drover-agent at ") + path + ": " + strerror(error) +
                  " (is this an MPI job of Drover?)");
    }
    if (waited_ms == 0 && error == ECONNREFUSED) {
      fprintf(stderr, "drover-rsh: %s: drover-agent does not answer (restarting?); waiting\n",
              host.c_str());
    }
    usleep(kConnectRetryMs * 1000);
  }
  if (!frames::WriteFrame(fd, frames::kHost, host) ||
      !frames::WriteFrame(fd, frames::kCommand, command)) {
    return Fail(std::string("sending the request to drover-agent: ") + strerror(errno));
  }
  frames::Type type;
  std::string payload;
  bool started = false;
  while (frames::ReadFrame(fd, &type, &payload)) {
    switch (type) {
      case frames::kStarted:
        started = true;
        break;
      case frames::kStdout:
        frames::WriteAll(1, payload.data(), payload.size());
        break;
      case frames::kStderr:
        frames::WriteAll(2, payload.data(), payload.size());
        break;
      case frames::kExit:
        return atoi(payload.c_str());
      case frames::kError:
        return Fail(host + ": " + payload);
      default:
        return Fail("unexpected answer from drover-agent");
    }
  }
  if (started) {
    fprintf(stderr,
            "drover-rsh: %s: drover-agent went away (restarted?) while the command runs; it goes "
            "on there, no longer followed from here\n",
            host.c_str());
    return 0;
  }
  return Fail(host + ": drover-agent closed the connection before the command ended");
}
