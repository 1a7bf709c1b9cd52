#include "agent/gpus.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "agent/runtime/process.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace drover::agent {
namespace {

namespace fs = std::filesystem;

// The control nodes of NVIDIA's driver that a CUDA program opens besides its GPUs'.
constexpr const char* kControlDevices[] = {"nvidiactl", "nvidia-uvm", "nvidia-uvm-tools",
                                           "nvidia-modeset"};

// The driver's compute and utility libraries (by name before ".so"), as NVIDIA's container
// toolkit mounts them for `compute,utility`.
constexpr const char* kDriverLibraries[] = {"libcuda",
                                            "libcudadebugger",
                                            "libnvidia-ml",
                                            "libnvidia-cfg",
                                            "libnvidia-opencl",
                                            "libnvidia-gpucomp",
                                            "libnvidia-ptxjitcompiler",
                                            "libnvidia-fatbinaryloader",
                                            "libnvidia-allocator",
                                            "libnvidia-compiler",
                                            "libnvidia-nvvm",
                                            "libnvidia-pkcs11",
                                            "libnvidia-pkcs11-openssl3"};

constexpr const char* kDriverPrograms[] = {"nvidia-smi", "nvidia-debugdump", "nvidia-persistenced",
                                           "nvidia-cuda-mps-control", "nvidia-cuda-mps-server"};

// How `ldconfig -p` marks libraries of this machine's own architecture.
#if defined(__x86_64__)
constexpr char kLdconfigArch[] = "x86-64";
#elif defined(__aarch64__)
constexpr char kLdconfigArch[] = "AArch64";
#else
constexpr char kLdconfigArch[] = "";
#endif

bool IsCharDevice(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISCHR(st.st_mode);
}

// `name` itself when it has a '/', else the first executable `name` in PATH; empty when none.
std::string FindProgram(const std::string& name) {
  if (absl::StrContains(name, '/')) return access(name.c_str(), X_OK) == 0 ? name : "";
  const char* path = std::getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path != nullptr ? path : "/usr/bin:/bin", ':')) {
    if (dir.empty()) continue;
    std::string candidate = absl::StrCat(dir, "/", name);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

std::string ReadSmallFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// "00000000:3B:00.0" (nvidia-smi) as the driver's /proc folder names it: "0000:3b:00.0".
std::string ProcBusId(absl::string_view bus_id) {
  std::string lower = absl::AsciiStrToLower(bus_id);
  size_t colon = lower.find(':');
  if (colon == 8) lower = lower.substr(4);
  return lower;
}

void SetEnv(std::vector<std::string>& env, absl::string_view name, absl::string_view value) {
  std::string entry = absl::StrCat(name, "=", value);
  for (std::string& e : env) {
    if (absl::StartsWith(e, absl::StrCat(name, "="))) {
      e = std::move(entry);
      return;
    }
  }
  env.push_back(std::move(entry));
}

// Adds `dir` to the end of the ':'-separated list variable `name` unless it is in it.
void AppendToList(std::vector<std::string>& env, absl::string_view name, absl::string_view dir) {
  std::string prefix = absl::StrCat(name, "=");
  for (std::string& e : env) {
    if (!absl::StartsWith(e, prefix)) continue;
    std::vector<absl::string_view> parts =
        absl::StrSplit(absl::string_view(e).substr(prefix.size()), ':');
    if (std::find(parts.begin(), parts.end(), dir) != parts.end()) return;
    absl::StrAppend(&e, e.size() > prefix.size() ? ":" : "", dir);
    return;
  }
  env.push_back(absl::StrCat(prefix, dir));
}

absl::Status BadInventory(absl::string_view flag, absl::string_view value, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(flag, " '", value, "': ", why));
}

// The --gpu inventory, checked against the node.
absl::StatusOr<std::vector<NodeGpu>> InventoryFromFlags(const std::vector<std::string>& values) {
  std::vector<NodeGpu> gpus;
  // What each value names, to the value that named it first.
  std::map<std::string, std::string> indices, uuids, devices, paths;
  for (const std::string& value : values) {
    absl::StatusOr<NodeGpu> gpu = ParseGpuFlag(value);
    if (!gpu.ok()) return BadInventory("--gpu", value, gpu.status().message());
    auto taken = [&](std::map<std::string, std::string>& seen, const std::string& key,
                     absl::string_view what) -> absl::Status {
      auto [it, inserted] = seen.emplace(key, value);
      if (inserted) return absl::OkStatus();
      return BadInventory("--gpu", value,
                          absl::StrCat(what, " '", key, "' is also in --gpu '", it->second,
                                       "'; each GPU needs its own"));
    };
    if (absl::Status s = taken(indices, absl::StrCat(gpu->gpu.index()), "index"); !s.ok()) {
      return s;
    }
    if (absl::Status s = taken(uuids, gpu->gpu.uuid(), "UUID"); !s.ok()) return s;
    if (absl::Status s = taken(devices, gpu->device, "device"); !s.ok()) return s;
    if (absl::Status s = taken(paths, gpu->ContainerPath(), "container device path"); !s.ok()) {
      return s;
    }
    if (!IsCharDevice(gpu->device)) {
      return BadInventory("--gpu", value,
                          absl::StrCat(gpu->device,
                                       " is not a character device; name the GPU's device "
                                       "node (for example /dev/nvidia0)"));
    }
    gpus.push_back(*std::move(gpu));
  }
  return gpus;
}

// What nvidia-smi lists, with each GPU's device node.
absl::StatusOr<std::vector<NodeGpu>> InventoryFromNvidiaSmi(const std::string& nvidia_smi,
                                                            const GpuDiscoveryOptions& options) {
  absl::StatusOr<ProcessResult> ran = RunProcess(
      {nvidia_smi, absl::StrCat("--query-gpu=", kNvidiaSmiQuery), "--format=csv,noheader,nounits"},
      absl::Seconds(60));
  if (!ran.ok() || !ran->ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        nvidia_smi, " failed (", ran.ok() ? ran->Said() : std::string(ran.status().message()),
        "); fix the NVIDIA driver, or start drover-agent with --gpus 0 to offer no GPUs"));
  }
  absl::StatusOr<std::vector<SmiGpu>> listed = ParseNvidiaSmiCsv(ran->out);
  if (!listed.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        nvidia_smi, " printed what drover-agent cannot read: ", listed.status().message()));
  }
  std::vector<NodeGpu> gpus;
  for (const SmiGpu& found : *listed) {
    NodeGpu gpu;
    gpu.gpu = found.gpu;
    // The device node is /dev/nvidia<minor>; the minor is not the index in general.
    int minor = found.gpu.index();
    std::string information = ReadSmallFile(
        absl::StrCat(options.proc_driver, "/gpus/", ProcBusId(found.pci_bus_id), "/information"));
    if (absl::StatusOr<int> m = ParseDeviceMinor(information); m.ok()) minor = *m;
    gpu.device = absl::StrCat(options.dev_dir, "/nvidia", minor);
    if (!IsCharDevice(gpu.device)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "GPU ", found.gpu.index(), " (", found.gpu.uuid(), "): its device node ", gpu.device,
          " is missing; load the NVIDIA driver's device nodes (nvidia-modprobe), or name the "
          "GPUs with --gpu"));
    }
    gpus.push_back(std::move(gpu));
  }
  return gpus;
}

// The driver's libraries and programs, for image containers.
std::vector<BindMount> DriverFiles(const GpuDiscoveryOptions& options) {
  std::vector<BindMount> files;
  absl::StatusOr<ProcessResult> ran = RunProcess({options.ldconfig, "-p"}, absl::Seconds(30));
  if (ran.ok() && ran->ok()) {
    files = DriverLibraries(ran->out, [](const std::string& path) {
      std::error_code error;
      fs::path real = fs::canonical(path, error);
      return error ? path : real.string();
    });
  } else {
    Log(LogLevel::kWarning, "gpu_driver_libraries_unknown",
        {{"ldconfig", options.ldconfig},
         {"error", ran.ok() ? ran->Said() : std::string(ran.status().message())}});
  }
  for (const char* program : kDriverPrograms) {
    std::string path = FindProgram(program);
    if (path.empty()) continue;
    files.push_back({.source = path,
                     .destination = absl::StrCat(kNvidiaBinDir, "/", program),
                     .read_only = true});
  }
  return files;
}

}  // namespace

std::string NodeGpu::ContainerPath() const {
  if (absl::StartsWith(device, "/dev/")) return device;
  return absl::StrCat("/dev/", fs::path(device).filename().string());
}

absl::StatusOr<std::vector<SmiGpu>> ParseNvidiaSmiCsv(absl::string_view output) {
  std::vector<SmiGpu> gpus;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    std::vector<std::string> fields;
    for (absl::string_view field : absl::StrSplit(line, ',')) {
      fields.emplace_back(absl::StripAsciiWhitespace(field));
    }
    auto bad = [&](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat("line ", line_number, " '", line, "': ", why));
    };
    if (fields.size() < 5) {
      return bad(absl::StrCat("expected 5 fields (", kNvidiaSmiQuery, "), got ", fields.size()));
    }
    // A product name may hold commas: the fields around it are fixed.
    std::string name = absl::StrJoin(fields.begin() + 2, fields.end() - 2, ", ");
    const std::string& memory = fields[fields.size() - 2];
    SmiGpu gpu;
    int index = 0;
    if (!absl::SimpleAtoi(fields[0], &index) || index < 0) {
      return bad(absl::StrCat("index '", fields[0], "' is not a number"));
    }
    if (fields[1].empty()) return bad("the UUID is empty");
    int64_t memory_mib = 0;
    absl::string_view number = absl::StripSuffix(memory, " MiB");
    if (!absl::SimpleAtoi(number, &memory_mib)) {
      // "[N/A]" and the like: unknown.
      if (!absl::StartsWith(memory, "[")) {
        return bad(absl::StrCat("memory.total '", memory, "' is not a number of MiB"));
      }
      memory_mib = 0;
    }
    gpu.gpu.set_index(index);
    gpu.gpu.set_uuid(fields[1]);
    gpu.gpu.set_name(name);
    gpu.gpu.set_memory_mib(memory_mib);
    gpu.pci_bus_id = fields.back();
    gpus.push_back(std::move(gpu));
  }
  return gpus;
}

absl::StatusOr<int> ParseDeviceMinor(absl::string_view information) {
  for (absl::string_view line : absl::StrSplit(information, '\n')) {
    if (!absl::ConsumePrefix(&line, "Device Minor:")) continue;
    int minor = 0;
    if (absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &minor) && minor >= 0) return minor;
  }
  return absl::NotFoundError("no 'Device Minor:' line");
}

absl::StatusOr<NodeGpu> ParseGpuFlag(absl::string_view value) {
  std::vector<std::string> parts = absl::StrSplit(value, absl::MaxSplits(':', 3));
  if (parts.size() < 3) {
    return absl::InvalidArgumentError(
        "expected INDEX:UUID:DEVICE[:NAME], for example 0:GPU-8f6c1a7e:/dev/nvidia0");
  }
  NodeGpu gpu;
  int index = 0;
  if (!absl::SimpleAtoi(parts[0], &index) || index < 0 || index > 1023) {
    return absl::InvalidArgumentError(
        absl::StrCat("INDEX '", parts[0], "' must be a number from 0 to 1023"));
  }
  const std::string& uuid = parts[1];
  bool uuid_ok = !uuid.empty() && uuid.size() <= 128;
  for (char c : uuid)
    uuid_ok = uuid_ok && (absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.');
  if (!uuid_ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("UUID '", uuid,
                     "' must be 1 to 128 characters of [A-Za-z0-9_.-] (nvidia-smi -L shows it)"));
  }
  const std::string& device = parts[2];
  bool clean = absl::StartsWith(device, "/") && !absl::EndsWith(device, "/");
  for (absl::string_view part : absl::StrSplit(device, '/'))
    clean = clean && part != "." && part != "..";
  if (!clean) {
    return absl::InvalidArgumentError(
        absl::StrCat("DEVICE '", device, "' must be an absolute path, for example /dev/nvidia0"));
  }
  gpu.gpu.set_index(index);
  gpu.gpu.set_uuid(uuid);
  if (parts.size() > 3) gpu.gpu.set_name(parts[3]);
  gpu.device = device;
  return gpu;
}

std::vector<BindMount> DriverLibraries(
    absl::string_view ldconfig_output,
    const std::function<std::string(const std::string&)>& resolve) {
  const std::set<absl::string_view> wanted(std::begin(kDriverLibraries),
                                           std::end(kDriverLibraries));
  std::vector<BindMount> files;
  std::set<std::string> names;
  // "\tlibcuda.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so.1"
  for (absl::string_view line : absl::StrSplit(ldconfig_output, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    size_t open = line.find(" (");
    size_t arrow = line.find(") => ");
    if (open == absl::string_view::npos || arrow == absl::string_view::npos || arrow < open) {
      continue;
    }
    std::string name(line.substr(0, open));
    absl::string_view flags = line.substr(open + 2, arrow - open - 2);
    std::string path(line.substr(arrow + 5));
    if (!wanted.contains(absl::string_view(name).substr(0, name.find(".so")))) continue;
    if (*kLdconfigArch != '\0' && !absl::StrContains(flags, kLdconfigArch)) continue;
    if (!names.insert(name).second) continue;  // the first entry wins, as for the loader
    files.push_back({.source = resolve(path),
                     .destination = absl::StrCat(kNvidiaLibDir, "/", name),
                     .read_only = true});
  }
  return files;
}

absl::StatusOr<GpuInventory> DiscoverGpus(const GpuDiscoveryOptions& options) {
  GpuInventory inventory;
  if (options.count < -1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--gpus ", options.count, ": use 0 (no GPUs) or more"));
  }
  if (options.count == 0) {
    if (!options.inventory.empty()) {
      return absl::InvalidArgumentError("--gpus 0 offers no GPUs, yet --gpu names some; drop one");
    }
    return inventory;
  }
  bool has_driver = fs::exists(options.proc_driver + "/version");
  std::string source;
  if (!options.inventory.empty()) {
    DROVER_ASSIGN_OR_RETURN(inventory.gpus, InventoryFromFlags(options.inventory));
    source = "--gpu";
  } else if (std::string nvidia_smi = FindProgram(options.nvidia_smi); !nvidia_smi.empty()) {
    DROVER_ASSIGN_OR_RETURN(inventory.gpus, InventoryFromNvidiaSmi(nvidia_smi, options));
    has_driver = true;
    source = nvidia_smi;
  }
  std::sort(inventory.gpus.begin(), inventory.gpus.end(),
            [](const NodeGpu& a, const NodeGpu& b) { return a.gpu.index() < b.gpu.index(); });
  if (options.count > 0) {
    if (options.count > static_cast<int64_t>(inventory.gpus.size())) {
      return absl::InvalidArgumentError(
          absl::StrCat("--gpus ", options.count, ": this node has ", inventory.gpus.size(), " GPUs",
                       source.empty() ? " (no nvidia-smi in PATH and no --gpu)"
                                      : absl::StrCat(" (from ", source, ")"),
                       "; offer at most that many"));
    }
    inventory.gpus.resize(static_cast<size_t>(options.count));
  }
  if (inventory.gpus.empty()) return inventory;
  for (const char* name : kControlDevices) {
    std::string path = absl::StrCat(options.dev_dir, "/", name);
    if (IsCharDevice(path)) inventory.control_devices.push_back(path);
  }
  if (has_driver) inventory.driver_files = DriverFiles(options);
  inventory.nvidia_smi = FindProgram(options.nvidia_smi);
  return inventory;
}

std::string DescribeGpus(const std::vector<NodeGpu>& gpus) {
  std::vector<std::string> parts;
  for (const NodeGpu& gpu : gpus) {
    parts.push_back(
        absl::StrCat(gpu.gpu.index(), " ", gpu.gpu.uuid(),
                     gpu.gpu.name().empty() ? "" : absl::StrCat(" (", gpu.gpu.name(), ")")));
  }
  return parts.empty() ? "none" : absl::StrJoin(parts, ", ");
}

void AddGpusToContainer(const GpuInventory& node, const std::vector<NodeGpu>& held, bool host_image,
                        ContainerSpec* spec) {
  std::vector<std::string> uuids, ordinals, indices;
  for (const NodeGpu& gpu : held) {
    spec->devices.push_back({.path = gpu.ContainerPath(), .source = gpu.device});
    uuids.push_back(gpu.gpu.uuid());
    ordinals.push_back(absl::StrCat(ordinals.size()));
    indices.push_back(absl::StrCat(gpu.gpu.index()));
  }
  SetEnv(spec->env, "NVIDIA_VISIBLE_DEVICES", held.empty() ? "void" : absl::StrJoin(uuids, ","));
  SetEnv(spec->env, "CUDA_VISIBLE_DEVICES", absl::StrJoin(ordinals, ","));
  SetEnv(spec->env, "DROVER_GPUS", absl::StrJoin(indices, ","));
  if (held.empty()) return;
  SetEnv(spec->env, "CUDA_DEVICE_ORDER", "PCI_BUS_ID");
  for (const std::string& control : node.control_devices)
    spec->devices.push_back({.path = control});
  if (host_image || node.driver_files.empty()) return;
  spec->mounts.insert(spec->mounts.end(), node.driver_files.begin(), node.driver_files.end());
  AppendToList(spec->env, "LD_LIBRARY_PATH", kNvidiaLibDir);
  AppendToList(spec->env, "PATH", kNvidiaBinDir);
}

GpuAllocator::GpuAllocator(GpuInventory inventory)
    : inventory_(std::move(inventory)), holders_(inventory_.gpus.size()) {}

absl::StatusOr<std::vector<NodeGpu>> GpuAllocator::Allocate(const std::string& owner, int count) {
  absl::MutexLock lock(&mu_);
  if (std::find(holders_.begin(), holders_.end(), owner) != holders_.end()) {
    return absl::FailedPreconditionError(absl::StrCat(owner, " already holds GPUs"));
  }
  std::vector<size_t> free;
  std::map<std::string, std::vector<std::string>> held;  // holder -> indices
  for (size_t i = 0; i < holders_.size(); ++i) {
    if (holders_[i].empty()) {
      free.push_back(i);
    } else {
      held[holders_[i]].push_back(absl::StrCat(inventory_.gpus[i].gpu.index()));
    }
  }
  if (static_cast<int>(free.size()) < count) {
    std::vector<std::string> holders;
    for (const auto& [holder, indices] : held) {
      holders.push_back(absl::StrCat(holder, " holds ", absl::StrJoin(indices, ",")));
    }
    return absl::ResourceExhaustedError(absl::StrCat(
        "needs ", count, " GPUs but ", free.size(), " of the node's ", holders_.size(), " are free",
        holders.empty() ? "" : absl::StrCat(" (", absl::StrJoin(holders, "; "), ")")));
  }
  std::vector<NodeGpu> given;
  for (int k = 0; k < count; ++k) {
    holders_[free[k]] = owner;
    given.push_back(inventory_.gpus[free[k]]);
  }
  return given;
}

absl::StatusOr<std::vector<NodeGpu>> GpuAllocator::Adopt(const std::string& owner,
                                                         const std::vector<std::string>& uuids) {
  absl::MutexLock lock(&mu_);
  std::vector<size_t> positions;
  for (const std::string& uuid : uuids) {
    size_t i = 0;
    while (i < inventory_.gpus.size() && inventory_.gpus[i].gpu.uuid() != uuid) ++i;
    if (i == inventory_.gpus.size()) {
      return absl::FailedPreconditionError(absl::StrCat("GPU ", uuid, " is no longer offered"));
    }
    if (!holders_[i].empty() && holders_[i] != owner) {
      return absl::FailedPreconditionError(
          absl::StrCat("GPU ", uuid, " is held by ", holders_[i]));
    }
    positions.push_back(i);
  }
  std::vector<NodeGpu> given;
  for (size_t i : positions) {
    holders_[i] = owner;
    given.push_back(inventory_.gpus[i]);
  }
  return given;
}

void GpuAllocator::Release(const std::string& owner) {
  absl::MutexLock lock(&mu_);
  for (std::string& holder : holders_) {
    if (holder == owner) holder.clear();
  }
}

int GpuAllocator::free_count() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(std::count(holders_.begin(), holders_.end(), std::string()));
}

}  // namespace drover::agent
