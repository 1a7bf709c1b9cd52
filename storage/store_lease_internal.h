// Internal to the SQL stores (see store_ops_internal.h): the leader lease (Store's
// AcquireLeaderLease, RenewLeaderLease, LoadLeaderLease) and the fencing check of every
// write batch, once for both engines. Each engine gives the SQL text (LeaseSql) and runs
// CheckFence at the start of each batch's transaction once it took the lease.
#ifndef DROVER_STORAGE_STORE_LEASE_INTERNAL_H_
#define DROVER_STORAGE_STORE_LEASE_INTERNAL_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "storage/store.h"
#include "storage/store_ops_internal.h"

namespace drover::storage::store_ops {

// The columns every lease row is read with (LeaseFromRow).
#define DROVER_LEASE_COLUMNS "holder, address, token, expire_us"

// An engine's SQL for the leader lease. Parameters are numbered as the comments say.
struct LeaseSql {
  const char* lease_for_update;  // lease columns of the one row, held until the commit
  const char* put_lease;         // the one row: (holder 1, address 2, token 3, expire_us 4)
  // holder, token of the one row, held so that no takeover commits before this
  // transaction does.
  const char* fence;
};

template <typename Row>
LeaderLease LeaseFromRow(const Row& row) {
  return {.holder = row.ColumnText(0),
          .address = row.ColumnText(1),
          .token = row.ColumnInt(2),
          .expire_time = absl::FromUnixMicros(row.ColumnInt(3))};
}

// Takes (acquire) or extends (renew) the lease, read and written in the writer's
// transaction. After the commit it tells the store its token (`fence_token`, the writer
// thread's), which every later batch checks. Not fenced itself: a droverd whose lease was
// taken may take it again once it runs out.
template <typename E>
class LeaseOp final : public E::WriteOp {
 public:
  // `renew_token`: empty to acquire, the token held to renew.
  LeaseOp(std::string holder, std::string address, std::optional<int64_t> renew_token,
          absl::Time now, absl::Duration ttl, std::optional<int64_t>* fence_token,
          Store::LeaseCallback done)
      : holder_(std::move(holder)),
        address_(std::move(address)),
        renew_token_(renew_token),
        now_(now),
        ttl_(ttl),
        fence_token_(fence_token),
        done_(std::move(done)) {}

  bool fenced() const override { return false; }

  absl::Status Apply(typename E::Writer& w) override {
    if (holder_.empty()) {
      return absl::InvalidArgumentError("the leader lease needs a holder: give droverd's id");
    }
    if (ttl_ <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError(absl::StrCat("the leader lease's duration ",
                                                     absl::FormatDuration(ttl_),
                                                     " must be positive"));
    }
    DROVER_ASSIGN_OR_RETURN(auto read, w.db->Prepare(E::kLeaseSql.lease_for_update));
    DROVER_ASSIGN_OR_RETURN(bool found, read->Step());
    std::optional<LeaderLease> stored;
    if (found) stored = LeaseFromRow(*read);
    read.reset();
    lease_ = {.holder = holder_, .address = address_, .expire_time = now_ + ttl_};
    if (renew_token_.has_value()) {
      if (!stored.has_value() || stored->holder != holder_ || stored->token != *renew_token_) {
        return absl::FailedPreconditionError(absl::StrCat(
            "'", holder_, "' no longer holds the leader lease under token ", *renew_token_,
            stored.has_value() ? absl::StrCat(": '", stored->holder, "' took it under token ",
                                              stored->token)
                               : std::string(": nobody holds it"),
            "; take it again (AcquireLeaderLease) before writing"));
      }
      lease_.token = stored->token;
      if (address_.empty()) lease_.address = stored->address;
    } else if (!stored.has_value()) {
      lease_.token = 1;
    } else if (stored->holder == holder_) {
      lease_.token = stored->token;
    } else if (stored->expire_time <= now_) {
      lease_.token = stored->token + 1;  // a takeover
    } else {
      return absl::FailedPreconditionError(absl::StrCat(
          "the leader lease is held by '", stored->holder, "' at ", stored->address,
          " until ", absl::FormatTime(stored->expire_time), " under token ", stored->token,
          "; this droverd stands by until it runs out"));
    }
    DROVER_ASSIGN_OR_RETURN(auto put, w.db->Prepare(E::kLeaseSql.put_lease));
    put->Bind(1, lease_.holder)
        .Bind(2, lease_.address)
        .Bind(3, lease_.token)
        .Bind(4, absl::ToUnixMicros(lease_.expire_time));
    return put->Run();
  }

  void Finish(absl::Status status) && override {
    if (!status.ok()) {
      std::move(done_)(std::move(status));
      return;
    }
    *fence_token_ = lease_.token;
    std::move(done_)(lease_);
  }

 private:
  std::string holder_;
  std::string address_;
  std::optional<int64_t> renew_token_;
  absl::Time now_;
  absl::Duration ttl_;
  std::optional<int64_t>* fence_token_;
  Store::LeaseCallback done_;
  LeaderLease lease_;
};

// The write of Store::AcquireLeaderLease; `fence_token` as for LeaseOp.
template <typename E>
std::unique_ptr<typename E::WriteOp> AcquireLeaderLease(std::string holder, std::string address,
                                                        absl::Time now, absl::Duration ttl,
                                                        std::optional<int64_t>* fence_token,
                                                        Store::LeaseCallback done) {
  return std::make_unique<LeaseOp<E>>(std::move(holder), std::move(address), std::nullopt, now,
                                      ttl, fence_token, std::move(done));
}

// The write of Store::RenewLeaderLease; `fence_token` as for LeaseOp.
template <typename E>
std::unique_ptr<typename E::WriteOp> RenewLeaderLease(std::string holder, int64_t token,
                                                      absl::Time now, absl::Duration ttl,
                                                      std::optional<int64_t>* fence_token,
                                                      Store::LeaseCallback done) {
  return std::make_unique<LeaseOp<E>>(std::move(holder), std::string(), token, now, ttl,
                                      fence_token, std::move(done));
}

// Store::LoadLeaderLease on a reader connection.
template <typename E>
absl::StatusOr<std::optional<LeaderLease>> LoadLeaderLease(typename E::Db& db) {
  DROVER_ASSIGN_OR_RETURN(
      auto select, db.Prepare("SELECT " DROVER_LEASE_COLUMNS " FROM leader_lease WHERE id = 1"));
  DROVER_ASSIGN_OR_RETURN(bool found, select->Step());
  if (!found) return std::nullopt;
  return LeaseFromRow(*select);
}

// Run by the writer at the start of a batch's transaction once the store took the lease
// under `token`. While the stored lease still has that token, `deposed` is OK (and the row
// is held until the commit, so no takeover commits in between); when another holder took
// it, `deposed` is the error every fenced write of the batch fails with (UNAVAILABLE: retry
// the call on the droverd that leads). The error of the read itself, which fails the whole
// batch.
template <typename E>
absl::Status CheckFence(typename E::Writer& w, int64_t token, absl::Status& deposed) {
  DROVER_ASSIGN_OR_RETURN(auto select, w.db->Prepare(E::kLeaseSql.fence));
  DROVER_ASSIGN_OR_RETURN(bool found, select->Step());
  if (found && select->ColumnInt(1) == token) {
    deposed = absl::OkStatus();
    return absl::OkStatus();
  }
  deposed = absl::UnavailableError(absl::StrCat(
      "this droverd no longer leads (its leader lease token was ", token,
      found ? absl::StrCat("; '", select->ColumnText(0), "' took the lease under token ",
                           select->ColumnInt(1))
            : std::string("; nobody holds the lease"),
      "): nothing was written; retry the call on the droverd that leads"));
  return absl::OkStatus();
}

}  // namespace drover::storage::store_ops

#endif  // DROVER_STORAGE_STORE_LEASE_INTERNAL_H_
