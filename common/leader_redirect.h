// Following the droverd that leads, for clients and agents that know several droverds
// (docs/operations.md#standby). A standby droverd answers every call UNAVAILABLE and names
// the leader in the trailing metadata `drover-leader` ("HOST:PORT"). A standby is a peer
// like any other: a caller follows that name only when it is, exactly, one of the
// addresses it was configured with, never to a host the answer alone names. Pure
// functions; any thread.
#ifndef DROVER_COMMON_LEADER_REDIRECT_H_
#define DROVER_COMMON_LEADER_REDIRECT_H_

#include <grpcpp/support/string_ref.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace drover {

// The trailing metadata key a standby names the leader's address in.
inline constexpr char kLeaderMetadataKey[] = "drover-leader";

// Splits a flag's value "HOST:PORT[,HOST:PORT...]" into the droverd addresses, in order.
// INVALID_ARGUMENT naming `flag` for an empty list, an empty entry or one with spaces.
inline absl::StatusOr<std::vector<std::string>> ParseDroverdAddresses(absl::string_view flag,
                                                                      absl::string_view text) {
  std::vector<std::string> addresses;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    if (part.empty() || part.find_first_of(" \t\r\n") != absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, ": '", text,
                       "' is not a list of droverd addresses; write HOST:PORT or "
                       "HOST:PORT,HOST:PORT (one per droverd, no spaces)"));
    }
    addresses.emplace_back(part);
  }
  return addresses;
}

// The index in `known` of the leader a standby named in `trailing` (a call's trailing
// metadata); empty when it named none, or named anything that is not exactly one of the
// `known` addresses (a hostile or misconfigured standby must not send the caller elsewhere).
inline std::optional<size_t> KnownLeader(
    const std::multimap<grpc::string_ref, grpc::string_ref>& trailing,
    const std::vector<std::string>& known) {
  auto it = trailing.find(kLeaderMetadataKey);
  if (it == trailing.end()) return std::nullopt;
  absl::string_view leader(it->second.data(), it->second.size());
  for (size_t i = 0; i < known.size(); ++i) {
    if (known[i] == leader) return i;
  }
  return std::nullopt;
}

}  // namespace drover

#endif  // DROVER_COMMON_LEADER_REDIRECT_H_
