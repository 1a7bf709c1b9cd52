// The node's GPUs: nvidia-smi's output and the --gpu inventory read, discovery against a
// fake nvidia-smi and fake device nodes (mknod, so as root), what a container gets, and the
// allocator that never gives one GPU to two attempts.
#include "agent/gpus.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"

namespace drover::agent {
namespace {

namespace fs = std::filesystem;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

// Two GPUs as `nvidia-smi --query-gpu=... --format=csv,noheader,nounits` prints them.
constexpr char kTwoGpus[] =
    "0, GPU-8f6c1a7e-0000-4b5e-9d1e-aaaaaaaaaaaa, NVIDIA H100 80GB HBM3, 81559, 00000000:1B:00.0\n"
    "1, GPU-03b1d2c4-1111-4b5e-9d1e-bbbbbbbbbbbb, NVIDIA H100 80GB HBM3, 81559, 00000000:3B:00.0\n";

TEST(NvidiaSmiCsvTest, ReadsEveryGpu) {
  absl::StatusOr<std::vector<SmiGpu>> gpus = ParseNvidiaSmiCsv(kTwoGpus);
  ASSERT_TRUE(gpus.ok()) << gpus.status();
  ASSERT_EQ(gpus->size(), 2u);
  EXPECT_EQ((*gpus)[1].gpu.index(), 1);
  EXPECT_EQ((*gpus)[1].gpu.uuid(), "GPU-03b1d2c4-1111-4b5e-9d1e-bbbbbbbbbbbb");
  EXPECT_EQ((*gpus)[1].gpu.name(), "NVIDIA H100 80GB HBM3");
  EXPECT_EQ((*gpus)[1].gpu.memory_mib(), 81559);
  EXPECT_EQ((*gpus)[1].pci_bus_id, "00000000:3B:00.0");
}

TEST(NvidiaSmiCsvTest, AcceptsUnitsCommasInNamesAndUnknownMemory) {
  absl::StatusOr<std::vector<SmiGpu>> gpus = ParseNvidiaSmiCsv(
      "\n3, GPU-a, Tesla V100-SXM2-16GB, rev A, 16160 MiB, 00000000:86:00.0\r\n"
      "4, GPU-b, NVIDIA A100, [N/A], 00000000:87:00.0\n");
  ASSERT_TRUE(gpus.ok()) << gpus.status();
  ASSERT_EQ(gpus->size(), 2u);
  EXPECT_EQ((*gpus)[0].gpu.name(), "Tesla V100-SXM2-16GB, rev A");
  EXPECT_EQ((*gpus)[0].gpu.memory_mib(), 16160);
  EXPECT_EQ((*gpus)[1].gpu.memory_mib(), 0);
}

TEST(NvidiaSmiCsvTest, RefusesWhatItCannotReadNamingTheLine) {
  absl::StatusOr<std::vector<SmiGpu>> short_line = ParseNvidiaSmiCsv("0, GPU-a, H100\n");
  ASSERT_FALSE(short_line.ok());
  EXPECT_THAT(std::string(short_line.status().message()), HasSubstr("line 1 '0, GPU-a, H100'"));
  absl::StatusOr<std::vector<SmiGpu>> bad_index =
      ParseNvidiaSmiCsv("0, GPU-a, H100, 1, 0:1:0.0\nx, GPU-b, H100, 1, 0:2:0.0\n");
  ASSERT_FALSE(bad_index.ok());
  EXPECT_THAT(std::string(bad_index.status().message()), HasSubstr("line 2"));
  EXPECT_THAT(std::string(bad_index.status().message()), HasSubstr("index 'x'"));
  EXPECT_FALSE(ParseNvidiaSmiCsv("0, GPU-a, H100, lots, 0:1:0.0\n").ok());
}

TEST(NvidiaSmiCsvTest, DeviceMinorFromTheDriversInformationFile) {
  EXPECT_EQ(*ParseDeviceMinor("Model: \t\t NVIDIA H100\nIRQ:   123\nDevice Minor: \t 5\n"), 5);
  EXPECT_EQ(ParseDeviceMinor("Model: H100\n").status().code(), absl::StatusCode::kNotFound);
}

TEST(GpuFlagTest, ReadsIndexUuidDeviceAndName) {
  absl::StatusOr<NodeGpu> gpu = ParseGpuFlag("2:GPU-8f6c1a7e:/dev/nvidia3:NVIDIA A100: 80GB");
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  EXPECT_EQ(gpu->gpu.index(), 2);
  EXPECT_EQ(gpu->gpu.uuid(), "GPU-8f6c1a7e");
  EXPECT_EQ(gpu->device, "/dev/nvidia3");
  EXPECT_EQ(gpu->gpu.name(), "NVIDIA A100: 80GB");
  EXPECT_EQ(gpu->ContainerPath(), "/dev/nvidia3");
  absl::StatusOr<NodeGpu> elsewhere = ParseGpuFlag("0:GPU-x:/var/lib/fake/gpu0");
  ASSERT_TRUE(elsewhere.ok());
  EXPECT_EQ(elsewhere->gpu.name(), "");
  EXPECT_EQ(elsewhere->ContainerPath(), "/dev/gpu0") << "outside /dev: /dev/<file name>";
}

TEST(GpuFlagTest, RefusesMalformedValuesSayingWhatIsExpected) {
  struct Case {
    const char* value;
    const char* says;
  };
  for (const Case& c : std::vector<Case>{{"GPU-x:/dev/nvidia0", "INDEX:UUID:DEVICE"},
                                         {"-1:GPU-x:/dev/nvidia0", "INDEX '-1'"},
                                         {"one:GPU-x:/dev/nvidia0", "INDEX 'one'"},
                                         {"0::/dev/nvidia0", "UUID ''"},
                                         {"0:GPU x:/dev/nvidia0", "UUID 'GPU x'"},
                                         {"0:GPU-x:dev/nvidia0", "DEVICE 'dev/nvidia0'"},
                                         {"0:GPU-x:/dev/../nvidia0", "DEVICE"}}) {
    absl::StatusOr<NodeGpu> gpu = ParseGpuFlag(c.value);
    ASSERT_FALSE(gpu.ok()) << c.value;
    EXPECT_EQ(gpu.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(gpu.status().message()), HasSubstr(c.says)) << c.value;
  }
}

TEST(DriverLibrariesTest, TakesTheDriversLibrariesOfThisArchitecture) {
#if !defined(__x86_64__)
  GTEST_SKIP() << "the sample is x86-64's";
#endif
  constexpr char kCache[] =
      "1234 libs found in cache `/etc/ld.so.cache'\n"
      "\tlibz.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libz.so.1\n"
      "\tlibnvidia-ml.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libnvidia-ml.so.1\n"
      "\tlibnvidia-ml.so.1 (libc6) => /lib/i386-linux-gnu/libnvidia-ml.so.1\n"
      "\tlibnvidia-ptxjitcompiler.so.1 (libc6,x86-64) => "
      "/lib/x86_64-linux-gnu/libnvidia-ptxjitcompiler.so.1\n"
      "\tlibnvidia-glcore.so.535.104.05 (libc6,x86-64) => "
      "/lib/x86_64-linux-gnu/libnvidia-glcore.so.535.104.05\n"
      "\tlibcuda.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libcuda.so.1\n"
      "\tlibcuda.so (libc6,x86-64, OS ABI: Linux 3.2.0) => /lib/x86_64-linux-gnu/libcuda.so\n"
      "\tlibcudart.so.12 (libc6,x86-64) => /usr/local/cuda/lib64/libcudart.so.12\n";
  std::vector<BindMount> files =
      DriverLibraries(kCache, [](const std::string& path) { return path + ".real"; });
  std::vector<std::string> seen;
  for (const BindMount& file : files) {
    EXPECT_TRUE(file.read_only);
    seen.push_back(absl::StrCat(file.destination, " <- ", file.source));
  }
  EXPECT_THAT(seen, ElementsAre("/usr/local/nvidia/lib64/libnvidia-ml.so.1 <- "
                                "/lib/x86_64-linux-gnu/libnvidia-ml.so.1.real",
                                "/usr/local/nvidia/lib64/libnvidia-ptxjitcompiler.so.1 <- "
                                "/lib/x86_64-linux-gnu/libnvidia-ptxjitcompiler.so.1.real",
                                "/usr/local/nvidia/lib64/libcuda.so.1 <- "
                                "/lib/x86_64-linux-gnu/libcuda.so.1.real",
                                "/usr/local/nvidia/lib64/libcuda.so <- "
                                "/lib/x86_64-linux-gnu/libcuda.so.real"));
}

// Discovery against fake device nodes (character devices with /dev/null's numbers), a fake
// nvidia-smi and ldconfig, and a fake /proc/driver/nvidia.
class DiscoverGpusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "fake device nodes need mknod: run as root";
    dev_ = dir_.path() + "/dev";
    bin_ = dir_.path() + "/bin";
    proc_ = dir_.path() + "/proc-driver-nvidia";
    fs::create_directories(dev_);
    fs::create_directories(bin_);
    fs::create_directories(proc_);
    const char* path = std::getenv("PATH");
    saved_path_ = path != nullptr ? path : "";
  }
  void TearDown() override { setenv("PATH", saved_path_.c_str(), 1); }

  std::string Device(const std::string& name) {
    std::string path = dev_ + "/" + name;
    EXPECT_EQ(mknod(path.c_str(), S_IFCHR | 0666, makedev(1, 3)), 0) << path;
    return path;
  }
  void Script(const std::string& name, const std::string& body) {
    std::string path = bin_ + "/" + name;
    std::ofstream(path) << "#!/bin/sh\n" << body;
    fs::permissions(path, fs::perms::owner_all);
  }
  // PATH with only the fake programs (and the shell they need).
  void FakePath() { setenv("PATH", (bin_ + ":/usr/bin:/bin").c_str(), 1); }
  GpuDiscoveryOptions Options() {
    GpuDiscoveryOptions options;
    options.proc_driver = proc_;
    options.dev_dir = dev_;
    options.ldconfig = bin_ + "/ldconfig";
    return options;
  }

  testing::TempDir dir_;
  std::string dev_, bin_, proc_;
  std::string saved_path_;
};

TEST_F(DiscoverGpusTest, InventoryFlagsGiveTheGpusByIndex) {
  std::string a = Device("gpu-a");
  std::string b = Device("gpu-b");
  GpuDiscoveryOptions options = Options();
  options.inventory = {absl::StrCat("1:GPU-b:", b, ":Fake GPU"), absl::StrCat("0:GPU-a:", a)};
  absl::StatusOr<GpuInventory> found = DiscoverGpus(options);
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_EQ(found->gpus.size(), 2u);
  EXPECT_EQ(found->gpus[0].gpu.uuid(), "GPU-a");
  EXPECT_EQ(found->gpus[0].device, a);
  EXPECT_EQ(found->gpus[1].gpu.name(), "Fake GPU");
  EXPECT_THAT(found->control_devices, IsEmpty()) << "none in the fake /dev";
  EXPECT_THAT(found->driver_files, IsEmpty()) << "no NVIDIA driver";

  options.count = 1;
  found = DiscoverGpus(options);
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_EQ(found->gpus.size(), 1u);
  EXPECT_EQ(found->gpus[0].gpu.index(), 0) << "--gpus N offers the first N by index";
}

TEST_F(DiscoverGpusTest, BadInventoriesAreRefusedNamingTheFlag) {
  std::string a = Device("gpu-a");
  std::ofstream(dev_ + "/plain") << "not a device\n";
  struct Case {
    std::vector<std::string> inventory;
    int64_t count;
    std::string says;
  };
  std::vector<Case> cases = {
      {{"0:GPU-a"}, -1, "--gpu '0:GPU-a': expected INDEX:UUID:DEVICE"},
      {{"0:GPU-a:" + dev_ + "/plain"}, -1, "is not a character device"},
      {{"0:GPU-a:" + dev_ + "/missing"}, -1, "is not a character device"},
      {{"0:GPU-a:" + a, "0:GPU-b:" + a}, -1, "index '0' is also in --gpu '0:GPU-a:"},
      {{"0:GPU-a:" + a, "1:GPU-a:" + a}, -1, "UUID 'GPU-a' is also in"},
      {{"0:GPU-a:" + a, "1:GPU-b:" + a}, -1, "device '" + a + "' is also in"},
      {{"0:GPU-a:" + a}, 2, "--gpus 2: this node has 1 GPUs (from --gpu)"},
      {{"0:GPU-a:" + a}, 0, "--gpus 0 offers no GPUs, yet --gpu names some"},
      {{}, -2, "--gpus -2"},
  };
  for (const Case& c : cases) {
    GpuDiscoveryOptions options = Options();
    options.inventory = c.inventory;
    options.count = c.count;
    absl::StatusOr<GpuInventory> found = DiscoverGpus(options);
    ASSERT_FALSE(found.ok()) << c.says;
    EXPECT_EQ(found.status().code(), absl::StatusCode::kInvalidArgument) << c.says;
    EXPECT_THAT(std::string(found.status().message()), HasSubstr(c.says));
  }
}

TEST_F(DiscoverGpusTest, NvidiaSmiInPathListsTheGpusWithTheirDeviceMinors) {
  // GPU 0 is /dev/nvidia2 by the driver's own record; GPU 1 has none and falls back to its
  // index.
  Script("nvidia-smi",
         absl::StrCat("[ \"$1\" = --query-gpu=index,uuid,name,memory.total,pci.bus_id ] && "
                      "[ \"$2\" = --format=csv,noheader,nounits ] || exit 64\n"
                      "cat <<'EOF'\n",
                      kTwoGpus, "EOF\n"));
  Script("ldconfig",
         "echo '\tlibcuda.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libcuda.so.1'\n"
         "echo '\tlibcuda.so.1 (libc6,AArch64) => /lib/aarch64-linux-gnu/libcuda.so.1'\n");
  fs::create_directories(proc_ + "/gpus/0000:1b:00.0");
  std::ofstream(proc_ + "/gpus/0000:1b:00.0/information") << "Model: H100\nDevice Minor: 2\n";
  Device("nvidia2");
  Device("nvidia1");
  Device("nvidiactl");
  Device("nvidia-uvm");
  FakePath();
  absl::StatusOr<GpuInventory> found = DiscoverGpus(Options());
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_EQ(found->gpus.size(), 2u);
  EXPECT_EQ(found->gpus[0].device, dev_ + "/nvidia2");
  EXPECT_EQ(found->gpus[0].gpu.name(), "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(found->gpus[1].device, dev_ + "/nvidia1");
  EXPECT_THAT(found->control_devices, ElementsAre(dev_ + "/nvidiactl", dev_ + "/nvidia-uvm"));
  // The driver's library (of this machine's architecture) and nvidia-smi itself.
  std::vector<std::string> destinations;
  for (const BindMount& file : found->driver_files) destinations.push_back(file.destination);
  EXPECT_THAT(destinations, Contains("/usr/local/nvidia/lib64/libcuda.so.1"));
  EXPECT_THAT(destinations, Contains("/usr/local/nvidia/bin/nvidia-smi"));
  EXPECT_EQ(destinations.size(), 2u);
}

TEST_F(DiscoverGpusTest, ANodeWithoutNvidiaSmiOrInventoryHasNoGpus) {
  FakePath();  // no nvidia-smi in it
  absl::StatusOr<GpuInventory> found = DiscoverGpus(Options());
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_THAT(found->gpus, IsEmpty());
}

TEST_F(DiscoverGpusTest, GpusZeroRunsNothing) {
  Script("nvidia-smi", "touch " + dir_.path() + "/ran\nexit 1\n");
  FakePath();
  GpuDiscoveryOptions options = Options();
  options.count = 0;
  absl::StatusOr<GpuInventory> found = DiscoverGpus(options);
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_THAT(found->gpus, IsEmpty());
  EXPECT_FALSE(fs::exists(dir_.path() + "/ran"));
}

TEST_F(DiscoverGpusTest, AFailingNvidiaSmiStopsTheAgentWithWhatItSaid) {
  Script("nvidia-smi",
         "echo \"NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\" "
         ">&2\nexit 9\n");
  FakePath();
  absl::StatusOr<GpuInventory> found = DiscoverGpus(Options());
  ASSERT_FALSE(found.ok());
  EXPECT_EQ(found.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(found.status().message()),
              HasSubstr("failed (exit code 9: NVIDIA-SMI has failed because it couldn't "
                        "communicate with the NVIDIA driver.)"));
  EXPECT_THAT(std::string(found.status().message()), HasSubstr("--gpus 0"));
}

TEST_F(DiscoverGpusTest, AMissingDeviceNodeIsNamed) {
  Script("nvidia-smi", absl::StrCat("cat <<'EOF'\n", kTwoGpus, "EOF\n"));
  Device("nvidia0");
  GpuDiscoveryOptions options = Options();
  options.nvidia_smi = bin_ + "/nvidia-smi";
  absl::StatusOr<GpuInventory> found = DiscoverGpus(options);
  ASSERT_FALSE(found.ok());
  EXPECT_THAT(std::string(found.status().message()),
              HasSubstr("its device node " + dev_ + "/nvidia1 is missing"));
}

NodeGpu Gpu(int index, const std::string& uuid, const std::string& device) {
  NodeGpu gpu;
  gpu.gpu.set_index(index);
  gpu.gpu.set_uuid(uuid);
  gpu.device = device;
  return gpu;
}

GpuInventory FourGpus() {
  GpuInventory node;
  for (int i = 0; i < 4; ++i) {
    node.gpus.push_back(Gpu(i, absl::StrCat("GPU-", i), absl::StrCat("/dev/nvidia", i)));
  }
  node.control_devices = {"/dev/nvidiactl", "/dev/nvidia-uvm"};
  node.driver_files = {{.source = "/usr/lib/x86_64-linux-gnu/libcuda.so.535.104.05",
                        .destination = "/usr/local/nvidia/lib64/libcuda.so.1",
                        .read_only = true}};
  return node;
}

std::vector<std::string> DevicePaths(const ContainerSpec& spec) {
  std::vector<std::string> paths;
  for (const DeviceNode& device : spec.devices) paths.push_back(device.path);
  return paths;
}

TEST(AddGpusToContainerTest, AnImageContainerGetsItsGpusTheDriverAndTheVariables) {
  GpuInventory node = FourGpus();
  ContainerSpec spec;
  spec.env = {"PATH=/usr/bin:/bin", "NVIDIA_VISIBLE_DEVICES=all", "LD_LIBRARY_PATH=/opt/lib"};
  AddGpusToContainer(node, {node.gpus[1], node.gpus[3]}, /*host_image=*/false, &spec);
  EXPECT_THAT(DevicePaths(spec),
              ElementsAre("/dev/nvidia1", "/dev/nvidia3", "/dev/nvidiactl", "/dev/nvidia-uvm"));
  EXPECT_THAT(spec.env, Contains("NVIDIA_VISIBLE_DEVICES=GPU-1,GPU-3"));
  EXPECT_THAT(spec.env, Not(Contains("NVIDIA_VISIBLE_DEVICES=all")));
  EXPECT_THAT(spec.env, Contains("CUDA_VISIBLE_DEVICES=0,1")) << "CUDA numbers what it sees";
  EXPECT_THAT(spec.env, Contains("CUDA_DEVICE_ORDER=PCI_BUS_ID"));
  EXPECT_THAT(spec.env, Contains("DROVER_GPUS=1,3"));
  EXPECT_THAT(spec.env, Contains("LD_LIBRARY_PATH=/opt/lib:/usr/local/nvidia/lib64"));
  EXPECT_THAT(spec.env, Contains("PATH=/usr/bin:/bin:/usr/local/nvidia/bin"));
  ASSERT_EQ(spec.mounts.size(), 1u);
  EXPECT_EQ(spec.mounts[0].destination, "/usr/local/nvidia/lib64/libcuda.so.1");
}

TEST(AddGpusToContainerTest, TheHostImageHasTheDriverAlready) {
  GpuInventory node = FourGpus();
  ContainerSpec spec;
  AddGpusToContainer(node, {node.gpus[0]}, /*host_image=*/true, &spec);
  EXPECT_THAT(spec.mounts, IsEmpty());
  EXPECT_THAT(spec.env, Not(Contains(HasSubstr("LD_LIBRARY_PATH"))));
  EXPECT_THAT(spec.env, Contains("CUDA_VISIBLE_DEVICES=0"));
}

TEST(AddGpusToContainerTest, AJobWithoutGpusGetsNoDeviceAndSeesNone) {
  GpuInventory node = FourGpus();
  ContainerSpec spec;
  spec.env = {"CUDA_VISIBLE_DEVICES=0,1,2,3"};
  AddGpusToContainer(node, {}, /*host_image=*/false, &spec);
  EXPECT_THAT(spec.devices, IsEmpty());
  EXPECT_THAT(spec.mounts, IsEmpty());
  EXPECT_THAT(spec.env,
              ElementsAre("CUDA_VISIBLE_DEVICES=", "NVIDIA_VISIBLE_DEVICES=void", "DROVER_GPUS="));
}

TEST(GpuAllocatorTest, AttemptsGetGpusOfTheirOwnUntilTheyReleaseThem) {
  GpuAllocator allocator(FourGpus());
  absl::StatusOr<std::vector<NodeGpu>> first = allocator.Allocate("j-1/1", 1);
  absl::StatusOr<std::vector<NodeGpu>> second = allocator.Allocate("j-2/1", 2);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(DescribeGpus(*first), "0 GPU-0");
  EXPECT_EQ(DescribeGpus(*second), "1 GPU-1, 2 GPU-2");
  EXPECT_EQ(allocator.free_count(), 1);

  absl::StatusOr<std::vector<NodeGpu>> third = allocator.Allocate("j-3/1", 2);
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(third.status().message(),
            "needs 2 GPUs but 1 of the node's 4 are free (j-1/1 holds 0; j-2/1 holds 1,2)");
  EXPECT_EQ(allocator.free_count(), 1) << "a refused attempt takes nothing";

  allocator.Release("j-1/1");
  third = allocator.Allocate("j-3/1", 2);
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ(DescribeGpus(*third), "0 GPU-0, 3 GPU-3");
  EXPECT_EQ(allocator.Allocate("j-3/1", 1).status().code(), absl::StatusCode::kFailedPrecondition);
  allocator.Release("j-unknown/1");  // holds nothing: no change
  EXPECT_EQ(allocator.free_count(), 0);
}

TEST(GpuAllocatorTest, AnAttemptTakenOverGetsTheSameGpusBack) {
  GpuAllocator allocator(FourGpus());
  absl::StatusOr<std::vector<NodeGpu>> adopted = allocator.Adopt("j-1/1", {"GPU-2", "GPU-0"});
  ASSERT_TRUE(adopted.ok()) << adopted.status();
  EXPECT_EQ(DescribeGpus(*adopted), "2 GPU-2, 0 GPU-0");
  // New attempts get the others.
  absl::StatusOr<std::vector<NodeGpu>> next = allocator.Allocate("j-2/1", 1);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(DescribeGpus(*next), "1 GPU-1");
  absl::StatusOr<std::vector<NodeGpu>> taken = allocator.Adopt("j-3/1", {"GPU-1"});
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(taken.status().message(), "GPU GPU-1 is held by j-2/1");
  EXPECT_EQ(allocator.Adopt("j-3/1", {"GPU-9"}).status().message(),
            "GPU GPU-9 is no longer offered");
  EXPECT_EQ(allocator.free_count(), 1) << "a refused adoption takes nothing";
  allocator.Release("j-1/1");
  EXPECT_EQ(allocator.free_count(), 3);
}

TEST(GpuAllocatorTest, ConcurrentAttemptsNeverShareAGpu) {
  GpuAllocator allocator(FourGpus());
  for (int round = 0; round < 50; ++round) {
    std::vector<std::vector<NodeGpu>> given(8);
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&, t] {
        absl::StatusOr<std::vector<NodeGpu>> gpus =
            allocator.Allocate(absl::StrCat("j-", t, "/1"), 1);
        if (gpus.ok()) given[t] = *gpus;
      });
    }
    for (std::thread& thread : threads) thread.join();
    std::multiset<int> indices;
    for (const auto& gpus : given) {
      for (const NodeGpu& gpu : gpus) indices.insert(gpu.gpu.index());
    }
    EXPECT_EQ(indices.size(), 4u) << "four GPUs, four holders";
    EXPECT_EQ(std::set<int>(indices.begin(), indices.end()).size(), 4u) << "none given twice";
    for (int t = 0; t < 8; ++t) allocator.Release(absl::StrCat("j-", t, "/1"));
    ASSERT_EQ(allocator.free_count(), 4);
  }
}

}  // namespace
}  // namespace drover::agent
