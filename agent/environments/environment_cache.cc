// EnvironmentCache (environment_cache.h): Get() with its waiting for another attempt's
// build, leases, left-over folders and AddTo(). Keys are in environment_key.cc, the build's
// commands in environment_commands.cc, builds in environment_build.cc, eviction in
// environment_eviction.cc, the helpers they share in environment_internal.cc.
#include "agent/environments/environment_cache.h"

#include <algorithm>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/environments/environment_internal.h"
#include "common/json.h"
#include "common/log.h"

namespace drover::agent {
namespace {

namespace fs = std::filesystem;

std::string Hex8(absl::string_view text) {
  return absl::StrCat(absl::Hex(std::hash<std::string>()(std::string(text)) & 0xffffffff,
                                absl::kZeroPad8));
}

}  // namespace

class EnvironmentCache::Lease {
 public:
  Lease(EnvironmentCache* cache, std::string key) : cache_(cache), key_(std::move(key)) {}
  ~Lease() { cache_->Release(key_); }
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;

 private:
  EnvironmentCache* cache_;
  std::string key_;
};

std::string EnvironmentCache::LogPath(absl::string_view log_dir) {
  return absl::StrCat(log_dir, "/", kPrepareLog);
}

EnvironmentCache::EnvironmentCache(EnvironmentCacheOptions options, ContainerRuntime& runtime)
    : options_(std::move(options)), runtime_(runtime), container_suffix_(Hex8(options_.root)) {
  std::error_code error;
  fs::create_directories(options_.root, error);
}

EnvironmentCache::~EnvironmentCache() = default;

std::string EnvironmentCache::PathOf(absl::string_view key) const {
  return absl::StrCat(options_.root, "/", key);
}

void EnvironmentCache::RemoveLeftovers() {
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(options_.root, error)) {
    std::string name = entry.path().filename().string();
    if (!absl::StartsWith(name, kBuildPrefix) && !absl::StartsWith(name, kTrashPrefix)) continue;
    if (HasMountUnder(entry.path().string())) {
      Log(LogLevel::kWarning, "environment_leftover_kept",
          {{"path", entry.path().string()}, {"why", "something is mounted under it"}});
      continue;
    }
    std::error_code ignored;
    fs::remove_all(entry.path(), ignored);
  }
  CollectGarbage();
}

absl::StatusOr<EnvironmentCache::Prepared> EnvironmentCache::CachedLocked(const std::string& key) {
  const std::string dir = PathOf(key);
  std::error_code error;
  if (!fs::is_directory(dir + "/layer", error)) return absl::NotFoundError("not cached");
  absl::StatusOr<Json> meta = ParseJson(ReadText(dir + "/environment.json"));
  if (!meta.ok() || !meta->is_object()) return absl::NotFoundError("not cached");
  Prepared prepared;
  prepared.key = key;
  prepared.layer_dir = dir + "/layer";
  if (const Json* kind = JsonFind(*meta, "kind")) prepared.kind = JsonString(*kind);
  if (const Json* site = JsonFind(*meta, "site_packages")) {
    prepared.site_packages = JsonString(*site);
  }
  ++in_use_[key];
  prepared.lease = std::make_shared<Lease>(this, key);
  return prepared;
}

void EnvironmentCache::Release(const std::string& key) {
  {
    absl::MutexLock lock(&mu_);
    auto it = in_use_.find(key);
    if (it != in_use_.end() && --it->second <= 0) in_use_.erase(it);
  }
  Touch(PathOf(key) + "/last-used");
  CollectGarbage();
}

namespace {

// Waits while another attempt builds `key`.
struct NotBuilding {
  const std::set<std::string>* building;
  const std::string* key;
  bool operator()() const { return building->count(*key) == 0; }
};

}  // namespace

absl::StatusOr<EnvironmentCache::Prepared> EnvironmentCache::Get(const EnvironmentRequest& request,
                                                                 const BuildContext& context) {
  const std::string key = EnvironmentKey(request);
  std::error_code error;
  fs::create_directories(context.log_dir, error);
  bool waited = false;
  while (true) {
    absl::StatusOr<Prepared> cached;
    bool build = false;
    {
      absl::MutexLock lock(&mu_);
      cached = CachedLocked(key);
      if (!cached.ok() && !building_.contains(key)) {
        building_.insert(key);
        build = true;
      }
    }
    if (cached.ok()) {
      Touch(PathOf(key) + "/last-used");
      AppendLog(context.log_dir, kPrepareLog, absl::StrCat("drover: using cached environment ", key, " on ",
                                  context.node_name, " (image ", request.image, "; ",
                                  DescribePackages(request), ")\n"));
      return cached;
    }
    if (build) break;
    if (!waited) {
      waited = true;
      if (context.building) context.building();
      AppendLog(context.log_dir, kPrepareLog, absl::StrCat("drover: waiting for environment ", key,
                                  ", which another job is building on ", context.node_name, "\n"));
    }
    {
      absl::MutexLock lock(&mu_);
      NotBuilding done{&building_, &key};
      mu_.AwaitWithTimeout(absl::Condition(&done), absl::Milliseconds(200));
    }
    if (context.stopped && context.stopped()) {
      return absl::CancelledError(absl::StrCat("stopped while waiting for environment ", key));
    }
  }

  if (context.building) context.building();
  absl::Status built = Build(key, request, context);
  absl::StatusOr<Prepared> prepared;
  {
    absl::MutexLock lock(&mu_);
    building_.erase(key);
    prepared = built.ok() ? CachedLocked(key) : built;
  }
  if (prepared.ok()) {
    Touch(PathOf(key) + "/last-used");
    CollectGarbage();
  }
  return prepared;
}

void EnvironmentCache::AddTo(const Prepared& environment, ContainerSpec* spec) {
  spec->mounts.push_back(
      {.source = environment.layer_dir, .destination = kEnvironmentMount, .read_only = true});
  auto prepend = [spec](absl::string_view name, const std::string& value) {
    std::string prefix = absl::StrCat(name, "=");
    for (std::string& e : spec->env) {
      if (absl::StartsWith(e, prefix)) {
        std::string old = e.substr(prefix.size());
        e = absl::StrCat(prefix, value, old.empty() ? "" : ":", old);
        return;
      }
    }
    spec->env.push_back(absl::StrCat(prefix, value));
  };
  auto set = [spec](absl::string_view name, const std::string& value) {
    std::string prefix = absl::StrCat(name, "=");
    spec->env.erase(std::remove_if(spec->env.begin(), spec->env.end(),
                                   [&](const std::string& e) { return absl::StartsWith(e, prefix); }),
                    spec->env.end());
    spec->env.push_back(absl::StrCat(prefix, value));
  };
  prepend("PATH", absl::StrCat(kEnvironmentPrefix, "/bin"));
  if (environment.kind == "conda") {
    set("CONDA_PREFIX", kEnvironmentPrefix);
  } else {
    set("VIRTUAL_ENV", kEnvironmentPrefix);
    // Also for a job that runs the image's python3 by its full path.
    if (!environment.site_packages.empty()) prepend("PYTHONPATH", environment.site_packages);
  }
}

}  // namespace drover::agent
