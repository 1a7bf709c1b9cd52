// Environment cache keys (environment_cache.h): what identifies a built environment, the
// job's packages and pip settings with the image's identity, or the node's own python; and
// the packages in words.
#include "agent/environments/environment_cache.h"

#include <sys/stat.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/environments/environment_internal.h"
#include "common/archive/sha256.h"

namespace drover::agent {

namespace fs = std::filesystem;

bool NeedsEnvironment(const v1::Environment& environment) {
  return !environment.pip_packages().empty() || !environment.conda_packages().empty() ||
         environment.horovod();
}

std::string DescribePackages(const EnvironmentRequest& request) {
  std::vector<std::string> parts;
  if (!request.conda_packages.empty()) {
    parts.push_back(absl::StrCat("conda: ", absl::StrJoin(SortedUnique(request.conda_packages), " ")));
  }
  if (!request.pip_packages.empty()) {
    parts.push_back(absl::StrCat("pip: ", absl::StrJoin(SortedUnique(request.pip_packages), " ")));
  }
  if (request.horovod) parts.push_back(absl::StrCat("horovod ", kHorovodVersion));
  return absl::StrJoin(parts, "; ");
}

std::string EnvironmentKey(const EnvironmentRequest& request) {
  // One field per line; packages and settings hold no whitespace (job spec validation and
  // droverd's flags refuse it), so the text is unambiguous.
  std::string text = "drover-environment-v1\n";
  absl::StrAppend(&text, "image=", request.image_identity, "\n");
  for (const std::string& p : SortedUnique(request.conda_packages)) absl::StrAppend(&text, "conda=", p, "\n");
  for (const std::string& p : SortedUnique(request.pip_packages)) absl::StrAppend(&text, "pip=", p, "\n");
  // Only when asked for, so that every other environment keeps its key.
  if (request.horovod) absl::StrAppend(&text, "horovod=", kHorovodVersion, "\n");
  for (const std::string& option : PipOptions(request.pip)) absl::StrAppend(&text, "pip-option=", option, "\n");
  return archive::Sha256Digest(text).substr(7, 32);
}

std::string HostPythonIdentity() {
  std::string text;
  for (const char* candidate : {"/usr/local/bin/python3", "/usr/bin/python3"}) {
    std::error_code error;
    fs::path resolved = fs::canonical(candidate, error);
    if (error) continue;
    struct stat st {};
    if (stat(resolved.c_str(), &st) != 0) continue;
    absl::StrAppend(&text, "python=", resolved.string(), " size=", st.st_size,
                    " mtime=", st.st_mtim.tv_sec, "\n");
    // Packages installed next to it (apt, pip into /usr/local) change what a venv with the
    // system's site-packages sees.
    std::string version = resolved.filename().string();  // python3.11
    for (const std::string& dir :
         {std::string("/usr/lib/python3/dist-packages"),
          absl::StrCat("/usr/local/lib/", version, "/dist-packages"),
          absl::StrCat("/usr/lib/", version, "/site-packages")}) {
      struct stat d {};
      if (stat(dir.c_str(), &d) == 0) absl::StrAppend(&text, dir, " mtime=", d.st_mtim.tv_sec, "\n");
    }
    break;
  }
  absl::StrAppend(&text, ReadText("/etc/os-release"));
  return absl::StrCat("host:", archive::Sha256Digest(text).substr(7));
}

}  // namespace drover::agent
