#include "common/failpoint.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <set>
#include <string>

#include "absl/strings/str_split.h"
#include "common/log.h"

namespace drover {
namespace {

// Read once: the set of names, empty when the variable is unset.
const std::set<std::string, std::less<>>& Armed() {
  static const auto* armed = [] {
    auto* names = new std::set<std::string, std::less<>>();
    if (const char* value = std::getenv("DROVER_FAILPOINTS"); value != nullptr) {
      for (absl::string_view name : absl::StrSplit(value, ',', absl::SkipWhitespace())) {
        names->emplace(name);
      }
    }
    return names;
  }();
  return *armed;
}

}  // namespace

void Failpoint(absl::string_view name) {
  if (Armed().empty() || !Armed().contains(name)) return;
  Log(LogLevel::kWarning, "failpoint", {{"name", name}, {"pid", ::getpid()}});
  ::kill(::getpid(), SIGKILL);
  ::pause();
}

}  // namespace drover
