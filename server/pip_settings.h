// The cluster's pip settings (droverd's --pip-* flags): checked once at start and sent to
// the agents in every AssignAttempt of a job with packages to install. Pure; any thread.
#ifndef DROVER_SERVER_PIP_SETTINGS_H_
#define DROVER_SERVER_PIP_SETTINGS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "drover/v1/agent.pb.h"

namespace drover::server {

struct PipFlags {
  std::string index_url;                      // --pip-index-url
  std::vector<std::string> extra_index_urls;  // --pip-extra-index-url
  std::vector<std::string> find_links;        // --pip-find-links
  std::vector<std::string> trusted_hosts;     // --pip-trusted-host
  bool no_index = false;                      // --pip-no-index
};

// The settings the flags stand for. INVALID_ARGUMENT naming the flag when a value is empty,
// holds whitespace or a control character, an index URL is not http(s):// or file://, a
// find-links entry is neither such a URL nor an absolute path, or --pip-no-index is given
// with index URLs (pip would ignore them).
absl::StatusOr<v1::PipSettings> PipSettingsFromFlags(const PipFlags& flags);

}  // namespace drover::server

#endif  // DROVER_SERVER_PIP_SETTINGS_H_
