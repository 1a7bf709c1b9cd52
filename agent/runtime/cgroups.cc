// Cgroups of containers (cgroups.h): which folders hold a process's cgroups on v1, v2 and
// hybrid hosts, and reading their usage and OOM counters.
#include "agent/runtime/cgroups.h"

#include <cstdint>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/runtime/runtime_files.h"

namespace drover::agent {
namespace {

// A cgroup file holding one number; -1 when missing or unreadable.
int64_t ReadCgroupNumber(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  int64_t value = -1;
  if (!text.ok() || !absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &value)) return -1;
  return value;
}

}  // namespace

CgroupDirs ChooseCgroupDirs(absl::string_view proc_cgroup, const std::vector<MountEntry>& mounts) {
  CgroupDirs dirs;
  std::map<std::string, std::string> v1_paths;  // controller -> path in its hierarchy
  std::string v2_path;
  bool have_v2 = false;
  for (absl::string_view line : absl::StrSplit(proc_cgroup, '\n', absl::SkipEmpty())) {
    std::vector<std::string> parts = absl::StrSplit(line, absl::MaxSplits(':', 2));
    if (parts.size() != 3) continue;
    // A container is never in a root cgroup; its process is there once it has exited (an
    // unreaped process has left its cgroups), and the root's counters are the whole
    // machine's: a job's last sample showed the node's memory peak as its own.
    if (parts[2] == "/") continue;
    if (parts[0] == "0" && parts[1].empty()) {
      v2_path = parts[2];
      have_v2 = true;
    }
    for (absl::string_view controller : absl::StrSplit(parts[1], ',', absl::SkipEmpty())) {
      v1_paths[std::string(controller)] = parts[2];
    }
  }
  for (const MountEntry& mount : mounts) {
    if (mount.fs_type == "cgroup") {
      for (absl::string_view option : absl::StrSplit(mount.super_options, ',')) {
        auto it = v1_paths.find(std::string(option));
        if (it != v1_paths.end()) dirs.v1[it->first] = absl::StrCat(mount.mount_point, it->second);
      }
    } else if (mount.fs_type == "cgroup2" && have_v2 && dirs.v2.empty()) {
      dirs.v2 = absl::StrCat(mount.mount_point, v2_path == "/" ? "" : v2_path);
    }
  }
  return dirs;
}

CgroupDirs FindCgroups(pid_t pid) {
  absl::StatusOr<std::string> cgroups = ReadFile(absl::StrCat("/proc/", pid, "/cgroup"));
  if (!cgroups.ok()) return CgroupDirs();
  return ChooseCgroupDirs(*cgroups, ReadMountInfo());
}

std::string FormatCgroupDirs(const CgroupDirs& dirs) {
  std::string text;
  for (const auto& [controller, folder] : dirs.v1) absl::StrAppend(&text, controller, " ", folder, "\n");
  if (!dirs.v2.empty()) absl::StrAppend(&text, "v2 ", dirs.v2, "\n");
  return text;
}

CgroupDirs ParseCgroupDirs(absl::string_view text) {
  CgroupDirs dirs;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(line, absl::MaxSplits(' ', 1));
    const absl::string_view folder = kv.second;
    if (kv.first.empty() || folder.empty() || folder[0] != '/' ||
        absl::StrContains(folder, "/..") || absl::StrContains(folder, '\0')) {
      continue;
    }
    if (kv.first == "v2") {
      dirs.v2 = std::string(folder);
    } else {
      dirs.v1[std::string(kv.first)] = std::string(folder);
    }
  }
  return dirs;
}

std::string OomFileOf(const CgroupDirs& dirs) {
  auto memory = dirs.v1.find("memory");
  if (memory != dirs.v1.end()) return memory->second + "/memory.oom_control";
  return dirs.v2.empty() ? "" : dirs.v2 + "/memory.events";
}

bool CountsOomKill(absl::string_view text) {
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(line, ' ');
    int64_t count = 0;
    if (kv.first == "oom_kill" && absl::SimpleAtoi(kv.second, &count) && count > 0) return true;
  }
  return false;
}

bool ReadOomKilled(const std::string& oom_file) {
  if (oom_file.empty()) return false;
  absl::StatusOr<std::string> text = ReadFile(oom_file);
  if (!text.ok()) return false;
  return CountsOomKill(*text);
}

ContainerStats ReadCgroupStats(const CgroupDirs& dirs) {
  ContainerStats stats;
  auto memory = dirs.v1.find("memory");
  auto cpu = dirs.v1.find("cpuacct");
  if (memory != dirs.v1.end()) {
    stats.memory_bytes = ReadCgroupNumber(memory->second + "/memory.usage_in_bytes");
    stats.memory_peak_bytes = ReadCgroupNumber(memory->second + "/memory.max_usage_in_bytes");
  } else if (!dirs.v2.empty()) {
    stats.memory_bytes = ReadCgroupNumber(dirs.v2 + "/memory.current");
    stats.memory_peak_bytes = ReadCgroupNumber(dirs.v2 + "/memory.peak");
  }
  if (cpu != dirs.v1.end()) {
    stats.cpu_ns = ReadCgroupNumber(cpu->second + "/cpuacct.usage");
  } else if (!dirs.v2.empty()) {
    absl::StatusOr<std::string> text = ReadFile(dirs.v2 + "/cpu.stat");
    stats.cpu_ns = -1;
    for (absl::string_view line : absl::StrSplit(text.ok() ? *text : "", '\n', absl::SkipEmpty())) {
      std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(line, ' ');
      int64_t usec = 0;
      if (kv.first == "usage_usec" && absl::SimpleAtoi(kv.second, &usec) && usec >= 0 &&
          usec <= INT64_MAX / 1000) {
        stats.cpu_ns = usec * 1000;
      }
    }
  }
  return stats;
}

ContainerStats ReadFinalUsage(const CgroupDirs& dirs) {
  ContainerStats usage{.cpu_ns = -1, .memory_bytes = -1, .memory_peak_bytes = -1};
  if (dirs.v1.empty() && dirs.v2.empty()) return usage;
  ContainerStats read = ReadCgroupStats(dirs);
  // A field ReadCgroupStats had no folder for keeps its running-container default (0).
  const bool has_cpu = dirs.v1.contains("cpuacct") || !dirs.v2.empty();
  const bool has_memory = dirs.v1.contains("memory") || !dirs.v2.empty();
  if (has_cpu && read.cpu_ns >= 0) usage.cpu_ns = read.cpu_ns;
  if (has_memory && read.memory_peak_bytes >= 0) usage.memory_peak_bytes = read.memory_peak_bytes;
  return usage;
}

}  // namespace drover::agent
