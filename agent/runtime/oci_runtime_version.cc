#include "agent/runtime/oci_runtime_version.h"

#include <filesystem>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace drover::agent {

namespace fs = std::filesystem;

absl::Status CheckRuncHasCve202421626Fix(absl::string_view version_output) {
  std::string version;
  std::string commit;
  for (absl::string_view line : absl::StrSplit(version_output, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (absl::ConsumePrefix(&line, "runc version ")) version = std::string(line);
    if (absl::ConsumePrefix(&line, "commit:")) commit = std::string(absl::StripAsciiWhitespace(line));
  }
  // "1.1.5+ds1", "1.0.0~rc93+ds1", "1.1.12": the upstream release's numbers.
  int numbers[3] = {0, 0, 0};
  std::vector<absl::string_view> parts =
      absl::StrSplit(version.substr(0, version.find_first_of("+~-")), '.');
  bool parsed = parts.size() == 3;
  for (size_t i = 0; parsed && i < 3; ++i) parsed = absl::SimpleAtoi(parts[i], &numbers[i]);
  if (parsed && std::make_tuple(numbers[0], numbers[1], numbers[2]) >= std::make_tuple(1, 1, 12)) {
    return absl::OkStatus();
  }
  // Debian's security updates: "commit: 1.1.5+ds1-1+deb12u1" (DSA-5615).
  if (parsed) {
    size_t deb = commit.rfind("+deb");
    size_t u = deb == std::string::npos ? std::string::npos : commit.find('u', deb + 4);
    int release = 0;
    int update = 0;
    if (u != std::string::npos &&
        absl::SimpleAtoi(absl::string_view(commit).substr(deb + 4, u - deb - 4), &release) &&
        absl::SimpleAtoi(absl::string_view(commit).substr(u + 1), &update) &&
        ((release == 12 && update >= 1) || (release == 11 && update >= 3))) {
      return absl::OkStatus();
    }
  }
  return absl::FailedPreconditionError(absl::StrCat(
      parsed ? absl::StrCat("version ", version, commit.empty() ? "" : " (", commit,
                            commit.empty() ? "" : ")")
             : "an unknown version",
      " lacks the fix for CVE-2024-21626 (a container can reach the host's files through a "
      "leaked descriptor); install runc 1.1.12 or later, on Debian 12 Debian's runc "
      "1.1.5+ds1-1+deb12u1 or later (apt-get install runc), or, when your distribution "
      "backported the fix under an older version, start drover-agent with "
      "--allow-unpatched-runc"));
}

absl::Status CheckCrunFloor(absl::string_view version_output) {
  std::string version;
  for (absl::string_view line : absl::StrSplit(version_output, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (absl::ConsumePrefix(&line, "crun version ")) version = std::string(line);
  }
  int numbers[3] = {0, 0, 0};
  std::vector<absl::string_view> parts =
      absl::StrSplit(version.substr(0, version.find_first_of("+~- ")), '.');
  bool parsed = parts.size() >= 2 && parts.size() <= 3;
  for (size_t i = 0; parsed && i < parts.size(); ++i) {
    parsed = absl::SimpleAtoi(parts[i], &numbers[i]);
  }
  if (parsed && std::make_tuple(numbers[0], numbers[1], numbers[2]) >= std::make_tuple(1, 4, 4)) {
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(absl::StrCat(
      parsed ? absl::StrCat("crun version ", version) : "an unknown crun version",
      " lacks the fix for CVE-2022-27650 (processes start with inheritable capabilities); "
      "install crun 1.4.4 or later (Debian 12: apt-get install crun), use runc, or, when "
      "your distribution backported the fix under an older version, start drover-agent "
      "with --allow-unpatched-runc"));
}

OciRuntimeVersion CheckOciRuntimeVersion(absl::string_view version_output) {
  absl::string_view first = version_output.substr(0, version_output.find('\n'));
  if (absl::StartsWith(absl::StripLeadingAsciiWhitespace(first), "crun version ")) {
    return {.kind = OciRuntimeKind::kCrun, .floor = CheckCrunFloor(version_output)};
  }
  return {.kind = OciRuntimeKind::kRunc, .floor = CheckRuncHasCve202421626Fix(version_output)};
}

std::string OciRuntimeDescription(absl::string_view version_output) {
  absl::string_view first =
      absl::StripAsciiWhitespace(version_output.substr(0, version_output.find('\n')));
  for (absl::string_view name : {"crun", "runc"}) {
    absl::string_view rest = first;
    if (absl::ConsumePrefix(&rest, absl::StrCat(name, " version "))) return absl::StrCat(name, " ", rest);
  }
  return std::string(first);
}

std::string CrunCgroupBase(absl::string_view proc_self_cgroup) {
  std::string v2;
  std::vector<std::pair<std::string, std::string>> v1;  // controllers, path
  for (absl::string_view line : absl::StrSplit(proc_self_cgroup, '\n', absl::SkipEmpty())) {
    std::vector<std::string> parts = absl::StrSplit(line, absl::MaxSplits(':', 2));
    if (parts.size() != 3) continue;
    if (parts[0] == "0" && parts[1].empty()) {
      v2 = parts[2];
    } else if (!parts[1].empty()) {
      v1.emplace_back(parts[1], parts[2]);
    }
  }
  std::string base;
  if (v1.empty()) {
    // runc on cgroup v2: the parent of its own cgroup.
    base = v2.empty() ? "" : fs::path(v2).parent_path().string();
  } else {
    base = v1.front().second;
    for (const auto& [controllers, path] : v1) {
      for (absl::string_view controller : absl::StrSplit(controllers, ',')) {
        if (controller == "memory") base = path;
      }
    }
  }
  // "/" and "" both mean the root; no trailing slash either way.
  while (!base.empty() && base.back() == '/') base.pop_back();
  return base;
}

}  // namespace drover::agent
