// Failpoints: named places in the daemons where a test can make the process die at once
// (SIGKILL, as a power cut or an OOM kill would), to check that what the process recorded
// before that point is enough for the next process to carry on. Off unless the environment
// variable DROVER_FAILPOINTS names them, comma-separated, when the process starts:
//
//   DROVER_FAILPOINTS=attempt.after_start drover-agent ...
//
// Tests only; an unset variable costs one branch per point. Names are "<part>.<moment>";
// the places that have one say so next to the call.
#ifndef DROVER_COMMON_FAILPOINT_H_
#define DROVER_COMMON_FAILPOINT_H_

#include "absl/strings/string_view.h"

namespace drover {

// Kills this process with SIGKILL when DROVER_FAILPOINTS names `name`; logs the point
// first (event=failpoint) so that a test log shows where it died.
void Failpoint(absl::string_view name);

}  // namespace drover

#endif  // DROVER_COMMON_FAILPOINT_H_
