#include "cli/keeper_socket.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

extern char** environ;

namespace drover::cli {
namespace {

// FNV-1a, 64 bits: stable across processes and builds (absl::Hash is seeded per process).
// Not a security measure: the folder is the caller's own.
uint64_t Fnv1a(uint64_t hash, absl::string_view bytes) {
  for (unsigned char c : bytes) {
    hash ^= c;
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

}  // namespace

absl::Status CheckPrivateFolder(const std::string& folder, uid_t uid) {
  struct stat st;
  if (lstat(folder.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat(folder, " does not exist"));
    return absl::FailedPreconditionError(
        absl::StrCat("cannot check ", folder, ": ", std::strerror(errno)));
  }
  const char* why = nullptr;
  if (S_ISLNK(st.st_mode)) {
    why = "is a symlink";
  } else if (!S_ISDIR(st.st_mode)) {
    why = "is not a folder";
  } else if (st.st_uid != uid) {
    why = "belongs to another user";
  } else if ((st.st_mode & 077) != 0) {
    why = "is open to other users (mode is not 0700)";
  }
  if (why == nullptr) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat(folder, " ", why, "; remove it (or set DROVER_KEEPER=off)"));
}

absl::StatusOr<std::string> KeeperFolder(absl::string_view runtime_dir, uid_t uid) {
  std::string folder = runtime_dir.empty() ? absl::StrCat("/tmp/drover-", uid)
                                           : absl::StrCat(runtime_dir, "/drover");
  absl::Status checked = CheckPrivateFolder(folder, uid);
  if (absl::IsNotFound(checked)) {
    if (mkdir(folder.c_str(), 0700) != 0 && errno != EEXIST) {
      return absl::UnavailableError(
          absl::StrCat("cannot make ", folder, ": ", std::strerror(errno)));
    }
    // Checked again: whatever is there now (ours, or one raced in) must pass.
    checked = CheckPrivateFolder(folder, uid);
  }
  if (!checked.ok()) return checked;
  return folder;
}

std::string KeeperSocketName(absl::string_view address, absl::string_view ca_file,
                             absl::string_view ca_pem, absl::string_view version) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  // Each part ends with a byte none holds, so that ("ab", "c") and ("a", "bc") differ.
  for (absl::string_view part : {address, ca_file, ca_pem, version}) {
    hash = Fnv1a(hash, part);
    hash = Fnv1a(hash, absl::string_view("\0", 1));
  }
  return absl::StrFormat("%016x.sock", hash);
}

absl::StatusOr<uid_t> PeerUid(int fd) {
  struct ucred cred;
  socklen_t size = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &size) != 0) {
    return absl::InternalError(absl::StrCat("SO_PEERCRED: ", std::strerror(errno)));
  }
  return cred.uid;
}

absl::StatusOr<int> ConnectToKeeper(const std::string& path, uid_t uid) {
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is too long for a Unix socket; set XDG_RUNTIME_DIR to a shorter "
                           "folder"));
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("socket: ", std::strerror(errno)));
  if (connect(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) != 0) {
    int error = errno;
    close(fd);
    return absl::UnavailableError(absl::StrCat(path, ": ", std::strerror(error)));
  }
  absl::StatusOr<uid_t> peer = PeerUid(fd);
  if (!peer.ok() || *peer != uid) {
    close(fd);
    return absl::PermissionDeniedError(
        absl::StrCat(path, ": the process listening there is not this user's"));
  }
  return fd;
}

absl::Status SpawnDetached(const std::string& program, const std::vector<std::string>& args) {
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> env;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    if (std::strncmp(*entry, "DROVER_TOKEN=", 13) != 0) env.push_back(*entry);
  }
  env.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  for (int fd = 0; fd <= 2; ++fd) {
    posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY,
                                     0);
  }
  // A test's pipes or a caller's files must not stay open for the keeper's whole life.
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
  pid_t pid;
  int error = posix_spawn(&pid, program.c_str(), &actions, &attr, argv.data(), env.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (error != 0) {
    return absl::InternalError(
        absl::StrCat("cannot start ", program, ": ", std::strerror(error)));
  }
  return absl::OkStatus();
}

}  // namespace drover::cli
