// BlobStore: droverd's content-addressed store of code snapshots, image archives and job
// outputs. A blob is a file `<root>/sha256/<hex>` named by the SHA-256 of its bytes; an
// upload goes to `<root>/tmp/` first and becomes visible only once its digest checked out
// and it is on disk. Thread-safe; an Upload belongs to one caller.
#ifndef DROVER_STORAGE_BLOB_STORE_H_
#define DROVER_STORAGE_BLOB_STORE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/archive/sha256.h"
#include "storage/write_health.h"

namespace drover::storage {

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
      std::string root, int64_t max_blob_bytes, WriteErrorObserver on_write_error = nullptr);

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

 private:
  BlobStore(std::string root, int64_t max_blob_bytes, WriteErrorObserver on_write_error)
      : root_(std::move(root)),
        max_blob_bytes_(max_blob_bytes),
        health_("blobs", root_, std::move(on_write_error)) {}
  const std::string root_;
  const int64_t max_blob_bytes_;
  mutable WriteHealth health_;  // thread-safe; uploads report through the const store
};

}  // namespace drover::storage

#endif  // DROVER_STORAGE_BLOB_STORE_H_
