// Internal to RuncRuntime's files (runc_runtime.cc, runc_runtime_open.cc): the wording of
// runc's and crun's errors. Pure functions, any thread.
#ifndef DROVER_AGENT_RUNTIME_RUNC_RUNTIME_INTERNAL_H_
#define DROVER_AGENT_RUNTIME_RUNC_RUNTIME_INTERNAL_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace drover::agent::runc_internal {

// `text` without surrounding whitespace, at most its last `max` bytes.
std::string Tail(absl::string_view text, size_t max = 2000);

// runc logs errors as `time="..." level=error msg="..."`: the last msg, unquoted, else the
// tail of the text.
std::string RuncMessage(absl::string_view text);

}  // namespace drover::agent::runc_internal

#endif  // DROVER_AGENT_RUNTIME_RUNC_RUNTIME_INTERNAL_H_
