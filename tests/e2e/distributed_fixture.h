// The fixture of the distributed end-to-end tests: the local cluster (local_cluster.h) on
// test hosts, an agent on each offering 2 cpus, and the steps of distributed jobs (jobs
// from tests/e2e/jobs scripts, an agent restarted under a gang, ranks agreeing on their
// parameters). Root only.
#ifndef DROVER_TESTS_E2E_DISTRIBUTED_FIXTURE_H_
#define DROVER_TESTS_E2E_DISTRIBUTED_FIXTURE_H_

#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "drover/v1/job_service.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/testing/local_cluster.h"

namespace drover {

class DistributedE2eTest : public testing::LocalClusterTest {
 protected:
  // `count` test hosts, droverd on their bridge, an agent on each offering 2 cpus.
  void StartCluster(int count) {
    LocalClusterTest::StartCluster(
        {.agents = count,
         .test_hosts = true,
         .agent_flags_of = [this](int k) {
           return extra_agent_args_ != nullptr ? extra_agent_args_(k) : std::vector<std::string>();
         },
         .job_timeout = absl::Seconds(120)});
  }

  // SIGKILLs the agent of host k while job `id` runs and starts it again; then lets the
  // job's ranks end (they wait for /job/go on every node) and expects it to complete in the
  // same attempt.
  void RestartAgentThenLetEnd(const std::string& id, int k) {
    KillAgent(k);
    absl::SleepFor(absl::Milliseconds(500));
    StartAgent(k);
    WaitForReadyNodes(2);
    for (const std::string& work : work_dirs_) {
      std::ofstream(absl::StrCat(work, "/attempts/", id, "-1/job/go")) << "go\n";
    }
    v1::Job job = WaitFor(id, v1::JobStatus::COMPLETED);
    EXPECT_EQ(job.status().attempt(), 1) << "the gang was not restarted";
  }

  static v1::JobSpec Distributed(v1::JobSpec::DistributedBackend backend, int nodes,
                                 int processes, double cpus = 1) {
    v1::JobSpec spec;
    spec.set_distributed_backend(backend);
    spec.set_node_count(nodes);
    spec.set_process_count_per_node(processes);
    spec.mutable_resources()->set_cpus(cpus);
    spec.mutable_resources()->set_memory_mib(1536);
    spec.mutable_resources()->set_shm_mib(256);
    return spec;
  }

  // A job of `script` in tests/e2e/jobs.
  v1::JobSpec Script(v1::JobSpec spec, const std::string& script,
                     const std::vector<std::string>& args = {}) {
    spec.set_source_snapshot(Snapshot(DROVER_SOURCE_DIR "/tests/e2e/jobs"));
    spec.set_entry_script(script);
    for (const std::string& arg : args) spec.add_arguments()->set_value(arg);
    return spec;
  }

  // The checksum every rank of the distributed PyTorch example printed; fails the test when
  // a rank printed none or they differ.
  void ExpectIdenticalParameters(const std::string& id, int world) {
    std::set<std::string> checksums;
    for (int rank = 0; rank < world; ++rank) {
      std::string out = Logs(id, rank);
      std::string marker = absl::StrCat("parameters identical on all ", world, " ranks: checksum=");
      size_t at = out.find(marker);
      ASSERT_NE(at, std::string::npos) << "rank " << rank << " printed:\n"
                                       << out << Logs(id, rank, v1::STDERR);
      checksums.insert(out.substr(at + marker.size(), 16));
    }
    EXPECT_EQ(checksums.size(), 1u) << "ranks disagree on the parameters";
  }

  // More flags for the agent of host k (for example its own --node-cert/--node-key).
  std::function<std::vector<std::string>(int k)> extra_agent_args_;
};

}  // namespace drover

#endif  // DROVER_TESTS_E2E_DISTRIBUTED_FIXTURE_H_
