#include "server/blob_quota.h"

#include "absl/strings/str_cat.h"
#include "common/archive/snapshot.h"

namespace drover::server {

BlobQuota::Reservation& BlobQuota::Reservation::operator=(Reservation&& other) noexcept {
  if (this != &other) {
    Release();
    quota_ = other.quota_;
    user_ = std::move(other.user_);
    bytes_ = other.bytes_;
    other.quota_ = nullptr;
    other.bytes_ = 0;
  }
  return *this;
}

void BlobQuota::Reservation::Release() {
  if (quota_ == nullptr) return;
  absl::MutexLock lock(&quota_->mu_);
  auto it = quota_->reserved_.find(user_);
  if (it != quota_->reserved_.end()) {
    it->second -= bytes_;
    if (it->second <= 0) quota_->reserved_.erase(it);
  }
  quota_ = nullptr;
  bytes_ = 0;
}

void BlobQuota::SetUserQuota(const std::string& user, int64_t bytes) {
  absl::MutexLock lock(&mu_);
  if (bytes == 0) {
    own_quota_.erase(user);
  } else {
    own_quota_[user] = bytes;
  }
}

int64_t BlobQuota::QuotaOf(const std::string& user) const {
  absl::MutexLock lock(&mu_);
  auto it = own_quota_.find(user);
  if (it == own_quota_.end()) return quota_bytes_ > 0 ? quota_bytes_ : 0;
  return it->second > 0 ? it->second : 0;
}

absl::StatusOr<int64_t> BlobQuota::Held(const std::string& user) {
  absl::StatusOr<storage::BlobHoldings> holdings = store_.BlobHoldingsOf(user);
  if (!holdings.ok()) return holdings.status();
  int64_t bytes = holdings->bytes;
  // Recorded by a droverd before sizes were: the blob's size now (nothing when it is gone).
  for (const std::string& digest : holdings->unsized) {
    if (absl::StatusOr<int64_t> size = blobs_.Stat(digest); size.ok()) bytes += *size;
  }
  return bytes;
}

absl::StatusOr<BlobQuota::Reservation> BlobQuota::Reserve(const std::string& user,
                                                          const std::string& digest,
                                                          int64_t size, absl::string_view holds_phrase) {
  Reservation reservation;
  const int64_t quota = QuotaOf(user);
  if (quota == 0) return reservation;
  absl::StatusOr<bool> holds = store_.IsBlobUploader(digest, user);
  if (!holds.ok()) return holds.status();
  if (*holds) return reservation;  // held already: costs nothing again
  absl::StatusOr<int64_t> held = Held(user);
  if (!held.ok()) return held.status();
  if (size < 0) return absl::InvalidArgumentError("size: must not be negative");
  absl::MutexLock lock(&mu_);
  int64_t& reserved = reserved_[user];
  // Written so that no sum can overflow, whatever size a client announces.
  if (size > quota || *held > quota - size || reserved > quota - size - *held) {
    if (reserved == 0) reserved_.erase(user);
    return absl::ResourceExhaustedError(absl::StrCat(
        "blob quota: ", holds_phrase, " ", archive::FormatBytes(*held),
        reserved > 0 ? absl::StrCat(" and upload ", archive::FormatBytes(reserved), " now")
                     : std::string(),
        " of ", archive::FormatBytes(quota), " (code snapshots, images and job "
        "outputs); this upload of ", archive::FormatBytes(size),
        " does not fit. Snapshots and outputs are freed when droverd's retention removes "
        "them after their jobs ended (docs/operations.md#retention); an administrator can "
        "run drover gc or raise the quota (drover user quota ", user, " SIZE)"));
  }
  reserved += size;
  reservation.quota_ = this;
  reservation.user_ = user;
  reservation.bytes_ = size;
  return reservation;
}

}  // namespace drover::server
