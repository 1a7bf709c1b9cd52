// Strict UTF-8 checking, for text from users and jobs that ends up in proto3 `string`
// fields (which must hold valid UTF-8, or the message fails to parse at the receiver).
// Pure function; any thread.
#ifndef DROVER_COMMON_UTF8_H_
#define DROVER_COMMON_UTF8_H_

#include "absl/strings/string_view.h"

namespace drover {

// Whether `text` is valid UTF-8: no overlong forms, no surrogates (U+D800..U+DFFF),
// nothing above U+10FFFF, no truncated sequence. NUL bytes are valid.
bool IsValidUtf8(absl::string_view text);

}  // namespace drover

#endif  // DROVER_COMMON_UTF8_H_
