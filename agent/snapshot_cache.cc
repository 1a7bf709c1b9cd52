// SnapshotCache: see snapshot_cache.h.
#include "agent/snapshot_cache.h"

#include <filesystem>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/archive/safe_extract.h"

namespace drover::agent {
namespace {

namespace fs = std::filesystem;

}  // namespace

absl::Status SnapshotCache::CopyInto(const std::string& digest, const std::string& job_id,
                                     const std::string& code_dir,
                                     const Patience& patience) const {
  const std::string cached = root_ + "/" + digest.substr(digest.find(':') + 1);
  std::error_code error;
  fs::create_directories(root_, error);
  if (!fs::exists(cached)) {
    if (absl::Status s = Fetch(digest, job_id, cached, patience); !s.ok()) return s;
  }
  fs::copy(cached, code_dir, fs::copy_options::recursive | fs::copy_options::copy_symlinks |
                                 fs::copy_options::overwrite_existing,
           error);
  if (error) {
    return absl::UnavailableError(absl::StrCat("copying snapshot into the job folder: ", error.message()));
  }
  return absl::OkStatus();
}

absl::Status SnapshotCache::Fetch(const std::string& digest, const std::string& job_id,
                                  const std::string& cached, const Patience& patience) const {
  std::random_device random;
  const std::string tar = absl::StrCat(root_, "/download-", random(), random(), ".tar");
  const absl::Time give_up = patience.waiter->clock().Now() + patience.patience;
  absl::Status downloaded;
  while (true) {
    if (patience.await_droverd) patience.await_droverd(give_up);
    downloaded = blobs_.Download(digest, job_id, tar);
    if (!absl::IsUnavailable(downloaded) || (patience.stopped && patience.stopped()) ||
        patience.waiter->clock().Now() >= give_up) {
      break;
    }
    patience.waiter->WaitFor(absl::Milliseconds(200), [&] {
      return patience.stopped && patience.stopped();
    });
  }
  std::error_code error;
  if (!downloaded.ok()) {
    fs::remove(tar, error);
    return absl::Status(downloaded.code(),
                        absl::StrCat("fetching snapshot ", digest, ": ", downloaded.message()));
  }
  absl::StatusOr<archive::ExtractResult> extracted =
      archive::ExtractTar(tar, cached, {.expected_digest = digest, .sync_to_disk = true});
  fs::remove(tar, error);
  if (!extracted.ok() && !absl::IsAlreadyExists(extracted.status())) {
    return absl::Status(extracted.status().code(),
                        absl::StrCat("snapshot ", digest, " refused: ", extracted.status().message()));
  }
  return absl::OkStatus();
}

}  // namespace drover::agent
