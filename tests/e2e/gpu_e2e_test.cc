// GPUs end to end against a configured inventory: the real droverd and drover-agent, the
// agent given two fake GPUs with --gpu (character devices the test makes with mknod, with
// /dev/null's and /dev/zero's numbers, removed at the end), jobs in real runc containers
// that print what they see. Runs as root. Nothing is left behind: no container, no device.
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "drover/v1/admin_service.grpc.pb.h"
#include "drover/v1/job_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/cluster.h"
#include "tests/testing/local_cluster.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/test_tls.h"

namespace drover {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr const char* kUuids[] = {"GPU-e2e00000-0000-4000-8000-000000000000",
                                  "GPU-e2e11111-1111-4111-8111-111111111111"};
// The fake GPUs' device numbers as `stat -c %t:%T` prints them (hex): /dev/null's, /dev/zero's.
constexpr const char* kNumbers[] = {"1:3", "1:5"};

class GpuE2eTest : public testing::LocalClusterTest {
 protected:
  void SetUp() override {
    LocalClusterTest::SetUp();
    if (IsSkipped()) return;
    // Two fake GPUs, named as NVIDIA's device nodes, outside /dev.
    devices_ = dir_.path() + "/devices";
    fs::create_directories(devices_);
    for (int i = 0; i < 2; ++i) {
      std::string path = absl::StrCat(devices_, "/nvidia", i);
      ASSERT_EQ(mknod(path.c_str(), S_IFCHR | 0666, makedev(1, i == 0 ? 3 : 5)), 0) << path;
      // As NVIDIA's driver makes them (mknod takes the umask off): the job's root, an
      // unprivileged host uid under the agent's user namespace, opens them as "others".
      ASSERT_EQ(chmod(path.c_str(), 0666), 0) << path;
    }
    // A fake nvidia-smi that says how busy the GPUs are: GPU 0 11% with 100 MiB in use,
    // GPU 1 22% with 200 MiB (and a GPU the node does not offer).
    std::string nvidia_smi = dir_.path() + "/nvidia-smi";
    std::ofstream(nvidia_smi) << "#!/bin/sh\ncat <<EOF\n"
                              << kUuids[0] << ", 11, 100, 81559\n"
                              << kUuids[1] << ", 22, 200, 81559\n"
                              << "GPU-not-offered, 99, 999, 81559\nEOF\n";
    fs::permissions(nvidia_smi, fs::perms::owner_all);
    gpu_agent_args_ = {"--gpu", absl::StrCat("0:", kUuids[0], ":", devices_, "/nvidia0:Fake GPU"),
                   "--gpu", absl::StrCat("1:", kUuids[1], ":", devices_, "/nvidia1:Fake GPU"),
                   "--nvidia-smi", nvidia_smi, "--metrics-interval", "100ms"};
    // Node n1 has the GPUs; a node added later, none.
    StartCluster({.agent_flags_of =
                      [this](int k) {
                        return k == 0 ? gpu_agent_args_ : std::vector<std::string>();
                      },
                  .datastore_root = false});
  }

  // A job of `gpus` GPUs (none: without use_gpu) that prints what it sees of them, then
  // waits until the test lets it end (the file `go` in its job folder).
  static v1::JobSpec GpuJob(int gpus) {
    v1::JobSpec spec;
    spec.set_entry_script("bin/sh");
    spec.add_arguments()->set_value("-c");
    spec.add_arguments()->set_value(
        "echo CUDA=[$CUDA_VISIBLE_DEVICES] NVIDIA=$NVIDIA_VISIBLE_DEVICES DROVER=[$DROVER_GPUS]; "
        "echo devices: $(ls /dev | grep nvidia); "
        "for d in /dev/nvidia*; do [ -e $d ] && stat -c '%n %t:%T' $d && echo x > $d; done; "
        "while [ ! -e /job/go ]; do sleep 0.05; done");
    // Little cpu and memory: GPUs are what jobs wait for here.
    spec.mutable_resources()->set_cpus(0.1);
    spec.mutable_resources()->set_memory_mib(64);
    if (gpus > 0) {
      spec.mutable_environment()->set_use_gpu(true);
      spec.mutable_resources()->set_gpus(gpus);
    }
    return spec;
  }

  void LetEnd(const std::string& id) {
    std::ofstream(absl::StrCat(work(), "/attempts/", id, "-1/job/go")) << "go\n";
  }

  // Polls until the job's reason contains `reason`; the job as it was then.
  v1::Job WaitForReason(const std::string& id, const std::string& reason) {
    absl::Time deadline = absl::Now() + absl::Seconds(30);
    v1::Job job = jobs_->Get(id);
    while (!absl::StrContains(job.status().reason(), reason) && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(20));
      job = jobs_->Get(id);
    }
    EXPECT_THAT(job.status().reason(), HasSubstr(reason)) << job.DebugString();
    return job;
  }

  // The one GPU index the job's status says it got on n1 (-1 when not exactly one).
  static int GpuOf(const v1::Job& job) {
    if (job.status().gpus_size() != 1 || job.status().gpus(0).gpus_size() != 1) return -1;
    EXPECT_EQ(job.status().gpus(0).node(), "n1");
    return job.status().gpus(0).gpus(0).index();
  }

  // What a job holding GPU `index` alone prints.
  static std::string SeenWithGpu(int index) {
    return absl::StrCat("CUDA=[0] NVIDIA=", kUuids[index], " DROVER=[", index, "]\n",
                        "devices: nvidia", index, "\n/dev/nvidia", index, " ", kNumbers[index],
                        "\n");
  }

  std::string devices_;
  std::vector<std::string> gpu_agent_args_;  // n1's flags: its GPUs, the fake nvidia-smi
};

TEST_F(GpuE2eTest, TheNodeRegistersItsInventory) {
  grpc::ClientContext context;
  v1::ListNodesResponse nodes;
  ASSERT_TRUE(admin_->ListNodes(&context, v1::ListNodesRequest(), &nodes).ok());
  ASSERT_EQ(nodes.nodes_size(), 1);
  const v1::Node& node = nodes.nodes(0);
  EXPECT_EQ(node.capacity().gpus(), 2);
  ASSERT_EQ(node.gpus_size(), 2);
  EXPECT_EQ(node.gpus(0).uuid(), kUuids[0]);
  EXPECT_EQ(node.gpus(1).index(), 1);
  EXPECT_EQ(node.gpus(1).name(), "Fake GPU");
}

TEST_F(GpuE2eTest, TwoJobsGetDifferentGpusAndAThirdWaitsUntilOneIsFree) {
  std::string a = jobs_->Submit(GpuJob(1));
  std::string b = jobs_->Submit(GpuJob(1));
  v1::Job job_a = WaitFor(a, v1::JobStatus::RUNNING);
  v1::Job job_b = WaitFor(b, v1::JobStatus::RUNNING);
  int gpu_a = GpuOf(job_a);
  int gpu_b = GpuOf(job_b);
  EXPECT_EQ((std::set<int>{gpu_a, gpu_b}), (std::set<int>{0, 1})) << "one GPU each, never shared";

  // Both GPUs are held: the third waits, though the node has cpus and memory for it.
  std::string c = jobs_->Submit(GpuJob(1));
  v1::Job waiting = WaitForReason(c, "WAITING_FOR_NODES need=1 free=0");
  EXPECT_EQ(waiting.status().state(), v1::JobStatus::QUEUED);

  LetEnd(a);
  job_a = WaitFor(a, v1::JobStatus::COMPLETED);
  EXPECT_EQ(GpuOf(job_a), gpu_a) << "the ended job still says which GPU it had";
  v1::Job job_c = WaitFor(c, v1::JobStatus::RUNNING);
  EXPECT_EQ(GpuOf(job_c), gpu_a) << "the freed GPU";
  LetEnd(b);
  LetEnd(c);
  WaitFor(b, v1::JobStatus::COMPLETED);
  WaitFor(c, v1::JobStatus::COMPLETED);

  // Each saw exactly its own device node, as CUDA device 0.
  EXPECT_EQ(jobs_->Logs(a, 0), SeenWithGpu(gpu_a));
  EXPECT_EQ(jobs_->Logs(b, 0), SeenWithGpu(gpu_b));
  EXPECT_EQ(jobs_->Logs(c, 0), SeenWithGpu(gpu_a));
  EXPECT_EQ(jobs_->Logs(a, 0, v1::STDERR), "");

  // `drover show` says which GPU each job had.
  testing::CommandResult shown = RunCli({"show", b});
  EXPECT_THAT(shown.out,
              HasSubstr(absl::StrCat("gpus:    n1: ", gpu_b, " (", kUuids[gpu_b], ")\n")));
}

TEST_F(GpuE2eTest, SystemMetricsShowTheUseOfTheGpusTheJobHolds) {
  std::string gpu_job = jobs_->Submit(GpuJob(1));
  std::string cpu_job = jobs_->Submit(GpuJob(0));
  int gpu = GpuOf(WaitFor(gpu_job, v1::JobStatus::RUNNING));
  ASSERT_GE(gpu, 0);
  WaitFor(cpu_job, v1::JobStatus::RUNNING);
  absl::SleepFor(absl::Seconds(1));  // several samples (every 100 ms)
  LetEnd(gpu_job);
  LetEnd(cpu_job);
  WaitFor(gpu_job, v1::JobStatus::COMPLETED);
  WaitFor(cpu_job, v1::JobStatus::COMPLETED);

  // name -> values of the node's system series.
  auto system = [&](const std::string& id) {
    grpc::ClientContext context;
    v1::GetMetricsRequest request;
    request.set_job_id(id);
    request.add_sources(v1::MetricSeries::SYSTEM);
    v1::GetMetricsResponse metrics;
    EXPECT_TRUE(jobs_->stub().GetMetrics(&context, request, &metrics).ok());
    std::map<std::string, std::vector<double>> values;
    for (const v1::MetricSeries& series : metrics.series()) {
      values[series.name()].assign(series.values().begin(), series.values().end());
    }
    return values;
  };
  std::map<std::string, std::vector<double>> used = system(gpu_job);
  // The GPU is CUDA's 0 in the container; its readings are those of the GPU it holds, only.
  ASSERT_TRUE(used.contains("gpu_utilization_percent/0")) << "series: " << used.size();
  EXPECT_GE(used["gpu_utilization_percent/0"].size(), 3u);
  for (double v : used["gpu_utilization_percent/0"]) EXPECT_EQ(v, gpu == 0 ? 11 : 22);
  ASSERT_TRUE(used.contains("gpu_memory_bytes/0"));
  for (double v : used["gpu_memory_bytes/0"]) EXPECT_EQ(v, (gpu == 0 ? 100 : 200) * 1048576.0);
  EXPECT_FALSE(used.contains("gpu_utilization_percent/1"));
  EXPECT_TRUE(used.contains("memory_bytes"));

  std::map<std::string, std::vector<double>> none = system(cpu_job);
  EXPECT_TRUE(none.contains("memory_bytes"));
  for (const auto& [name, values] : none) {
    EXPECT_FALSE(absl::StartsWith(name, "gpu_")) << name << ": the job holds no GPU";
  }
}

TEST_F(GpuE2eTest, AJobKeepsItsGpuAcrossAnAgentRestart) {
  std::string a = jobs_->Submit(GpuJob(1));
  int gpu_a = GpuOf(WaitFor(a, v1::JobStatus::RUNNING));
  ASSERT_GE(gpu_a, 0);
  KillAgent(0);
  StartAgent(0);
  WaitForReadyNodes(1);
  // The next agent holds the running job's GPU again: a new job gets the other one, and a
  // third waits.
  std::string b = jobs_->Submit(GpuJob(1));
  int gpu_b = GpuOf(WaitFor(b, v1::JobStatus::RUNNING));
  EXPECT_EQ(gpu_b, 1 - gpu_a);
  std::string c = jobs_->Submit(GpuJob(1));
  WaitForReason(c, "WAITING_FOR_NODES need=1 free=0");
  LetEnd(a);
  v1::Job done = WaitFor(a, v1::JobStatus::COMPLETED);
  EXPECT_EQ(done.status().attempt(), 1);
  EXPECT_EQ(jobs_->Logs(a, 0), SeenWithGpu(gpu_a)) << "the same processes, output once";
  EXPECT_EQ(GpuOf(WaitFor(c, v1::JobStatus::RUNNING)), gpu_a) << "given back at the end";
  LetEnd(b);
  LetEnd(c);
  WaitFor(b, v1::JobStatus::COMPLETED);
  WaitFor(c, v1::JobStatus::COMPLETED);
}

TEST_F(GpuE2eTest, AJobNeedingMoreGpusThanTheNodeHasStaysQueuedAndBlocksNobody) {
  std::string big = jobs_->Submit(GpuJob(3));
  v1::Job waiting = WaitForReason(big, "NO_NODE_LARGE_ENOUGH need=1 large_enough=0");
  EXPECT_THAT(waiting.status().reason(), HasSubstr("gpus=3"));
  EXPECT_EQ(waiting.status().state(), v1::JobStatus::QUEUED);

  // A job of both GPUs runs meanwhile, with both.
  std::string both = jobs_->Submit(GpuJob(2));
  WaitFor(both, v1::JobStatus::RUNNING);
  LetEnd(both);
  v1::Job done = WaitFor(both, v1::JobStatus::COMPLETED);
  ASSERT_EQ(done.status().gpus_size(), 1);
  EXPECT_EQ(done.status().gpus(0).gpus_size(), 2);
  EXPECT_EQ(jobs_->Logs(both, 0),
            absl::StrCat("CUDA=[0,1] NVIDIA=", kUuids[0], ",", kUuids[1], " DROVER=[0,1]\n",
                         "devices: nvidia0 nvidia1\n", "/dev/nvidia0 ", kNumbers[0], "\n",
                         "/dev/nvidia1 ", kNumbers[1], "\n"));
  EXPECT_EQ(jobs_->Get(big).status().state(), v1::JobStatus::QUEUED);

  grpc::ClientContext context;
  v1::CancelJobRequest cancel;
  cancel.set_job_id(big);
  v1::Job canceled;
  ASSERT_TRUE(jobs_->stub().CancelJob(&context, cancel, &canceled).ok());
}

TEST_F(GpuE2eTest, AJobWithoutUseGpuSeesNoGpu) {
  std::string id = jobs_->Submit(GpuJob(0));
  WaitFor(id, v1::JobStatus::RUNNING);
  LetEnd(id);
  v1::Job job = WaitFor(id, v1::JobStatus::COMPLETED);
  EXPECT_EQ(job.status().gpus_size(), 0);
  EXPECT_EQ(jobs_->Logs(id, 0), "CUDA=[] NVIDIA=void DROVER=[]\ndevices:\n");
}

TEST_F(GpuE2eTest, AnAgentWithABadInventoryRefusesToStartNamingTheFlag) {
  std::string bad = dir_.path() + "/not-a-device";
  std::ofstream(bad) << "plain file\n";
  const int k = AddNode();  // n2
  StartAgent(k, {"--gpu", "0:GPU-x:" + bad});
  ASSERT_FALSE(HasFatalFailure());
  absl::StatusOr<int> status = agent(k)->Wait(absl::Seconds(30));
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 2) << *status;
  EXPECT_THAT(agent(k)->ReadLog(),
              HasSubstr(absl::StrCat("drover-agent: --gpu '0:GPU-x:", bad, "': ", bad,
                                     " is not a character device")));
}

}  // namespace
}  // namespace drover
