// The node's GPUs for drover-agent: discovery (NVIDIA's nvidia-smi, or the inventory an
// operator gives with --gpu), what a job container needs to use the GPUs it holds (device
// nodes, driver files, variables), and GpuAllocator, which gives each attempt GPUs of its
// own. docs/gpus.md describes it for operators and users.
//
// DiscoverGpus runs once, from main(), before the agent connects. GpuAllocator is shared by
// the attempts (each on its own thread) and is thread-safe; the rest are pure functions.
#ifndef DROVER_AGENT_GPUS_H_
#define DROVER_AGENT_GPUS_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "agent/runtime/container_runtime.h"
#include "drover/v1/gpu.pb.h"

namespace drover::agent {

// One GPU of the node.
struct NodeGpu {
  v1::Gpu gpu;
  // Its device node on the node, for example "/dev/nvidia3" (nvidia-smi: /dev/nvidia<minor>).
  std::string device;
  // Where containers see it: the same path when it is under /dev/, else /dev/<file name>.
  std::string ContainerPath() const;
};

// What the node has for GPU jobs.
struct GpuInventory {
  // By index.
  std::vector<NodeGpu> gpus;
  // NVIDIA's control nodes that exist on the node (/dev/nvidiactl, /dev/nvidia-uvm,
  // /dev/nvidia-uvm-tools, /dev/nvidia-modeset): every GPU job gets them.
  std::vector<std::string> control_devices;
  // The NVIDIA driver's user-space libraries and programs, bound read-only into containers
  // of images (not "host": the host's /usr is already there) under kNvidiaLibDir and
  // kNvidiaBinDir. Empty without a driver.
  std::vector<BindMount> driver_files;
  // The nvidia-smi that samples the GPUs' use (GpuSampler); empty: none, no GPU samples.
  std::string nvidia_smi;
};

// Where the driver's files appear in image containers (NVIDIA's own convention: CUDA images
// already have these folders in LD_LIBRARY_PATH and PATH).
inline constexpr char kNvidiaLibDir[] = "/usr/local/nvidia/lib64";
inline constexpr char kNvidiaBinDir[] = "/usr/local/nvidia/bin";

// What nvidia-smi says of one GPU.
struct SmiGpu {
  v1::Gpu gpu;
  std::string pci_bus_id;  // "00000000:3B:00.0"
};

// The fields DiscoverGpus asks nvidia-smi for, in this order:
// `nvidia-smi --query-gpu=<kNvidiaSmiQuery> --format=csv,noheader,nounits`.
inline constexpr char kNvidiaSmiQuery[] = "index,uuid,name,memory.total,pci.bus_id";

// Parses that output: one line per GPU, "0, GPU-uuid, NVIDIA H100 80GB HBM3, 81559,
// 00000000:3B:00.0" (a " MiB" unit after the memory is accepted too; "[N/A]" memory is 0).
// INVALID_ARGUMENT naming the line otherwise.
absl::StatusOr<std::vector<SmiGpu>> ParseNvidiaSmiCsv(absl::string_view output);

// The "Device Minor:" of a /proc/driver/nvidia/gpus/<bus>/information file; NOT_FOUND when
// it has none.
absl::StatusOr<int> ParseDeviceMinor(absl::string_view information);

// The value of one --gpu flag: "INDEX:UUID:DEVICE[:NAME]", for example
// "0:GPU-8f6c1a7e:/dev/nvidia0" (NAME may contain ':'). Checks the form only (INDEX 0-1023,
// UUID of [A-Za-z0-9_.-], DEVICE an absolute path); INVALID_ARGUMENT saying what is wrong.
absl::StatusOr<NodeGpu> ParseGpuFlag(absl::string_view value);

// The driver's libraries in `ldconfig -p` output (libcuda, libnvidia-ml, libnvidia-ptxjitcompiler
// and the other compute and utility libraries), for this machine's architecture, as read-only
// binds of the files they name at kNvidiaLibDir/<name>. `resolve` maps a path to the file it
// links to (the real file; tests pass their own).
std::vector<BindMount> DriverLibraries(
    absl::string_view ldconfig_output,
    const std::function<std::string(const std::string&)>& resolve);

struct GpuDiscoveryOptions {
  // --gpu values: when given, the inventory is exactly these and nvidia-smi is not run.
  std::vector<std::string> inventory;
  // --gpus: offer the first N GPUs (by index); -1: all; 0: none (nothing is run).
  int64_t count = -1;
  // nvidia-smi; looked up in PATH unless it has a '/'. Absent: no GPUs (without --gpu).
  std::string nvidia_smi = "nvidia-smi";
  std::string ldconfig = "ldconfig";
  // Where NVIDIA's driver shows itself and its device nodes are (tests point them elsewhere).
  std::string proc_driver = "/proc/driver/nvidia";
  std::string dev_dir = "/dev";
};

// The node's GPUs: the --gpu inventory when given, else what nvidia-smi lists (device
// /dev/nvidia<minor>, the minor from the driver's /proc files, else the index), else none.
// The control nodes that exist, and the driver's files when the node has NVIDIA's driver
// (nvidia-smi found, or /proc/driver/nvidia/version); nvidia_smi when found, also beside
// --gpu (it then samples the GPUs of that inventory by UUID). INVALID_ARGUMENT naming the flag
// (--gpu, --gpus) for a bad inventory: a malformed value, a repeated index, UUID or device,
// a device that is not a character device; FAILED_PRECONDITION when nvidia-smi fails or
// lists a GPU whose device node is missing.
absl::StatusOr<GpuInventory> DiscoverGpus(const GpuDiscoveryOptions& options);

// "0 GPU-8f6c (NVIDIA H100), 1 GPU-..." for logs and errors.
std::string DescribeGpus(const std::vector<NodeGpu>& gpus);

// What a container of an attempt gets for GPUs, added to `spec`: for `held` GPUs their
// device nodes and the control nodes; in an image container (`host_image` false) the driver
// files, with kNvidiaLibDir added to LD_LIBRARY_PATH and kNvidiaBinDir to PATH. Variables,
// replacing any the image or job set:
//   NVIDIA_VISIBLE_DEVICES  the held GPUs' UUIDs, comma-separated ("void" without GPUs)
//   CUDA_VISIBLE_DEVICES    0..n-1: CUDA numbers the GPUs a container can open from 0
//                           ("" without GPUs: CUDA sees none)
//   CUDA_DEVICE_ORDER       PCI_BUS_ID, so that CUDA's k is the k-th held GPU by index
//   DROVER_GPUS             the held GPUs' node indices, comma-separated ("" without)
void AddGpusToContainer(const GpuInventory& node, const std::vector<NodeGpu>& held, bool host_image,
                        ContainerSpec* spec);

// Gives each attempt GPUs of its own from the node's inventory. Thread-safe.
class GpuAllocator {
 public:
  explicit GpuAllocator(GpuInventory inventory);

  const GpuInventory& inventory() const { return inventory_; }
  // `count` free GPUs, lowest indices first, for `owner` (an attempt's "job/epoch"), which
  // holds them until Release(owner). RESOURCE_EXHAUSTED naming what is free and who holds
  // the rest when there are not enough; FAILED_PRECONDITION when `owner` already holds some.
  absl::StatusOr<std::vector<NodeGpu>> Allocate(const std::string& owner, int count);
  // Gives `owner` exactly the GPUs with these UUIDs again (an attempt taken over after an
  // agent restart). FAILED_PRECONDITION naming the GPU when one is not the node's or is
  // held by another owner.
  absl::StatusOr<std::vector<NodeGpu>> Adopt(const std::string& owner,
                                             const std::vector<std::string>& uuids);
  // Frees what `owner` holds; nothing when it holds nothing.
  void Release(const std::string& owner);
  int free_count() const;

 private:
  const GpuInventory inventory_;
  mutable absl::Mutex mu_;
  // Holder of each GPU of inventory_.gpus, by position; empty: free.
  std::vector<std::string> holders_ ABSL_GUARDED_BY(mu_);
};

}  // namespace drover::agent

#endif  // DROVER_AGENT_GPUS_H_
