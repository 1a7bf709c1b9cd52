#include "storage/write_health.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace drover::storage {

absl::string_view WriteErrorName(WriteError kind) {
  return kind == WriteError::kDiskFull ? "disk_full" : "io_error";
}

WriteHealth::WriteHealth(std::string store, std::string dir, WriteErrorObserver observer)
    : store_(std::move(store)), dir_(std::move(dir)), observer_(std::move(observer)) {}

absl::Status WriteHealth::Failed(const absl::Status& error, int64_t writes) {
  absl::Status described;
  WriteError kind;
  if (absl::IsResourceExhausted(error)) {
    kind = WriteError::kDiskFull;
    described = absl::ResourceExhaustedError(absl::StrCat(
        "state disk is full: ", error.message(), "; free space on the file system of ", dir_,
        " (droverd takes writes again by itself once there is room), then retry"));
  } else if (absl::IsUnavailable(error)) {
    kind = WriteError::kIoError;
    described = absl::UnavailableError(absl::StrCat(
        "state disk error: ", error.message(), "; check the disk holding ", dir_,
        " (the kernel log, dmesg, says more), then retry"));
  } else {
    return error;
  }
  bool first;
  int64_t failed;
  {
    absl::MutexLock lock(&mu_);
    first = !failing_.exchange(true);
    failed_since_ok_ += writes;
    failed = failed_since_ok_;
  }
  if (observer_) {
    for (int64_t i = 0; i < writes; ++i) observer_(store_, kind);
  }
  // One line when the trouble starts; the metric counts every refused write.
  Log(first ? LogLevel::kError : LogLevel::kDebug, "state_write_failed",
      {{"store", store_}, {"kind", WriteErrorName(kind)}, {"failed_writes", failed},
       {"error", described.message()}});
  return described;
}

void WriteHealth::Succeeded() {
  if (!failing_.load(std::memory_order_relaxed)) return;
  int64_t failed;
  {
    absl::MutexLock lock(&mu_);
    if (!failing_.exchange(false)) return;
    failed = failed_since_ok_;
    failed_since_ok_ = 0;
  }
  Log(LogLevel::kInfo, "state_write_recovered", {{"store", store_}, {"failed_writes", failed}});
}

bool WriteHealth::failing() const { return failing_.load(); }

}  // namespace drover::storage
