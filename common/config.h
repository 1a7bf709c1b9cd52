// Config files for the daemons: one `key = value` per line, `#` starts a comment, keys are
// the long flag names ("listen = 0.0.0.0:7070"). A flag given on the command line wins over
// the file. Used only from main().
#ifndef DROVER_COMMON_CONFIG_H_
#define DROVER_COMMON_CONFIG_H_

#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "common/flags.h"

namespace drover {

// Applies the settings in `text` (the contents of the file at `path`, named in errors) to
// `flags`, skipping those already set on the command line. INVALID_ARGUMENT names the file,
// the line and the problem.
absl::Status ApplyConfigText(absl::string_view path, absl::string_view text, FlagSet* flags);

// Reads the file at `path` and applies it as above. NOT_FOUND when it cannot be read.
absl::Status ApplyConfigFile(absl::string_view path, FlagSet* flags);

}  // namespace drover

#endif  // DROVER_COMMON_CONFIG_H_
