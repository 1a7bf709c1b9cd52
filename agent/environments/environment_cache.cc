#include "agent/environments/environment_cache.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "agent/launcher/init_command.h"
#include "agent/runtime/json.h"
#include "common/archive/sha256.h"
#include "common/log.h"

namespace drover::agent {
namespace {

namespace fs = std::filesystem;

constexpr char kBuildPrefix[] = ".build-";
constexpr char kTrashPrefix[] = ".trash-";
// The build container's own folder (ContainerSpec::job_dir) and the attempt's log folder in it.
constexpr char kBuildJobDir[] = "/job";
constexpr char kBuildLogDir[] = "/job/logs";
// The script's refusals (see EnvironmentBuildScript).
constexpr int kNoConda = 90;
constexpr int kNoPython = 91;
constexpr int kNoPip = 92;
constexpr int kNoVenv = 93;
constexpr int kCondaWithoutPython = 94;

std::vector<std::string> SortedUnique(const std::vector<std::string>& items) {
  std::vector<std::string> out = items;
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// `text` as one single-quoted shell word.
std::string ShellQuote(absl::string_view text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out.push_back(c);
    }
  }
  out += "'";
  return out;
}

std::string ShellWords(const std::vector<std::string>& words) {
  std::vector<std::string> quoted;
  for (const std::string& w : words) quoted.push_back(ShellQuote(w));
  return absl::StrJoin(quoted, " ");
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

absl::Status WriteText(const std::string& path, absl::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out.flush()) return absl::UnavailableError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

// Appends to the preparation log (O_APPEND: the build container appends to the same file).
void AppendLog(const std::string& path, absl::string_view text) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return;
  while (!text.empty()) {
    ssize_t n = write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.remove_prefix(static_cast<size_t>(n));
  }
  close(fd);
}

int64_t FileSize(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 ? st.st_size : 0;
}

// Disk space the tree at `dir` takes (allocated blocks, links not followed).
int64_t DiskUsage(const std::string& dir) {
  int64_t total = 0;
  std::error_code error;
  for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied,
                                                  error);
       !error && it != fs::recursive_directory_iterator(); it.increment(error)) {
    struct stat st {};
    if (lstat(it->path().c_str(), &st) == 0) total += static_cast<int64_t>(st.st_blocks) * 512;
  }
  return total;
}

void Touch(const std::string& path) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return;
  futimens(fd, nullptr);
  close(fd);
}

absl::Time ModifiedAt(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return absl::InfinitePast();
  return absl::TimeFromTimespec(st.st_mtim);
}

absl::Status SyncTree(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("cannot open ", dir, ": ", strerror(errno)));
  int result = syncfs(fd);
  int saved = errno;
  close(fd);
  if (result != 0) return absl::UnavailableError(absl::StrCat("syncfs ", dir, ": ", strerror(saved)));
  return absl::OkStatus();
}

// Whether anything is mounted at or below `dir` (then removing it could reach through).
bool HasMountUnder(const std::string& dir) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::vector<absl::string_view> fields = absl::StrSplit(line, ' ');
    if (fields.size() < 5) continue;
    absl::string_view point = fields[4];
    if (point == dir || absl::StartsWith(point, absl::StrCat(dir, "/"))) return true;
  }
  return false;
}

std::string Describe(const EnvironmentRequest& request) {
  std::vector<std::string> parts;
  if (!request.conda_packages.empty()) {
    parts.push_back(absl::StrCat("conda: ", absl::StrJoin(SortedUnique(request.conda_packages), " ")));
  }
  if (!request.pip_packages.empty()) {
    parts.push_back(absl::StrCat("pip: ", absl::StrJoin(SortedUnique(request.pip_packages), " ")));
  }
  return absl::StrJoin(parts, "; ");
}

std::string Hex8(absl::string_view text) {
  return absl::StrCat(absl::Hex(std::hash<std::string>()(std::string(text)) & 0xffffffff,
                                absl::kZeroPad8));
}

}  // namespace

bool NeedsEnvironment(const v1::Environment& environment) {
  return !environment.pip_packages().empty() || !environment.conda_packages().empty();
}

std::vector<std::string> PipOptions(const v1::PipSettings& settings) {
  std::vector<std::string> options;
  if (!settings.index_url().empty()) options.insert(options.end(), {"--index-url", settings.index_url()});
  for (const std::string& url : settings.extra_index_urls()) {
    options.insert(options.end(), {"--extra-index-url", url});
  }
  for (const std::string& link : settings.find_links()) {
    options.insert(options.end(), {"--find-links", link});
  }
  for (const std::string& host : settings.trusted_hosts()) {
    options.insert(options.end(), {"--trusted-host", host});
  }
  if (settings.no_index()) options.push_back("--no-index");
  return options;
}

std::string EnvironmentKey(const EnvironmentRequest& request) {
  // One field per line; packages and settings hold no whitespace (job spec validation and
  // droverd's flags refuse it), so the text is unambiguous.
  std::string text = "drover-environment-v1\n";
  absl::StrAppend(&text, "image=", request.image_identity, "\n");
  for (const std::string& p : SortedUnique(request.conda_packages)) absl::StrAppend(&text, "conda=", p, "\n");
  for (const std::string& p : SortedUnique(request.pip_packages)) absl::StrAppend(&text, "pip=", p, "\n");
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

std::string EnvironmentBuildScript(const EnvironmentRequest& request) {
  const std::string pip_install =
      absl::StrCat("\"$E/bin/python\" -m pip install --no-cache-dir --no-input "
                   "--disable-pip-version-check --progress-bar off",
                   PipOptions(request.pip).empty() ? "" : " ",
                   ShellWords(PipOptions(request.pip)), " -r /job/requirements.txt");
  std::string script = absl::StrCat(
      "# Builds a Drover job environment into ", kEnvironmentPrefix,
      " (agent/environments/environment_cache.h).\n"
      "exec 2>&1\n"
      "set -u\n"
      "E=", kEnvironmentPrefix, "\n"
      "export TMPDIR=", kEnvironmentMount, "/tmp\n"
      "mkdir -p \"$TMPDIR\"\n"
      "trap 'rm -rf \"$TMPDIR\"' EXIT\n"
      "refuse() { code=$1; shift; echo \"drover: $*\"; exit \"$code\"; }\n"
      "run() { echo \"+ $*\"; \"$@\"; }\n");
  if (!request.conda_packages.empty()) {
    absl::StrAppend(
        &script,
        "C=$(command -v mamba || command -v conda) || refuse ", kNoConda,
        " \"the image has neither conda nor mamba\"\n",
        "run \"$C\" create --yes --prefix \"$E\" ", ShellWords(SortedUnique(request.conda_packages)),
        " || exit $?\n");
    if (!request.pip_packages.empty()) {
      absl::StrAppend(&script, "[ -x \"$E/bin/python\" ] || refuse ", kCondaWithoutPython,
                      " \"the conda environment has no python to install pip_packages with; add "
                      "python to conda_packages\"\n",
                      "run ", pip_install, " || exit $?\n");
    }
    absl::StrAppend(
        &script,
        "echo kind=conda > /job/result\n"
        "if [ -x \"$E/bin/python\" ]; then\n"
        "  S=$(\"$E/bin/python\" -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])') "
        "|| exit $?\n"
        "  echo \"site=$S\" >> /job/result\n"
        "fi\n");
    return script;
  }
  absl::StrAppend(
      &script,
      "P=$(command -v python3 || command -v python) || refuse ", kNoPython,
      " \"the image has no python3\"\n",
      "\"$P\" -m pip --version > /dev/null 2>&1 || refuse ", kNoPip, " \"$P has no pip\"\n",
      "\"$P\" -c 'import venv' > /dev/null 2>&1 || refuse ", kNoVenv, " \"$P has no venv module\"\n",
      // The image's packages stay visible; pip installs only what is missing or different.
      "run \"$P\" -m venv --without-pip --system-site-packages \"$E\" || exit $?\n",
      "run ", pip_install, " || exit $?\n",
      "S=$(\"$E/bin/python\" -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])') "
      "|| exit $?\n"
      "printf 'kind=venv\\nsite=%s\\n' \"$S\" > /job/result\n");
  return script;
}

std::string BuildFailureSummary(absl::string_view output) {
  constexpr size_t kMax = 1000;
  std::vector<std::string> errors;
  std::vector<std::string> last;
  for (absl::string_view line : absl::StrSplit(output, absl::ByAnyChar("\r\n"))) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    // pip: "ERROR: ...", conda: "PackagesNotFoundError: ...", "CondaHTTPError: ...".
    size_t colon = line.find(':');
    absl::string_view head = colon == absl::string_view::npos ? "" : line.substr(0, colon);
    if (head == "ERROR" ||
        (absl::EndsWith(head, "Error") && head.find(' ') == absl::string_view::npos)) {
      errors.emplace_back(line);
    }
    last.emplace_back(line);
  }
  std::vector<std::string>& chosen = errors.empty() ? last : errors;
  if (chosen.size() > 3) chosen.erase(chosen.begin(), chosen.end() - 3);
  std::string text = absl::StrJoin(chosen, "; ");
  if (text.size() > kMax) text = text.substr(0, kMax) + "...";
  return text;
}

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
  // drover-init names the one process's output file so (first rank 0).
  return absl::StrCat(log_dir, "/rank-0.stdout");
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
  absl::StatusOr<Json> meta = Json::Parse(ReadText(dir + "/environment.json"));
  if (!meta.ok() || !meta->is_object()) return absl::NotFoundError("not cached");
  Prepared prepared;
  prepared.key = key;
  prepared.layer_dir = dir + "/layer";
  if (const Json* kind = meta->Find("kind")) prepared.kind = kind->AsString();
  if (const Json* site = meta->Find("site_packages")) prepared.site_packages = site->AsString();
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
  const std::string log = LogPath(context.log_dir);
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
      AppendLog(log, absl::StrCat("drover: using cached environment ", key, " on ",
                                  context.node_name, " (image ", request.image, "; ",
                                  Describe(request), ")\n"));
      return cached;
    }
    if (build) break;
    if (!waited) {
      waited = true;
      if (context.building) context.building();
      AppendLog(log, absl::StrCat("drover: waiting for environment ", key,
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

absl::Status EnvironmentCache::Build(const std::string& key, const EnvironmentRequest& request,
                                     const BuildContext& context) {
  const std::string log = LogPath(context.log_dir);
  uint64_t n;
  {
    absl::MutexLock lock(&mu_);
    n = next_folder_++;
  }
  const std::string partial = absl::StrCat(options_.root, "/", kBuildPrefix, key, "-", getpid(), "-", n);
  auto fail = [&](absl::Status status) {
    std::error_code ignored;
    if (!HasMountUnder(partial)) fs::remove_all(partial, ignored);
    AppendLog(log, absl::StrCat("drover: building environment ", key, " failed: ", status.message(), "\n"));
    Log(LogLevel::kWarning, "environment_build_failed",
        {{"key", key}, {"job", context.job_id}, {"error", status.message()}});
    return status;
  };
  std::error_code error;
  for (const char* sub : {"/layer", "/job", "/bundle"}) {
    fs::create_directories(partial + sub, error);
    if (error) {
      return fail(absl::UnavailableError(absl::StrCat("cannot create ", partial, sub, ": ", error.message())));
    }
  }
  std::string requirements;
  for (const std::string& p : SortedUnique(request.pip_packages)) absl::StrAppend(&requirements, p, "\n");
  for (const auto& [file, text] : {std::pair{"/job/requirements.txt", requirements},
                                   std::pair{"/job/build.sh", EnvironmentBuildScript(request)}}) {
    if (absl::Status s = WriteText(partial + file, text); !s.ok()) return fail(s);
  }

  ContainerSpec c;
  c.id = absl::StrCat("drover-env-", key.substr(0, 16), "-", container_suffix_);
  c.bundle_dir = partial + "/bundle";
  c.job_dir = partial + "/job";
  c.cwd = kBuildJobDir;
  c.image_rootfs = request.image_rootfs;
  c.hostname = context.node_name;
  c.env = request.image_env;
  auto has = [&c](absl::string_view name) {
    return std::any_of(c.env.begin(), c.env.end(), [&](const std::string& e) {
      return absl::StartsWith(e, absl::StrCat(name, "="));
    });
  };
  if (!has("PATH")) c.env.push_back("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  if (!has("HOME")) c.env.push_back("HOME=/root");
  // pip and python see only what the cache key says: no configuration files, no user site.
  for (const char* e : {"PIP_CONFIG_FILE=/dev/null", "PYTHONNOUSERSITE=1",
                        "PIP_ROOT_USER_ACTION=ignore", "PYTHONUNBUFFERED=1"}) {
    c.env.push_back(e);
  }
  c.mounts.push_back({.source = partial + "/layer",
                      .destination = kEnvironmentMount,
                      .read_only = false,
                      .owned_by_container = true});
  c.mounts.push_back({.source = context.log_dir,
                      .destination = kBuildLogDir,
                      .read_only = false,
                      .owned_by_container = true});
  for (const std::string& link : request.pip.find_links()) {
    if (!absl::StartsWith(link, "/")) continue;  // a URL
    if (!fs::is_directory(link, error)) {
      return fail(absl::FailedPreconditionError(absl::StrCat(
          "pip find-links folder '", link, "' (droverd --pip-find-links) does not exist on node ",
          context.node_name, "; create it there or change the flag")));
    }
    c.mounts.push_back({.source = link, .destination = link, .read_only = true});
  }
  InitCommand init;
  init.log_dir = kBuildLogDir;
  init.first_rank = 0;
  init.count = 1;
  init.program = {"/bin/sh", absl::StrCat(kBuildJobDir, "/build.sh")};
  c.args = init.ToArgs();

  AppendLog(log, absl::StrCat("drover: building environment ", key, " on ", context.node_name,
                              " (image ", request.image, "; ", Describe(request), ")\n"));
  const int64_t output_start = FileSize(log);
  absl::Time started = absl::Now();
  absl::StatusOr<int> exit_code = RunBuildContainer(c, context);
  // drover-init's own complaints (a program it could not start) and its result files.
  const std::string err_file = absl::StrCat(context.log_dir, "/rank-0.stderr");
  if (std::string err = ReadText(err_file); !err.empty()) AppendLog(log, err);
  for (const char* name : {"/rank-0.stderr", "/rank-0.exit", "/init.result"}) {
    fs::remove(context.log_dir + name, error);
  }
  if (!exit_code.ok()) return fail(exit_code.status());
  const std::string where = absl::StrCat("image '", request.image, "'");
  switch (*exit_code) {
    case 0:
      break;
    case kNoConda:
      return fail(absl::FailedPreconditionError(absl::StrCat(
          where, " has neither conda nor mamba; remove conda_packages or use an image with conda")));
    case kNoPython:
      return fail(absl::FailedPreconditionError(absl::StrCat(
          where, " has no python3; pip_packages need an image with python3 and pip")));
    case kNoPip:
      return fail(absl::FailedPreconditionError(absl::StrCat(
          where, "'s python3 has no pip; use an image with pip (Debian: python3-pip)")));
    case kNoVenv:
      return fail(absl::FailedPreconditionError(absl::StrCat(
          where, "'s python3 has no venv module; use an image with it (Debian: python3-venv)")));
    case kCondaWithoutPython:
      return fail(absl::FailedPreconditionError(absl::StrCat(
          "environment of ", where, ": conda_packages have no python to install pip_packages "
          "with; add python to conda_packages")));
    default: {
      std::string output = ReadText(log).substr(static_cast<size_t>(output_start));
      std::string summary = BuildFailureSummary(output);
      return fail(absl::FailedPreconditionError(absl::StrCat(
          "building the environment (", Describe(request), ") in ", where, " on ",
          context.node_name, " failed with exit code ", *exit_code,
          summary.empty() ? "" : ": ", summary, "; the whole output: drover logs ",
          context.job_id, " --prepare")));
    }
  }

  struct {
    std::string kind;
    std::string site_packages;
  } result;
  for (absl::string_view line : absl::StrSplit(ReadText(partial + "/job/result"), '\n')) {
    if (absl::ConsumePrefix(&line, "kind=")) result.kind = std::string(line);
    if (absl::ConsumePrefix(&line, "site=")) result.site_packages = std::string(line);
  }
  fs::remove_all(partial + "/job", error);
  fs::remove_all(partial + "/bundle", error);
  fs::remove_all(partial + "/layer/tmp", error);
  const int64_t bytes = DiskUsage(partial + "/layer");
  Json meta = Json::Object();
  meta.Set("key", key);
  meta.Set("image", request.image);
  meta.Set("image_identity", request.image_identity);
  meta.Set("pip_packages", Json::Strings(SortedUnique(request.pip_packages)));
  meta.Set("conda_packages", Json::Strings(SortedUnique(request.conda_packages)));
  meta.Set("pip_options", Json::Strings(PipOptions(request.pip)));
  meta.Set("kind", result.kind);
  meta.Set("site_packages", result.site_packages);
  meta.Set("bytes", bytes);
  meta.Set("built", absl::FormatTime(absl::RFC3339_sec, absl::Now(), absl::UTCTimeZone()));
  if (absl::Status s = WriteText(partial + "/environment.json", meta.Dump(2)); !s.ok()) return fail(s);
  Touch(partial + "/last-used");
  if (absl::Status s = SyncTree(partial); !s.ok()) return fail(s);
  if (rename(partial.c_str(), PathOf(key).c_str()) != 0) {
    return fail(absl::UnavailableError(absl::StrCat("cannot move the built environment to ",
                                                    PathOf(key), ": ", strerror(errno))));
  }
  double seconds = absl::ToDoubleSeconds(absl::Now() - started);
  AppendLog(log, absl::StrCat("drover: environment ", key, " built in ",
                              absl::StrFormat("%.1f", seconds), " s (",
                              absl::StrFormat("%.1f", bytes / 1048576.0), " MiB)\n"));
  Log(LogLevel::kInfo, "environment_built",
      {{"key", key}, {"job", context.job_id}, {"image", request.image}, {"bytes", bytes},
       {"seconds", seconds}});
  return absl::OkStatus();
}

absl::StatusOr<int> EnvironmentCache::RunBuildContainer(const ContainerSpec& spec,
                                                        const BuildContext& context) {
  if (absl::Status s = runtime_.Run(spec); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("starting the environment build container: ", s.message()));
  }
  const absl::Time deadline = absl::Now() + options_.build_timeout;
  absl::Status ended = absl::OkStatus();
  absl::StatusOr<ContainerExit> exit = absl::DeadlineExceededError("not yet");
  while (true) {
    exit = runtime_.Wait(spec.id, 200);
    if (exit.ok() || !absl::IsDeadlineExceeded(exit.status())) break;
    if (context.stopped && context.stopped()) {
      ended = absl::CancelledError("the attempt was stopped while its environment was building");
    } else if (absl::Now() > deadline) {
      ended = absl::DeadlineExceededError(absl::StrCat(
          "building the environment took longer than ", absl::FormatDuration(options_.build_timeout),
          "; it was stopped"));
    } else {
      continue;
    }
    (void)runtime_.Signal(spec.id, SIGKILL, true);
    exit = runtime_.Wait(spec.id, 15000);
    break;
  }
  absl::Status deleted = runtime_.Delete(spec.id);
  if (!deleted.ok()) {
    Log(LogLevel::kError, "container_delete_failed", {{"container", spec.id}, {"error", deleted.message()}});
  }
  if (!ended.ok()) return ended;
  if (!exit.ok()) {
    return absl::Status(exit.status().code(),
                        absl::StrCat("watching the environment build container: ", exit.status().message()));
  }
  if (exit->exit_code < 0) {
    return absl::UnavailableError(absl::StrCat("the environment build was killed by signal ",
                                               exit->signal, exit->oom_killed ? " (out of memory)" : ""));
  }
  return exit->exit_code;
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
      absl::StatusOr<Json> meta = Json::Parse(ReadText(entry.path().string() + "/environment.json"));
      const Json* bytes = meta.ok() ? meta->Find("bytes") : nullptr;
      info.bytes = bytes != nullptr ? bytes->AsInt() : 0;
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
