// BlobStore: droverd's content-addressed store of code snapshots, image archives and job
// outputs. A blob is a file `<root>/sha256/<hex>` named by the SHA-256 of its bytes; an
// upload goes to `<root>/tmp/` first and becomes visible only once its digest checked out
// and it is on disk. Thread-safe; an Upload belongs to one caller.
//
// Garbage collection (server/retention.h) removes blobs nothing refers to any more. A blob
// counts as used when it was uploaded, committed again or touched (Touch: a client checked
// it before submitting with it) at or after the collection's cut-off: removal and those
// three take one lock, so a blob a client was just told is there is not removed under it.
// The time of that use is the store's clock's (kept as the file's modification time).
#ifndef DROVER_STORAGE_BLOB_STORE_H_
#define DROVER_STORAGE_BLOB_STORE_H_

#include <cstdint>
#include <memory>
#include <string>

#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/archive/sha256.h"
#include "common/clock.h"
#include "storage/write_health.h"

namespace drover::storage {

// A stored blob as listed for garbage collection.
struct BlobInfo {
  std::string digest;  // "sha256:<hex>"
  int64_t size = 0;
  absl::Time used = absl::InfinitePast();  // uploaded, committed again or touched last
};

class BlobStore {
 public:
  // One upload in progress. Dropped without Commit(), it leaves nothing behind.
  class Upload {
   public:
    ~Upload();
    // Appends the next bytes. INVALID_ARGUMENT past the announced size; RESOURCE_EXHAUSTED
    // when the disk is full.
    absl::Status Append(absl::string_view data);
    // Checks size and digest, makes the blob durable and visible. Returns false when the
    // store already had it. INVALID_ARGUMENT naming both digests when the bytes do not match.
    absl::StatusOr<bool> Commit();

   private:
    friend class BlobStore;
    Upload(const BlobStore& store, std::string digest, int64_t size, std::string temp_path, int fd)
        : store_(store), digest_(std::move(digest)), size_(size),
          temp_path_(std::move(temp_path)), fd_(fd) {}
    const BlobStore& store_;
    std::string digest_;
    int64_t size_;
    int64_t written_ = 0;
    std::string temp_path_;
    int fd_;
    archive::Sha256 hash_;
    bool committed_ = false;
  };

  // Creates the folders if needed and removes leftovers of interrupted uploads.
  // `on_write_error` is told of every write the disk refused (see WriteHealth).
  static absl::StatusOr<std::unique_ptr<BlobStore>> Open(
      std::string root, int64_t max_blob_bytes, WriteErrorObserver on_write_error = nullptr,
      const Clock& clock = RealClock::Get());

  // Size of a stored blob; NOT_FOUND when absent, INVALID_ARGUMENT for a malformed digest.
  absl::StatusOr<int64_t> Stat(absl::string_view digest) const;
  // Starts an upload of `size` bytes that must hash to `digest`.
  absl::StatusOr<std::unique_ptr<Upload>> StartUpload(absl::string_view digest,
                                                      int64_t size) const;
  // Up to `max_bytes` of a blob from `offset`; empty at the end.
  absl::StatusOr<std::string> Read(absl::string_view digest, int64_t offset,
                                   int64_t max_bytes) const;
  // Where a blob lives (whether or not it exists).
  std::string PathOf(absl::string_view digest) const;

  // Marks a stored blob used now (see above). NOT_FOUND when absent.
  absl::Status Touch(absl::string_view digest) const;
  // Every stored blob. Only regular files named by 64 lowercase hex digits count; anything
  // else in the folder is left alone and not listed.
  absl::StatusOr<std::vector<BlobInfo>> List() const;
  // Removes a blob unless it was used at or after `unused_since`. True when it was removed;
  // false when it was used since or is not there.
  absl::StatusOr<bool> RemoveIfUnusedSince(absl::string_view digest, absl::Time unused_since) const;

 private:
  BlobStore(std::string root, int64_t max_blob_bytes, WriteErrorObserver on_write_error,
            const Clock& clock)
      : root_(std::move(root)),
        max_blob_bytes_(max_blob_bytes),
        health_("blobs", root_, std::move(on_write_error)),
        clock_(clock) {}
  // Marks the file at `path` used now; 0 or -1 with errno.
  int MarkUsed(const std::string& path) const;
  const std::string root_;
  const int64_t max_blob_bytes_;
  mutable WriteHealth health_;  // thread-safe; uploads report through the const store
  const Clock& clock_;
  // Held while a blob is removed, committed or touched (see above).
  mutable absl::Mutex use_mu_;
};

}  // namespace drover::storage

#endif  // DROVER_STORAGE_BLOB_STORE_H_
