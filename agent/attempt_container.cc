// Attempt, its container: what a job container of the attempt is (BuildContainer: the
// environment contract, mounts, limits, drover-init's command) and its /etc/hosts. MPI's
// own files and relay are in attempt_mpi.cc. See attempt.h and docs/containers.md.
#include "agent/attempt.h"

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/launcher/init_command.h"
#include "common/json.h"
#include "common/status_macros.h"

namespace drover::agent {
namespace {

// Where the `drover` Python module is in every container (on PYTHONPATH).
constexpr const char* kPythonModuleDir = "/opt/drover/python";

}  // namespace

ContainerSpec Attempt::BuildContainer() const {
  const v1::AssignAttempt& a = assignment_;
  const v1::JobSpec& spec = a.spec();
  ContainerSpec c;
  c.id = container_;
  c.bundle_dir = dir_ + "/bundle";
  c.job_dir = dir_ + "/job";
  c.cwd = spec.source_snapshot().empty() ? "/job" : "/job/code";
  c.image_rootfs = image_.rootfs;
  c.hostname = env_.node_name;
  c.cpus = spec.resources().cpus();
  c.memory_mib = spec.resources().memory_mib();
  c.shm_mib = spec.resources().shm_mib() > 0 ? spec.resources().shm_mib() : 64;
  c.pids_limit = env_.pids_limit;

  int ppn = spec.process_count_per_node();
  // One entry per name; a later setting replaces an earlier one in place.
  auto add = [&c](absl::string_view name, absl::string_view value) {
    std::string entry = absl::StrCat(name, "=", value);
    for (std::string& e : c.env) {
      if (absl::StartsWith(e, absl::StrCat(name, "="))) {
        e = std::move(entry);
        return;
      }
    }
    c.env.push_back(std::move(entry));
  };
  auto has = [&c](absl::string_view name) {
    for (const std::string& e : c.env) {
      if (absl::StartsWith(e, absl::StrCat(name, "="))) return true;
    }
    return false;
  };
  auto get = [&c](absl::string_view name) {
    for (const std::string& e : c.env) {
      if (absl::StartsWith(e, absl::StrCat(name, "="))) return e.substr(name.size() + 1);
    }
    return std::string();
  };
  // The image's own variables (its PATH may lead to its python3), then the job's, the
  // defaults where neither set one, and the contract over everything.
  for (const std::string& entry : image_.env) {
    size_t eq = entry.find('=');
    add(absl::string_view(entry).substr(0, eq), absl::string_view(entry).substr(eq + 1));
  }
  for (const auto& [name, value] : spec.environment().env()) add(name, value);
  if (!has("PATH")) add("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  if (!has("HOME")) add("HOME", "/root");
  if (environment_.lease != nullptr) EnvironmentCache::AddTo(environment_, &c);
  add("PYTHONUNBUFFERED", "1");
  add("DROVER_JOB_ID", a.attempt().job_id());
  // The job's experiment and tags, as `Run.get_context()` reads them (run.experiment.name,
  // run.get_tags()): the tags a JSON object, sorted by key.
  add("DROVER_EXPERIMENT", spec.experiment());
  Json tags = Json::object();
  for (const auto& [key, value] : spec.tags()) tags[key] = value;
  add("DROVER_TAGS", DumpJson(tags));
  add("DROVER_ATTEMPT", absl::StrCat(a.attempt().epoch()));
  // A task of a job array: which array and index (as Slurm's SLURM_ARRAY_JOB_ID and
  // SLURM_ARRAY_TASK_ID), and how many tasks the array has.
  if (spec.has_array_task()) {
    add("DROVER_ARRAY_ID", spec.array_task().array_id());
    add("DROVER_ARRAY_INDEX", absl::StrCat(spec.array_task().index()));
    add("DROVER_ARRAY_SIZE", absl::StrCat(spec.array_task().size()));
  }
  add("DROVER_WORLD_SIZE", absl::StrCat(a.world_size()));
  add("DROVER_NODE_RANK", absl::StrCat(a.node_rank()));
  add("DROVER_NODE_COUNT", absl::StrCat(a.node_count()));
  add("DROVER_OUTPUT_DIR", "/job/outputs");
  add("WORLD_SIZE", absl::StrCat(a.world_size()));
  add("NODE_RANK", absl::StrCat(a.node_rank()));
  add("LOCAL_WORLD_SIZE", absl::StrCat(ppn));
  // torch.distributed's rendezvous, also under MPI (a torch script run by mpirun finds them
  // as under the pytorch backend).
  if (spec.distributed_backend() != v1::JobSpec::NONE) {
    add("MASTER_ADDR", a.node_addresses_size() > 0 && !a.node_addresses(0).empty()
                           ? a.node_addresses(0)
                           : "127.0.0.1");
    add("MASTER_PORT", absl::StrCat(a.master_port() > 0 ? a.master_port()
                                                        : 29500 + a.attempt().epoch() % 1000));
  }
  // Every node of the attempt by name and address (hostname lookups, as gloo makes).
  c.mounts.push_back({.source = dir_ + "/hosts", .destination = "/etc/hosts", .read_only = true});

  InitCommand init;
  init.first_rank = a.first_rank();
  init.count = ppn;
  init.log_dir = "/job/logs";
  const std::string& script = spec.entry_script();
  const bool in_image = spec.source_snapshot().empty();
  std::string path = in_image ? "/" + script : script;
  if (absl::EndsWith(script, ".py")) {
    init.program = {"python3", path};
  } else if (absl::EndsWith(script, ".sh")) {
    init.program = {"/bin/sh", path};
  } else if (in_image && !absl::StrContains(script, "/")) {
    // A command's bare name (`drover submit --image host true`), found through the image's
    // PATH as a shell would; `bin/true` still names /bin/true.
    init.program = {script};
  } else {
    init.program = {absl::StrContains(path, "/") ? path : "./" + path};
  }
  init.program.insert(init.program.end(), data_.arguments.begin(), data_.arguments.end());
  c.mounts.insert(c.mounts.end(), data_.mounts.begin(), data_.mounts.end());
  for (const std::string& entry : data_.env) {
    size_t eq = entry.find('=');
    add(entry.substr(0, eq), entry.substr(eq + 1));
  }
  // The `drover` module for run.log(...), after the image's and the job's own modules, and
  // where it writes this node's metrics files (shipped like the logs).
  add("DROVER_METRICS_DIR", "/job/logs");
  if (!env_.python_dir.empty()) {
    c.mounts.push_back(
        {.source = env_.python_dir, .destination = kPythonModuleDir, .read_only = true});
    std::string pythonpath = get("PYTHONPATH");
    add("PYTHONPATH", pythonpath.empty() ? kPythonModuleDir
                                         : absl::StrCat(pythonpath, ":", kPythonModuleDir));
  }
  if (spec.distributed_backend() == v1::JobSpec::MPI) {
    add("OMPI_ALLOW_RUN_AS_ROOT", "1");
    add("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    c.mounts.push_back({.source = dir_ + "/relay", .destination = "/run/drover-mpi/relay",
                        .read_only = false, .owned_by_container = true});
    // Open MPI's shared-memory transport copies between ranks with process_vm_readv (CMA)
    // when it can; the container's seccomp filter refuses it (like ptrace): copy through
    // the shared segment instead, unless the job chose otherwise.
    if (!has("OMPI_MCA_btl_vader_single_copy_mechanism")) {
      add("OMPI_MCA_btl_vader_single_copy_mechanism", "none");
    }
    c.mounts.push_back({.source = env_.rsh_binary, .destination = kRshPath, .read_only = true});
    if (a.node_rank() == 0) {
      // PID 1 runs mpirun, which runs every rank (here directly, elsewhere through
      // drover-rsh and that node's agent), each wrapped by drover-init for its files.
      init.program = MpiCommand(init);
      init.launcher = "mpirun";
      init.count = 1;
    } else {
      init.count = 0;  // the ranks come through `runc exec`
      init.program.clear();
    }
  }
  // Last, so that the image's or job's own GPU variables give way to what it holds.
  AddGpusToContainer(env_.gpus != nullptr ? env_.gpus->inventory() : GpuInventory(), gpus_,
                     /*host_image=*/image_.rootfs.empty(), &c);
  c.args = init.ToArgs();
  return c;
}

absl::Status Attempt::WriteNodeFiles() {
  const v1::AssignAttempt& a = assignment_;
  // /etc/hosts of the container: the usual local names, then every node of the attempt.
  std::string hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";
  for (int k = 0; k < a.node_addresses_size(); ++k) {
    if (a.node_addresses(k).empty()) continue;
    std::string name = k < a.node_names_size() ? a.node_names(k) : "";
    absl::StrAppend(&hosts, a.node_addresses(k), "\t", name.empty() ? "" : name, "\n");
  }
  if (a.node_addresses_size() == 0) absl::StrAppend(&hosts, "127.0.1.1\t", env_.node_name, "\n");
  DROVER_RETURN_IF_ERROR(WriteTextFile(dir_ + "/hosts", hosts));
  if (a.spec().distributed_backend() != v1::JobSpec::MPI) return absl::OkStatus();
  return WriteMpiFiles();
}

absl::Status Attempt::WriteTextFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  if (!out.flush()) return absl::UnavailableError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

}  // namespace drover::agent
