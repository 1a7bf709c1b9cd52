// What a node may be called: 1-63 characters of [a-z0-9-], starting with a letter or
// digit. droverd checks it where an administrator or a certificate names a node; the agent
// where a peer's certificate does (node names become parts of paths, labels and hosts
// files). Pure function; any thread.
#ifndef DROVER_COMMON_NODE_NAME_H_
#define DROVER_COMMON_NODE_NAME_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace drover {

// OK for a valid node name; INVALID_ARGUMENT naming the field `name` and the rule otherwise.
absl::Status CheckNodeName(absl::string_view name);

}  // namespace drover

#endif  // DROVER_COMMON_NODE_NAME_H_
