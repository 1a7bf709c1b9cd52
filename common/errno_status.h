// The one mapping from an errno of a file operation to an absl::Status, so that every store
// reports a full disk the same way. Any thread.
#ifndef DROVER_COMMON_ERRNO_STATUS_H_
#define DROVER_COMMON_ERRNO_STATUS_H_

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace drover {

// ENOSPC/EDQUOT -> RESOURCE_EXHAUSTED (the disk is full), anything else -> UNAVAILABLE
// (retry), with the message "WHAT: strerror". `what` says what was being done ("writing
// /x"). droverd's stores add the state folder and the fix (storage/write_health.h).
inline absl::Status ErrnoStatus(int error, absl::string_view what) {
  std::string message = absl::StrCat(what, ": ", strerror(error));
  if (error == ENOSPC || error == EDQUOT) return absl::ResourceExhaustedError(message);
  return absl::UnavailableError(message);
}

}  // namespace drover

#endif  // DROVER_COMMON_ERRNO_STATUS_H_
