// `rclone copyto` (rclone.h): downloads, uploads and outputs of RCLONE datastores.
#include "agent/rclone.h"

#include <sys/wait.h>

#include "absl/strings/str_cat.h"
#include "agent/runtime/process.h"

namespace drover::agent {

absl::Status RcloneCopy(const RcloneTools& tools, const std::string& config,
                        const std::string& from, const std::string& to,
                        const std::function<bool()>& stop) {
  constexpr size_t kKeptBytes = 64 << 10;
  std::string err;
  bool stopped = false;
  absl::StatusOr<int> status = RunStreaming(
      {tools.rclone, "copyto", from, to, "--config", config},
      [&err](bool is_stderr, absl::string_view bytes) {
        if (!is_stderr) return;
        err.append(bytes.data(), bytes.size());
        if (err.size() > 2 * kKeptBytes) err.erase(0, err.size() - kKeptBytes);
      },
      [&stop, &stopped] { return stopped = stopped || (stop && stop()); });
  if (!status.ok()) return status.status();
  if (stopped) return absl::CancelledError(absl::StrCat("copying ", from, " to ", to, " stopped"));
  if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
    return absl::UnavailableError(
        absl::StrCat("copying ", from, " to ", to, " failed: ", RcloneError(err)));
  }
  return absl::OkStatus();
}

}  // namespace drover::agent
