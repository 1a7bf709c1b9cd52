// BlobQuota: the cap on what one user holds in droverd's blob store (--blob-quota): the
// snapshots and images they uploaded and their jobs' outputs (storage::Store's blob holders),
// plus their uploads in progress, so that parallel uploads cannot pass it together. A blob
// two users hold counts for both; one a user holds already costs nothing again. Every user
// has the quota, admins too (an image archive counts for the admin who imported it); only
// droverd's local admin socket has none. What a user holds goes when retention removes the
// blob (server/retention.h).
// Thread-safe.
#ifndef DROVER_SERVER_BLOB_QUOTA_H_
#define DROVER_SERVER_BLOB_QUOTA_H_

#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "storage/blob_store.h"
#include "storage/store.h"

namespace drover::server {

class BlobQuota {
 public:
  // Bytes counted for an upload in progress; given back when dropped.
  class Reservation {
   public:
    Reservation() = default;
    Reservation(Reservation&& other) noexcept { *this = std::move(other); }
    Reservation& operator=(Reservation&& other) noexcept;
    ~Reservation() { Release(); }
    void Release();

   private:
    friend class BlobQuota;
    BlobQuota* quota_ = nullptr;
    std::string user_;
    int64_t bytes_ = 0;
  };

  // `quota_bytes` 0: no quota (the default of users who have no quota of their own).
  BlobQuota(int64_t quota_bytes, storage::Store& store, const storage::BlobStore& blobs)
      : quota_bytes_(quota_bytes), store_(store), blobs_(blobs) {}

  // `user`'s own quota (v1::User.blob_quota_bytes): 0 = the default, -1 = none, otherwise
  // bytes. droverd gives every stored user's at start and each change.
  void SetUserQuota(const std::string& user, int64_t bytes);
  // The quota that applies to `user`; 0: none.
  int64_t QuotaOf(const std::string& user) const;

  // What `user` holds now, in bytes (uploads in progress not counted).
  absl::StatusOr<int64_t> Held(const std::string& user);

  // Counts an upload of blob `digest` (`size` bytes) by or for `user` against their quota
  // until the reservation is dropped: RESOURCE_EXHAUSTED saying what they hold, the quota
  // and what to do when it would pass the quota. `holds_phrase` names the user in that
  // message: "you hold", "user 'alice', who owns job j-3, holds".
  absl::StatusOr<Reservation> Reserve(const std::string& user, const std::string& digest,
                                      int64_t size, absl::string_view holds_phrase);

  int64_t quota_bytes() const { return quota_bytes_; }

 private:
  const int64_t quota_bytes_;
  storage::Store& store_;
  const storage::BlobStore& blobs_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, int64_t> reserved_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, int64_t> own_quota_ ABSL_GUARDED_BY(mu_);  // not 0
};


}  // namespace drover::server

#endif  // DROVER_SERVER_BLOB_QUOTA_H_
