// What the environment cache's tests share: a request for pip packages in the host image.
#ifndef DROVER_TESTS_AGENT_ENVIRONMENTS_ENVIRONMENT_TEST_UTIL_H_
#define DROVER_TESTS_AGENT_ENVIRONMENTS_ENVIRONMENT_TEST_UTIL_H_

#include <string>
#include <utility>
#include <vector>

#include "agent/environments/environment_cache.h"

namespace drover::agent::testing_util {

inline EnvironmentRequest PipRequest(std::vector<std::string> packages) {
  EnvironmentRequest request;
  request.image = "host";
  request.image_identity = "host:abc";
  request.pip_packages = std::move(packages);
  return request;
}

}  // namespace drover::agent::testing_util

#endif  // DROVER_TESTS_AGENT_ENVIRONMENTS_ENVIRONMENT_TEST_UTIL_H_
