// The framing between drover-rsh (in a job container) and its drover-agent's exec relay,
// over the attempt's Unix socket. Header only, plain C++ and libc (drover-rsh is static and
// links no Abseil). Any thread.
//
// Each frame is one type byte, a 4-byte big-endian payload length, then the payload.
//   drover-rsh -> agent: kHost (the target host, as MPI names it), then kCommand (the
//                        command line, run with `/bin/sh -c` in that host's container)
//   agent -> drover-rsh: kStarted (the command is being started on the host), kStdout /
//                        kStderr (output as it comes), then either kExit (the exit code,
//                        decimal) or kError (why it could not run; drover-rsh exits 255).
//                        A connection that ends after kStarted without either means an agent
//                        went away (restarted) while the command goes on: drover-rsh exits 0.
#ifndef DROVER_AGENT_LAUNCHER_EXEC_FRAMES_H_
#define DROVER_AGENT_LAUNCHER_EXEC_FRAMES_H_

#include <errno.h>
#include <stdint.h>
#include <unistd.h>

#include <string>

namespace drover::agent::exec_frames {

enum Type : char {
  kHost = 'H',
  kCommand = 'C',
  kStdout = 'O',
  kStderr = 'E',
  kStarted = 'S',
  kExit = 'X',
  kError = 'F',
};

// Frames above this are refused (a command line or an output piece is far smaller).
constexpr uint32_t kMaxPayload = 1 << 20;
// The container path of the relay's socket.
constexpr const char* kSocketPath = "/run/drover-mpi/relay/exec.sock";

inline bool WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

inline bool ReadAll(int fd, char* data, size_t size) {
  while (size > 0) {
    ssize_t n = read(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

inline bool WriteFrame(int fd, Type type, const std::string& payload) {
  if (payload.size() > kMaxPayload) return false;
  uint32_t n = static_cast<uint32_t>(payload.size());
  char header[5] = {static_cast<char>(type), static_cast<char>(n >> 24),
                    static_cast<char>(n >> 16), static_cast<char>(n >> 8), static_cast<char>(n)};
  return WriteAll(fd, header, sizeof header) && WriteAll(fd, payload.data(), payload.size());
}

// False at end of stream, on a read error or an oversized frame.
inline bool ReadFrame(int fd, Type* type, std::string* payload) {
  unsigned char header[5];
  if (!ReadAll(fd, reinterpret_cast<char*>(header), sizeof header)) return false;
  uint32_t n = (uint32_t{header[1]} << 24) | (uint32_t{header[2]} << 16) |
               (uint32_t{header[3]} << 8) | uint32_t{header[4]};
  if (n > kMaxPayload) return false;
  *type = static_cast<Type>(header[0]);
  payload->resize(n);
  return n == 0 || ReadAll(fd, payload->data(), n);
}

}  // namespace drover::agent::exec_frames

#endif  // DROVER_AGENT_LAUNCHER_EXEC_FRAMES_H_
