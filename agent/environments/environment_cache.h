// EnvironmentCache: the node's cache of built job environments (`environment.pip_packages`,
// `environment.conda_packages`), the layer bound read-only at /drover into every job
// container that needs it. Owned by the Agent and shared by its attempts; each attempt's
// thread calls Get(), which blocks while the environment is built. Thread-safe: attempts
// needing the same environment at the same time wait for one build (the first one builds,
// the others wait and then use its result, or build themselves when it failed); different
// environments build in parallel.
//
// A build runs in a container of the job's own image through the ContainerRuntime, as jobs
// run (drover-init as PID 1, the node's network), with the layer folder bound read-write at
// /drover:
//   - pip only: `python3 -m venv --without-pip --system-site-packages /drover/env` with the
//     image's python3, then the venv's python runs the image's pip (`-m pip install -r`),
//     so packages the image already has are not installed again, and Debian's
//     "externally managed" python (PEP 668) is left alone;
//   - conda packages: `mamba|micromamba|conda create --yes --prefix /drover/env PKGS`, then
//     pip packages with that environment's python.
// pip sees only the cluster's settings (AssignAttempt.pip, droverd's --pip-* flags): the
// image's and the node's pip configuration files are ignored (PIP_CONFIG_FILE=/dev/null),
// so that the cache key says everything that shaped the result. Wheel folders named in
// `find_links` are bound read-only at their own path.
//
// The job's container then gets the layer at /drover (read-only), PATH starting with
// /drover/env/bin, and for a venv VIRTUAL_ENV and PYTHONPATH (its site-packages, so that
// `import pkg` also works from the image's own python3); for conda CONDA_PREFIX.
//
// On disk, under `root` (`<agent work dir>/environments`):
//   <key>/layer/            the layer (bound at /drover), never written after the build
//   <key>/environment.json  what was built: key inputs, kind, site-packages, size, when
//   <key>/last-used         its mtime is the last time an attempt took or released it
//   .build-<key>-N/         a build in progress (layer/, the build's job/ and bundle/);
//                           renamed to <key> only once complete and synced
//   .trash-<key>-N/         an evicted environment being deleted
// `.build-` and `.trash-` folders are removed by RemoveLeftovers(), so a <key> folder always
// holds a complete environment.
//
// Garbage collection: whenever a build or a use ends, and at start, environments are evicted
// least recently used first until their total size is within `budget_bytes`; an environment
// an attempt holds (a Lease) is never evicted.
#ifndef DROVER_AGENT_ENVIRONMENTS_ENVIRONMENT_CACHE_H_
#define DROVER_AGENT_ENVIRONMENTS_ENVIRONMENT_CACHE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/runtime/container_runtime.h"
#include "common/clock.h"
#include "drover/v1/agent.pb.h"

namespace drover::agent {

// Where the layer is in build and job containers, and the environment inside it.
inline constexpr char kEnvironmentMount[] = "/drover";
inline constexpr char kEnvironmentPrefix[] = "/drover/env";

// What to build: the job's packages for the job's image, with the cluster's pip settings.
struct EnvironmentRequest {
  // The job's `environment.image` as the user wrote it, for messages ("host", "team/img:1").
  std::string image;
  // What identifies the image's contents: the image cache's key for an OCI image, or
  // HostPythonIdentity() for "host". Part of the cache key.
  std::string image_identity;
  // The unpacked image's root and config Env; empty rootfs: the node's own OS (host).
  std::string image_rootfs;
  std::vector<std::string> image_env;
  std::vector<std::string> pip_packages;
  std::vector<std::string> conda_packages;
  // Horovod (`environment.horovod`), built last against the environment's torch and the
  // image's Open MPI: version kHorovodVersion from the cluster's pip index.
  bool horovod = false;
  v1::PipSettings pip;
};

// The Horovod release an environment gets, from source (pip's `--no-binary horovod`).
inline constexpr char kHorovodVersion[] = "0.28.1";

// Whether a job's environment needs building (it lists pip or conda packages, or Horovod).
bool NeedsEnvironment(const v1::Environment& environment);

// The cache key of `request`: 32 hex digits of a SHA-256 over the image identity, the
// sorted, de-duplicated package lists, the Horovod version when asked for, and the pip
// settings (in their order, which matters to pip). The image's name is not part of it: two names of one image share environments.
std::string EnvironmentKey(const EnvironmentRequest& request);

// The packages of `request` in words, for messages and the preparation log: "conda: a b;
// pip: c d; horovod 0.28.1", each list sorted with repeats dropped, a part left out when
// empty.
std::string DescribePackages(const EnvironmentRequest& request);

// What identifies the node's own python for "host" jobs: the first of /usr/local/bin/python3
// and /usr/bin/python3 with its resolved path, size and mtime, the mtimes of its
// dist-packages folders (a package installed with apt changes them) and /etc/os-release.
std::string HostPythonIdentity();

// The shell script the build container runs (`/bin/sh /job/build.sh`), with the requirements
// in /job/requirements.txt (one package a line) and its result written to /job/result
// (`kind=venv|conda` and `site=<site-packages>` lines). Exit codes of its own: 90 no
// conda/mamba for conda packages, 91 no python3, 92 python3 without pip, 93 python3 without
// venv, 94 conda packages without python while pip packages are asked for, 95 the image
// cannot build Horovod (what it lacks in /job/missing, one item a line); anything else is
// the failing tool's. Pure; exposed for tests.
std::string EnvironmentBuildScript(const EnvironmentRequest& request);

// The pip options that `settings` stand for, in order (`--index-url URL`, ...).
std::vector<std::string> PipOptions(const v1::PipSettings& settings);

// The lines of a failed build's output worth putting in the job's status message: pip's
// and conda's `ERROR:`/`...Error:` lines (the last three), else the last three non-empty
// lines, joined with "; ", at most about 1000 characters.
std::string BuildFailureSummary(absl::string_view output);

// One cached environment as garbage collection sees it.
struct CachedEnvironmentInfo {
  std::string key;
  int64_t bytes = 0;
  absl::Time last_used;
  bool in_use = false;
};

// The environments to evict so that the rest fit in `budget_bytes`: least recently used
// first, never one in use (those still count toward the total). Pure; exposed for tests.
std::vector<std::string> ChooseEvictions(std::vector<CachedEnvironmentInfo> entries,
                                         int64_t budget_bytes);

struct EnvironmentCacheOptions {
  // The cache folder, `<agent work dir>/environments`; created when missing.
  std::string root;
  // Disk budget of all cached environments together (garbage collection keeps them within).
  int64_t budget_bytes = int64_t{20} << 30;
  // How long one build may take before it is killed and fails.
  absl::Duration build_timeout = absl::Minutes(60);
  // The agent's clock (not owned): the build's timeout and the times in its log and record.
  const Clock* clock = &RealClock::Get();
};

class EnvironmentCache {
 public:
  // What an attempt holds while its container may use an environment: the environment is
  // not evicted before every lease on it is gone. Destroying it releases it.
  class Lease;

  // An environment ready for a job container.
  struct Prepared {
    std::string key;
    std::string layer_dir;  // on the node: bound read-only at kEnvironmentMount
    std::string kind;       // "venv" or "conda"
    std::string site_packages;  // in the container; empty when unknown (conda without python)
    std::shared_ptr<Lease> lease;
  };

  // Per call: where the build's output goes and how the attempt follows it.
  struct BuildContext {
    // For messages ("see drover logs JOB --prepare") and the build container's hostname.
    std::string job_id;
    std::string node_name;
    // A folder of the attempt's (empty, on the node): the cache writes the preparation log
    // to LogPath(log_dir), its own lines and the build's output, as they come.
    std::string log_dir;
    // Called before the attempt blocks on a build (its own, or another attempt's).
    std::function<void()> building;
    // Asked while building or waiting: true ends the build (CANCELLED).
    std::function<bool()> stopped;
  };

  // The preparation log's file in `log_dir`.
  static std::string LogPath(absl::string_view log_dir);

  EnvironmentCache(EnvironmentCacheOptions options, ContainerRuntime& runtime);
  ~EnvironmentCache();

  // Removes `.build-` and `.trash-` folders of an earlier agent process (their containers
  // must have been deleted first: a folder with a mount under it is left alone), then
  // collects garbage.
  void RemoveLeftovers();

  // The environment for `request`, built when it is not cached. Errors, each naming the
  // image and saying what to do:
  //   FAILED_PRECONDITION  the image has no python3, pip or venv, or no conda/mamba for
  //                        conda packages; a find-links folder is missing on the node; pip or
  //                        conda failed (their error lines in the message);
  //   DEADLINE_EXCEEDED    the build ran past `build_timeout`;
  //   CANCELLED            `context.stopped()` said so;
  //   UNAVAILABLE, ...     the build container could not be run, the disk failed.
  absl::StatusOr<Prepared> Get(const EnvironmentRequest& request, const BuildContext& context);

  // Evicts least recently used environments beyond the budget (see ChooseEvictions).
  void CollectGarbage();

  // Adds the environment to a job container: the layer at kEnvironmentMount (read-only),
  // PATH (and PYTHONPATH for a venv) prefixed, VIRTUAL_ENV or CONDA_PREFIX set. `spec.env`
  // must already hold the job's PATH.
  static void AddTo(const Prepared& environment, ContainerSpec* spec);

 private:
  // With `mu_` held: the complete environment `key`, or NOT_FOUND.
  absl::StatusOr<Prepared> CachedLocked(const std::string& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Builds `key` into a `.build-` folder and moves it into place.
  absl::Status Build(const std::string& key, const EnvironmentRequest& request,
                     const BuildContext& context);
  // Runs the build container until it ends; its exit code.
  absl::StatusOr<int> RunBuildContainer(const ContainerSpec& spec, const BuildContext& context);
  void Release(const std::string& key);
  std::string PathOf(absl::string_view key) const;

  const EnvironmentCacheOptions options_;
  ContainerRuntime& runtime_;
  // Unique per machine (several agents may share one): from the cache folder's path.
  const std::string container_suffix_;

  absl::Mutex mu_;
  std::set<std::string> building_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> in_use_ ABSL_GUARDED_BY(mu_);
  uint64_t next_folder_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace drover::agent

#endif  // DROVER_AGENT_ENVIRONMENTS_ENVIRONMENT_CACHE_H_
