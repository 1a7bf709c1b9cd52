// Reading drover-init's status files (init_files.h) where they lie: the one reader of them
// for the agent and its runtime, beside their format and writer. The folders are writable
// from inside the container: a file is read only when it is a regular file below the folder
// (never through a link, never waiting on a fifo), at most kMaxInitFileBytes; anything else
// is logged (LogUnsafeFile) and read as missing. Any thread.
#ifndef DROVER_AGENT_LAUNCHER_INIT_FILES_READ_H_
#define DROVER_AGENT_LAUNCHER_INIT_FILES_READ_H_

#include <cstddef>
#include <optional>
#include <string>

#include "agent/launcher/init_files.h"

namespace drover::agent {

// drover-init's files are a line each.
inline constexpr size_t kMaxInitFileBytes = 4096;

// The exit record `name` (a path below `folder`: "logs/rank-3.exit", "init.exit"); none when
// it is missing, not a regular file, or not exactly an exit record.
std::optional<ExitRecord> ReadExitRecord(const std::string& folder, const std::string& name);
// The init.result file `name` below `folder`; none as for ReadExitRecord.
std::optional<InitResult> ReadInitResult(const std::string& folder, const std::string& name);

}  // namespace drover::agent

#endif  // DROVER_AGENT_LAUNCHER_INIT_FILES_READ_H_
