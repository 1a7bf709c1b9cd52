// Environment builds (environment_cache.h): EnvironmentCache::Build runs the build script in
// a container of the job's image, reads its result and moves the finished layer into place;
// BuildFailureSummary picks the lines of a failed build worth showing.
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

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "agent/environments/environment_internal.h"
#include "agent/launcher/init_command.h"
#include "common/json.h"
#include "common/log.h"

namespace drover::agent {
namespace {

namespace fs = std::filesystem;

// The build container's own folder (ContainerSpec::job_dir) and the attempt's log folder in it.
constexpr char kBuildJobDir[] = "/job";
constexpr char kBuildLogDir[] = "/job/logs";

absl::Status WriteText(const std::string& path, absl::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out.flush()) return absl::UnavailableError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
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

absl::Status SyncTree(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("cannot open ", dir, ": ", strerror(errno)));
  int result = syncfs(fd);
  int saved = errno;
  close(fd);
  if (result != 0) return absl::UnavailableError(absl::StrCat("syncfs ", dir, ": ", strerror(saved)));
  return absl::OkStatus();
}

}  // namespace

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
    AppendLog(context.log_dir, kPrepareLog, absl::StrCat("drover: building environment ", key, " failed: ", status.message(), "\n"));
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

  AppendLog(context.log_dir, kPrepareLog, absl::StrCat("drover: building environment ", key, " on ", context.node_name,
                              " (image ", request.image, "; ", DescribePackages(request), ")\n"));
  const int64_t output_start = FileSize(log);
  absl::Time started = options_.clock->Now();
  absl::StatusOr<int> exit_code = RunBuildContainer(c, context);
  // drover-init's own complaints (a program it could not start) and its result files.
  if (std::string err = ReadContainerFile(context.log_dir, "rank-0.stderr", 0, 64 << 10);
      !err.empty()) {
    AppendLog(context.log_dir, kPrepareLog, err);
  }
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
    case kCannotBuildHorovod: {
      std::vector<std::string> missing = absl::StrSplit(
          ReadContainerFile(partial + "/job", kHorovodMissingFile, 0, 4096), '\n', absl::SkipEmpty());
      return fail(absl::FailedPreconditionError(absl::StrCat(
          where, " cannot build Horovod (environment.horovod) on ", context.node_name,
          ": it lacks ", missing.empty() ? "a tool the build needs" : absl::StrJoin(missing, ", "),
          "; use an image with them, or leave horovod out")));
    }
    default: {
      std::string output = ReadContainerFile(context.log_dir, kPrepareLog, output_start);
      std::string summary = BuildFailureSummary(output);
      return fail(absl::FailedPreconditionError(absl::StrCat(
          "building the environment (", DescribePackages(request), ") in ", where, " on ",
          context.node_name, " failed with exit code ", *exit_code,
          summary.empty() ? "" : ": ", summary, "; the whole output: drover logs ",
          context.job_id, " --prepare")));
    }
  }

  struct {
    std::string kind;
    std::string site_packages;
  } result;
  for (absl::string_view line :
       absl::StrSplit(ReadContainerFile(partial + "/job", "result", 0, 4096), '\n')) {
    if (absl::ConsumePrefix(&line, "kind=")) result.kind = std::string(line);
    if (absl::ConsumePrefix(&line, "site=")) result.site_packages = std::string(line);
  }
  fs::remove_all(partial + "/job", error);
  fs::remove_all(partial + "/bundle", error);
  fs::remove_all(partial + "/layer/tmp", error);
  const int64_t bytes = DiskUsage(partial + "/layer");
  Json meta = Json::object();
  meta["key"] = key;
  meta["image"] = request.image;
  meta["image_identity"] = request.image_identity;
  meta["pip_packages"] = Json(SortedUnique(request.pip_packages));
  meta["conda_packages"] = Json(SortedUnique(request.conda_packages));
  if (request.horovod) meta["horovod"] = kHorovodVersion;
  meta["pip_options"] = Json(PipOptions(request.pip));
  meta["kind"] = result.kind;
  meta["site_packages"] = result.site_packages;
  meta["bytes"] = bytes;
  meta["built"] = absl::FormatTime(absl::RFC3339_sec, options_.clock->Now(), absl::UTCTimeZone());
  if (absl::Status s = WriteText(partial + "/environment.json", DumpJson(meta, 2)); !s.ok()) {
    return fail(s);
  }
  Touch(partial + "/last-used");
  if (absl::Status s = SyncTree(partial); !s.ok()) return fail(s);
  if (rename(partial.c_str(), PathOf(key).c_str()) != 0) {
    return fail(absl::UnavailableError(absl::StrCat("cannot move the built environment to ",
                                                    PathOf(key), ": ", strerror(errno))));
  }
  double seconds = absl::ToDoubleSeconds(options_.clock->Now() - started);
  AppendLog(context.log_dir, kPrepareLog, absl::StrCat("drover: environment ", key, " built in ",
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
  const absl::Time deadline = options_.clock->Now() + options_.build_timeout;
  absl::Status ended = absl::OkStatus();
  absl::StatusOr<ContainerExit> exit = absl::DeadlineExceededError("not yet");
  while (true) {
    exit = runtime_.Wait(spec.id, 200);
    if (exit.ok() || !absl::IsDeadlineExceeded(exit.status())) break;
    if (context.stopped && context.stopped()) {
      ended = absl::CancelledError("the attempt was stopped while its environment was building");
    } else if (options_.clock->Now() > deadline) {
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

}  // namespace drover::agent
