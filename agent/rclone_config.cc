// rclone's options and config (rclone.h): the config file's text and its writing (with
// rclone's password options obscured), remotes, the flags of `rclone mount`, and rclone's
// error lines.
#include "agent/rclone.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "agent/rclone_internal.h"
#include "common/json.h"
#include "agent/runtime/process.h"

namespace drover::agent {
namespace {

// The options rclone keeps obscured in its config, per backend, from `rclone config
// providers` (half a megabyte of JSON: read once per process).
class PasswordOptions {
 public:
  absl::StatusOr<std::set<std::string>> Of(const RcloneTools& tools, const std::string& type) {
    absl::MutexLock lock(&mu_);
    if (!loaded_) {
      absl::Status loaded = Load(tools);
      if (!loaded.ok()) return loaded;
      loaded_ = true;
    }
    auto found = by_type_.find(type);
    if (found == by_type_.end()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "rclone has no backend '", type, "' (`rclone help backends` lists them); fix the "
          "datastore's `type` option"));
    }
    return found->second;
  }

 private:
  absl::Status Load(const RcloneTools& tools) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    absl::StatusOr<ProcessResult> run =
        RunProcess({tools.rclone, "config", "providers"}, kRcloneToolTimeout);
    if (!run.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          run.status().message(), "; install rclone and fuse3 on the node (see docs/datastores.md)"));
    }
    if (!run->ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "`rclone config providers` failed: ", RcloneError(run->err)));
    }
    absl::StatusOr<Json> providers = ParseJson(run->out);
    if (!providers.ok() || !providers->is_array()) {
      return absl::FailedPreconditionError(
          "`rclone config providers` printed something other than a JSON list");
    }
    for (const Json& provider : JsonItems(*providers)) {
      const Json* name = JsonFind(provider, "Name");
      const Json* options = JsonFind(provider, "Options");
      if (name == nullptr || !name->is_string()) continue;
      std::set<std::string>& passwords = by_type_[JsonString(*name)];
      if (options == nullptr) continue;
      for (const Json& option : JsonItems(*options)) {
        const Json* key = JsonFind(option, "Name");
        const Json* password = JsonFind(option, "IsPassword");
        if (key != nullptr && password != nullptr && JsonBool(*password)) {
          passwords.insert(JsonString(*key));
        }
      }
    }
    return absl::OkStatus();
  }

  absl::Mutex mu_;
  bool loaded_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, std::set<std::string>> by_type_ ABSL_GUARDED_BY(mu_);
};

PasswordOptions& SharedPasswordOptions() {
  static PasswordOptions* options = new PasswordOptions();
  return *options;
}

}  // namespace

absl::StatusOr<std::string> RcloneConfigText(
    const std::vector<v1::Datastore>& datastores,
    const std::function<absl::StatusOr<std::set<std::string>>(const std::string& type)>& obscured,
    const std::function<absl::StatusOr<std::string>(const std::string& value)>& obscure) {
  std::string text;
  for (const v1::Datastore& store : datastores) {
    if (store.type() != v1::Datastore::RCLONE) continue;
    auto what = [&store](const absl::Status& s) {
      return absl::Status(s.code(), absl::StrCat("datastore '", store.name(), "': ", s.message()));
    };
    auto type = store.rclone_options().find("type");
    if (type == store.rclone_options().end()) {
      return what(absl::FailedPreconditionError("has no rclone option `type`"));
    }
    absl::StatusOr<std::set<std::string>> passwords = obscured(type->second);
    if (!passwords.ok()) return what(passwords.status());
    // Sorted keys: the same datastore always gives the same text.
    std::map<std::string, std::string> options(store.rclone_options().begin(),
                                               store.rclone_options().end());
    absl::StrAppend(&text, "[", store.name(), "]\n");
    for (const auto& [key, value] : options) {
      if (value.find_first_of("\r\n") != std::string::npos) {
        return what(absl::InvalidArgumentError(
            absl::StrCat("the value of rclone option `", key, "` is not one line")));
      }
      std::string written = value;
      if (passwords->contains(key) && !value.empty()) {
        absl::StatusOr<std::string> hidden = obscure(value);
        if (!hidden.ok()) {
          return what(absl::Status(hidden.status().code(),
                                   absl::StrCat("option `", key, "`: ", hidden.status().message())));
        }
        written = *std::move(hidden);
      }
      absl::StrAppend(&text, key, " = ", written, "\n");
    }
    absl::StrAppend(&text, "\n");
  }
  return text;
}

absl::Status WriteRcloneConfig(const RcloneTools& tools, const std::vector<v1::Datastore>& datastores,
                               const std::string& path) {
  absl::StatusOr<std::string> text = RcloneConfigText(
      datastores,
      [&tools](const std::string& type) { return SharedPasswordOptions().Of(tools, type); },
      [&tools](const std::string& value) -> absl::StatusOr<std::string> {
        absl::StatusOr<ProcessResult> run =
            RunProcess({tools.rclone, "obscure", "-"}, kRcloneToolTimeout, "", value);
        if (!run.ok()) return run.status();
        // rclone's own message never echoes its input.
        if (!run->ok()) {
          return absl::FailedPreconditionError(
              absl::StrCat("`rclone obscure` failed: ", RcloneError(run->err)));
        }
        return std::string(absl::StripAsciiWhitespace(run->out));
      });
  if (!text.ok()) return text.status();
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat("cannot create ", path, ": ", strerror(errno)));
  }
  // An earlier file of the same name kept its mode.
  bool ok = fchmod(fd, 0600) == 0;
  size_t written = 0;
  while (ok && written < text->size()) {
    ssize_t n = write(fd, text->data() + written, text->size() - written);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) written += static_cast<size_t>(n);
  }
  int error = errno;
  close(fd);
  if (!ok) {
    return absl::UnavailableError(absl::StrCat("cannot write ", path, ": ", strerror(error)));
  }
  return absl::OkStatus();
}

std::string RcloneRemote(const v1::Datastore& store, const std::string& path) {
  std::string inside = store.path();
  if (!path.empty()) inside = inside.empty() ? path : absl::StrCat(inside, "/", path);
  return absl::StrCat(store.name(), ":", inside);
}

std::string RcloneError(absl::string_view log) {
  std::string last_line;
  std::string last_error;
  for (absl::string_view line : absl::StrSplit(log, '\n', absl::SkipWhitespace())) {
    line = absl::StripAsciiWhitespace(line);
    // "2026/11/26 15:04:44 ERROR : message"
    std::vector<absl::string_view> words = absl::StrSplit(line, absl::MaxSplits(' ', 2));
    if (words.size() == 3 && words[0].size() == 10 && words[0][4] == '/' &&
        words[1].size() == 8 && words[1][2] == ':') {
      line = words[2];
    }
    last_line = std::string(line);
    if (absl::ConsumePrefix(&line, "ERROR : ") || absl::ConsumePrefix(&line, "CRITICAL: ")) {
      if (absl::StartsWith(line, "Attempt ") || absl::EndsWith(line, "Unmounted rclone mount")) {
        continue;
      }
      last_error = std::string(line);
    }
  }
  if (!last_error.empty()) return last_error;
  return last_line.empty() ? "no message from rclone" : last_line;
}

std::vector<std::string> RcloneMountArgs(const RcloneTools& tools, const RcloneMountSpec& spec) {
  std::vector<std::string> args = {tools.rclone, "mount", spec.remote, spec.mountpoint,
                                   "--config", spec.config, "--cache-dir", spec.cache_dir};
  if (spec.read_write) {
    // Written files go to the disk cache and are uploaded once closed, so that programs
    // may seek, append and reopen (streamed writes allow none of it); Unmount waits for
    // the uploads.
    args.insert(args.end(), {"--vfs-cache-mode", "writes", "--vfs-write-back", "0s"});
  } else {
    // Training data is read, mostly sequentially, often more than once: streamed with
    // read-ahead, no copy on disk (a data set may not fit), directory listings kept for
    // the job's life.
    args.insert(args.end(),
                {"--read-only", "--vfs-cache-mode", "off", "--dir-cache-time", "1h"});
  }
  if (spec.owner_id >= 0) {
    args.insert(args.end(), {"--allow-other", "--uid", absl::StrCat(spec.owner_id), "--gid",
                             absl::StrCat(spec.owner_id)});
  }
  return args;
}

}  // namespace drover::agent
