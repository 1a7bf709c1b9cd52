#include "agent/runtime/oci_runtime_choice.h"

#include <linux/magic.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/runtime/oci_runtime_version.h"
#include "agent/runtime/runtime_files.h"

namespace drover::agent {

namespace fs = std::filesystem;

namespace {

bool Contains(const std::vector<std::string>& list, absl::string_view item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

// crun's version number from its `--version` ("crun version 1.8.1" → "1.8.1").
std::string CrunVersionNumber(absl::string_view version_output) {
  for (absl::string_view line : absl::StrSplit(version_output, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (absl::ConsumePrefix(&line, "crun version ")) return std::string(line);
  }
  return "";
}

}  // namespace

const std::vector<std::string>& JobCgroupControllers() {
  static const auto* controllers = new std::vector<std::string>{"memory", "cpu", "pids", "devices"};
  return *controllers;
}

bool CrunNeedsCgroup2Hidden(const CgroupLayout& layout) {
  return layout.kind == CgroupLayout::Kind::kHybrid && !layout.cgroup2_controllers.empty();
}

OciRuntimeChoice ChooseOciRuntime(const OciRuntimeProbe& probe) {
  auto runc = [](std::string reason) {
    return OciRuntimeChoice{.path = "runc", .hide_cgroup2 = false, .reason = std::move(reason)};
  };
  if (probe.runc_containers) {
    return runc("containers runc made still run on this node (crun would not know them)");
  }
  if (probe.crun_path.empty()) return runc("crun is not installed");
  if (probe.crun_version.empty()) return runc(absl::StrCat("crun '", probe.crun_path, "' does not run"));
  if (absl::Status floor = CheckCrunFloor(probe.crun_version); !floor.ok()) {
    return runc(std::string(floor.message()));
  }
  const CgroupLayout& layout = probe.layout;
  if (layout.kind == CgroupLayout::Kind::kUnknown) {
    return runc("the node's cgroup layout is unknown (/sys/fs/cgroup is neither cgroup2 nor v1 hierarchies)");
  }
  if (layout.kind != CgroupLayout::Kind::kV2) {
    std::vector<std::string> missing;
    for (const std::string& controller : JobCgroupControllers()) {
      if (!Contains(layout.v1_controllers, controller)) missing.push_back(controller);
    }
    if (!missing.empty()) {
      return runc(absl::StrCat("cgroup v1 hierarchies lack ", absl::StrJoin(missing, ", "),
                               ", which crun needs there to apply a job's limits"));
    }
  }
  std::string version = CrunVersionNumber(probe.crun_version);
  OciRuntimeChoice crun{.path = probe.crun_path, .hide_cgroup2 = CrunNeedsCgroup2Hidden(layout)};
  switch (layout.kind) {
    case CgroupLayout::Kind::kV2:
      crun.reason = absl::StrCat("crun ", version, " installed, cgroup v2");
      break;
    case CgroupLayout::Kind::kV1:
      crun.reason = absl::StrCat("crun ", version, " installed, cgroup v1");
      break;
    default:
      crun.reason = crun.hide_cgroup2
                        ? absl::StrCat("crun ", version, " installed, hybrid cgroups: cgroup2 (",
                                       absl::StrJoin(layout.cgroup2_controllers, ","),
                                       ", no job limit) hidden from crun, limits on v1")
                        : absl::StrCat("crun ", version, " installed, hybrid cgroups, cgroup2 without controllers");
      break;
  }
  return crun;
}

std::vector<std::string> V1ControllersFromProcCgroups(absl::string_view proc_cgroups) {
  std::vector<std::string> controllers;
  for (absl::string_view line : absl::StrSplit(proc_cgroups, '\n', absl::SkipEmpty())) {
    if (absl::StartsWith(line, "#")) continue;
    std::vector<absl::string_view> fields = absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    int hierarchy = 0;
    int enabled = 0;
    if (fields.size() == 4 && absl::SimpleAtoi(fields[1], &hierarchy) &&
        absl::SimpleAtoi(fields[3], &enabled) && hierarchy != 0 && enabled != 0) {
      controllers.emplace_back(fields[0]);
    }
  }
  return controllers;
}

CgroupLayout ProbeCgroupLayout() {
  CgroupLayout layout;
  struct statfs root {};
  if (statfs("/sys/fs/cgroup", &root) != 0) return layout;
  std::string cgroup2_root;
  if (root.f_type == CGROUP2_SUPER_MAGIC) {
    layout.kind = CgroupLayout::Kind::kV2;
    cgroup2_root = "/sys/fs/cgroup";
  } else if (root.f_type == TMPFS_MAGIC) {
    struct statfs unified {};
    std::string mount(kHybridCgroup2Mount);
    if (statfs(mount.c_str(), &unified) == 0 && unified.f_type == CGROUP2_SUPER_MAGIC) {
      layout.kind = CgroupLayout::Kind::kHybrid;
      cgroup2_root = mount;
    } else {
      layout.kind = CgroupLayout::Kind::kV1;
    }
  } else {
    return layout;
  }
  if (absl::StatusOr<std::string> text = ReadFile("/proc/cgroups"); text.ok()) {
    layout.v1_controllers = V1ControllersFromProcCgroups(*text);
  }
  if (!cgroup2_root.empty()) {
    if (absl::StatusOr<std::string> text = ReadFile(cgroup2_root + "/cgroup.controllers"); text.ok()) {
      layout.cgroup2_controllers = absl::StrSplit(*text, absl::ByAnyChar(" \n"), absl::SkipEmpty());
    }
  }
  return layout;
}

OciRuntimeProbe ProbeOciRuntimes(
    const std::string& runtime_root,
    const std::function<absl::StatusOr<std::string>(const std::vector<std::string>&)>&
        run_version) {
  OciRuntimeProbe probe;
  std::vector<std::string> candidates;
  const char* path = getenv("PATH");
  for (absl::string_view folder : absl::StrSplit(path != nullptr ? path : "", ':', absl::SkipEmpty())) {
    candidates.push_back(absl::StrCat(folder, "/crun"));
  }
  candidates.insert(candidates.end(), {"/usr/bin/crun", "/usr/sbin/crun"});
  for (const std::string& candidate : candidates) {
    if (access(candidate.c_str(), X_OK) == 0) {
      probe.crun_path = candidate;
      break;
    }
  }
  if (!probe.crun_path.empty()) {
    absl::StatusOr<std::string> version = run_version({probe.crun_path, "--version"});
    if (version.ok()) probe.crun_version = *version;
  }
  probe.layout = ProbeCgroupLayout();
  std::error_code error;
  for (const fs::directory_entry& entry : fs::directory_iterator(runtime_root, error)) {
    if (fs::exists(entry.path() / "state.json", error)) {
      probe.runc_containers = true;
      break;
    }
  }
  return probe;
}

}  // namespace drover::agent
