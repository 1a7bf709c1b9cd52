// Internal to agent/rclone*.cc: what more than one of those files uses.
#ifndef DROVER_AGENT_RCLONE_INTERNAL_H_
#define DROVER_AGENT_RCLONE_INTERNAL_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/rclone.h"

namespace drover::agent {

// How long one run of a short tool (`rclone config providers`, `rclone obscure`,
// `fusermount3`, `nsenter ... cat`) may take.
inline constexpr absl::Duration kRcloneToolTimeout = absl::Seconds(30);

// The record file at `path` (RcloneRecordText): NOT_FOUND when there is none;
// FAILED_PRECONDITION when it is not a private regular file of this user's (a symlink, a
// file others may write) or not a record.
absl::StatusOr<RcloneProcessRecord> ReadRcloneRecord(const std::string& path);

}  // namespace drover::agent

#endif  // DROVER_AGENT_RCLONE_INTERNAL_H_
