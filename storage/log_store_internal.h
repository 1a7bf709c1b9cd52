// Internal to LogStore (storage/log_store*.cc): what log_store.cc, which stores streams,
// and log_store_caps.cc, which enforces their caps (LogLimits: the notes, the sidecar
// `.capped` files, the records counted), share.
#ifndef DROVER_STORAGE_LOG_STORE_INTERNAL_H_
#define DROVER_STORAGE_LOG_STORE_INTERNAL_H_

#include <cstdint>

#include "absl/strings/string_view.h"
#include "drover/v1/agent.pb.h"

namespace drover::storage::log_store_internal {

// Metric streams are capped in records (lines), the others in bytes.
inline bool IsMetricStream(v1::LogStream stream) {
  return stream == v1::METRICS || stream == v1::SYSTEM_METRICS;
}

// The records (complete lines) in `data`.
int64_t Lines(absl::string_view data);

}  // namespace drover::storage::log_store_internal

#endif  // DROVER_STORAGE_LOG_STORE_INTERNAL_H_
