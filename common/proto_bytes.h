// The bytes of a protobuf message, the same for the same message on every run: what the
// store writes and what tests compare (a NaN included, which == on messages never equals).
// Pure function; any thread.
#ifndef DROVER_COMMON_PROTO_BYTES_H_
#define DROVER_COMMON_PROTO_BYTES_H_

#include <string>

#include "google/protobuf/message.h"

namespace drover {

// `message` serialized with deterministic map order. Two messages that are equal field by
// field give equal bytes within one build of the program; unknown fields are kept. Never
// fails (a message with required fields missing is serialized as it is).
std::string SerializeDeterministic(const google::protobuf::Message& message);

}  // namespace drover

#endif  // DROVER_COMMON_PROTO_BYTES_H_
