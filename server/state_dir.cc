#include "server/state_dir.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/log.h"

namespace drover::server {
namespace {

namespace fs = std::filesystem;

std::string Mode(mode_t mode) { return absl::StrFormat("%04o", mode & 07777); }

}  // namespace

absl::Status SecureStateDir(const std::string& path) {
  std::error_code error;
  if (!fs::exists(fs::symlink_status(path, error))) {
    fs::create_directories(path, error);
    if (error) {
      return absl::UnavailableError(
          absl::StrCat("cannot create the state folder ", path, ": ", error.message()));
    }
    if (chmod(path.c_str(), 0700) != 0) {
      return absl::UnavailableError(absl::StrCat("cannot make the state folder ", path,
                                                 " private: ", strerror(errno)));
    }
    return absl::OkStatus();
  }
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot read the state folder ", path, ": ", strerror(errno)));
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("the state folder ", path, " is not a folder; give --state-dir a folder"));
  }
  if (st.st_uid != geteuid()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the state folder ", path, " belongs to uid ", st.st_uid, ", not droverd's uid ",
        geteuid(), "; run droverd as its owner, or chown -R it to droverd's user after "
        "checking its files"));
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the state folder ", path, " has mode ", Mode(st.st_mode),
        ": others may have changed its files; check them, then chmod 700 ", path));
  }
  if ((st.st_mode & 07777) != 0700) {
    if (chmod(path.c_str(), 0700) != 0) {
      return absl::UnavailableError(absl::StrCat("cannot make the state folder ", path,
                                                  " private: ", strerror(errno)));
    }
    Log(LogLevel::kWarning, "state_dir_made_private",
        {{"path", path}, {"was", Mode(st.st_mode)}});
  }
  // What an earlier droverd left with group or other permissions (started by hand with
  // umask 022, say). Not followed: a symlink's target is not droverd's.
  int64_t changed = 0;
  fs::recursive_directory_iterator it(path, fs::directory_options::none, error);
  for (; !error && it != fs::recursive_directory_iterator(); it.increment(error)) {
    struct stat entry;
    const std::string name = it->path().string();
    if (lstat(name.c_str(), &entry) != 0 || S_ISLNK(entry.st_mode)) continue;
    if ((entry.st_mode & 077) == 0) continue;
    if (chmod(name.c_str(), entry.st_mode & 07700) != 0) {
      return absl::UnavailableError(
          absl::StrCat("cannot make ", name, " private: ", strerror(errno)));
    }
    ++changed;
  }
  if (error) {
    return absl::UnavailableError(
        absl::StrCat("cannot read the state folder ", path, ": ", error.message()));
  }
  if (changed > 0) {
    Log(LogLevel::kWarning, "state_files_made_private", {{"path", path}, {"files", changed}});
  }
  return absl::OkStatus();
}

}  // namespace drover::server
