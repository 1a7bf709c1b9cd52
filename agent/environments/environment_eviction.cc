// The environment cache's disk budget (environment_cache.h): which environments to evict,
// least recently used first and never one in use, and their removal.
#include "agent/environments/environment_cache.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <tuple>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/environments/environment_internal.h"
#include "common/json.h"
#include "common/log.h"

namespace drover::agent {
namespace {

namespace fs = std::filesystem;

absl::Time ModifiedAt(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return absl::InfinitePast();
  return absl::TimeFromTimespec(st.st_mtim);
}

}  // namespace

std::vector<std::string> ChooseEvictions(std::vector<CachedEnvironmentInfo> entries,
                                         int64_t budget_bytes) {
  int64_t total = 0;
  for (const CachedEnvironmentInfo& e : entries) total += e.bytes;
  std::sort(entries.begin(), entries.end(),
            [](const CachedEnvironmentInfo& a, const CachedEnvironmentInfo& b) {
              return std::tie(a.last_used, a.key) < std::tie(b.last_used, b.key);
            });
  std::vector<std::string> evicted;
  for (const CachedEnvironmentInfo& e : entries) {
    if (total <= budget_bytes) break;
    if (e.in_use) continue;
    evicted.push_back(e.key);
    total -= e.bytes;
  }
  return evicted;
}

void EnvironmentCache::CollectGarbage() {
  std::vector<std::pair<std::string, std::string>> doomed;  // key, trash folder
  {
    absl::MutexLock lock(&mu_);
    std::vector<CachedEnvironmentInfo> entries;
    std::error_code error;
    for (const auto& entry : fs::directory_iterator(options_.root, error)) {
      std::string key = entry.path().filename().string();
      if (absl::StartsWith(key, ".")) continue;
      CachedEnvironmentInfo info;
      info.key = key;
      absl::StatusOr<Json> meta = ParseJson(ReadText(entry.path().string() + "/environment.json"));
      const Json* bytes = meta.ok() ? JsonFind(*meta, "bytes") : nullptr;
      info.bytes = bytes != nullptr ? JsonInt(*bytes) : 0;
      info.last_used = ModifiedAt(entry.path().string() + "/last-used");
      info.in_use = in_use_.contains(key) || building_.contains(key);
      entries.push_back(std::move(info));
    }
    for (const std::string& key : ChooseEvictions(std::move(entries), options_.budget_bytes)) {
      std::string trash = absl::StrCat(options_.root, "/", kTrashPrefix, key, "-", getpid(), "-", next_folder_++);
      // Renamed under the lock: no Get() can take it from here on.
      if (rename(PathOf(key).c_str(), trash.c_str()) == 0) doomed.emplace_back(key, trash);
    }
  }
  for (const auto& [key, trash] : doomed) {
    std::error_code ignored;
    fs::remove_all(trash, ignored);
    Log(LogLevel::kInfo, "environment_evicted", {{"key", key}, {"budget_bytes", options_.budget_bytes}});
  }
}

}  // namespace drover::agent
