// One droverd and one drover-agent ("n1") as child processes on this machine, talked to
// over gRPC, jobs in real runc containers (the host image). Runs as root (skipped
// otherwise). TearDown checks that nothing is left behind: no container in the agent's runc
// root, no mount under its work folder, no cgroup of its containers.
#ifndef DROVER_TESTS_E2E_SINGLE_NODE_FIXTURE_H_
#define DROVER_TESTS_E2E_SINGLE_NODE_FIXTURE_H_

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "drover/v1/admin_service.grpc.pb.h"
#include "drover/v1/blob.grpc.pb.h"
#include "drover/v1/job_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/cluster.h"
#include "tests/testing/subprocess.h"

namespace drover::testing {

class SingleNodeTest : public ::testing::Test {
 protected:
  // Extra flags for the agent. The test's folder is the one host folder datastores may use.
  virtual std::vector<std::string> AgentFlags() const {
    return {"--metrics-interval", "200ms", "--datastore-root", dir_.path()};
  }

  // Extra flags for droverd.
  virtual std::vector<std::string> DroverdFlags() const { return {}; }

  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "drover-agent runs containers with runc: run as root";
    listen_ = absl::StrCat("127.0.0.1:", FreeLoopbackPort());
    std::vector<std::string> droverd_flags = {"--listen", listen_, "--datastore-root", dir_.path()};
    for (const std::string& flag : DroverdFlags()) droverd_flags.push_back(flag);
    auto droverd = DroverdProcess::Start(dir_.path() + "/state", droverd_flags);
    ASSERT_TRUE(droverd.ok()) << droverd.status();
    droverd_ = *std::move(droverd);
    channel_ = TlsChannel(listen_);
    jobs_ = std::make_unique<JobClient>(channel_);
    blobs_ = v1::BlobService::NewStub(channel_);
    admin_ = v1::AdminService::NewStub(channel_);
    work_ = dir_.path() + "/agent";
    auto agent = AgentProcess::Start(listen_, "n1", work_, AgentFlags());
    ASSERT_TRUE(agent.ok()) << agent.status();
    agent_ = *std::move(agent);
    absl::Status ready = WaitForReadyNodes(*admin_, 1, absl::Seconds(30));
    ASSERT_TRUE(ready.ok()) << ready << "; the agent's log:\n" << agent_->ReadLog();
  }

  void TearDown() override {
    if (agent_ == nullptr) return;
    agent_.reset();  // SIGTERM: the agent stops and deletes what still runs
    auto listed = RunCommand({"/usr/sbin/runc", "--root", work_ + "/runc", "list", "-q"});
    ASSERT_TRUE(listed.ok());
    EXPECT_EQ(listed->out, "") << "containers left behind";
    EXPECT_THAT(ReadWholeFile("/proc/self/mountinfo"), ::testing::Not(::testing::HasSubstr(work_)))
        << "mounts left behind";
    // This agent's containers end in the hash of its work folder.
    std::string suffix = absl::StrCat(
        "-", absl::Hex(std::hash<std::string>()(work_) & 0xffffffff, absl::kZeroPad8));
    std::error_code error;
    for (const auto& entry :
         std::filesystem::recursive_directory_iterator("/sys/fs/cgroup/memory", error)) {
      std::string name = entry.path().filename().string();
      EXPECT_FALSE(name.rfind("drover-", 0) == 0 && absl::EndsWith(name, suffix))
          << "cgroup left behind: " << entry.path();
    }
  }

  // A job running `script` with /bin/sh in the host image.
  static v1::JobSpec Shell(const std::string& script, int processes = 1) {
    v1::JobSpec spec;
    spec.set_entry_script("bin/sh");
    spec.add_arguments()->set_value("-c");
    spec.add_arguments()->set_value(script);
    spec.set_process_count_per_node(processes);
    spec.mutable_resources()->set_cpus(1);
    spec.mutable_resources()->set_memory_mib(512);
    return spec;
  }

  std::string Submit(const v1::JobSpec& spec) { return jobs_->Submit(spec); }
  v1::Job WaitFor(const std::string& id, v1::JobStatus::State state,
                  absl::Duration timeout = absl::Seconds(60)) {
    return jobs_->WaitFor(id, state, timeout, [&] { return "\nagent log:\n" + agent_->ReadLog(); });
  }
  // Everything a rank wrote to a stream, as droverd stored it.
  std::string Logs(const std::string& id, int rank, v1::LogStream stream = v1::STDOUT) {
    return jobs_->Logs(id, rank, stream);
  }
  std::string Download(const std::string& digest) {
    absl::StatusOr<std::string> bytes = DownloadBlob(*blobs_, digest);
    EXPECT_TRUE(bytes.ok()) << bytes.status();
    return bytes.ok() ? *bytes : std::string();
  }
  // Registers a HOSTPATH datastore at `root` that jobs may write to.
  void PutHostpathDatastore(const std::string& name, const std::string& root) {
    absl::Status created = CreateHostpathDatastore(*admin_, name, root, /*allow_write=*/true);
    ASSERT_TRUE(created.ok()) << created;
  }

  TempDir dir_;
  std::string listen_;
  std::string work_;
  std::unique_ptr<DroverdProcess> droverd_;
  std::unique_ptr<AgentProcess> agent_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<JobClient> jobs_;
  std::unique_ptr<v1::BlobService::Stub> blobs_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
};

}  // namespace drover::testing

#endif  // DROVER_TESTS_E2E_SINGLE_NODE_FIXTURE_H_
