#include "tests/testing/local_cluster.h"

#include <grpcpp/create_channel.h>
#include <unistd.h>

#include <filesystem>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/archive/snapshot.h"
#include "gmock/gmock.h"

namespace drover::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// How often an agent's log says it connected to droverd.
size_t Connections(const std::string& log) {
  size_t count = 0;
  for (size_t at = log.find("event=connected "); at != std::string::npos;
       at = log.find("event=connected ", at + 1)) {
    ++count;
  }
  return count;
}

}  // namespace

void LocalClusterTest::SetUp() {
  if (needs_root_ && geteuid() != 0) GTEST_SKIP() << "drover-agent runs containers with runc: run as root";
  if (start_.has_value()) StartCluster(*start_);
}

void LocalClusterTest::TearDown() {
  if (droverd_ == nullptr && agents_.empty()) return;
  StopCluster();
}

void LocalClusterTest::StopCluster() {
  ExpectNothingLeftBehind();
  droverd_.reset();
  hosts_.reset();
  work_dirs_.clear();
  stopped_logs_.clear();
  connections_before_.clear();
  checked_ = false;
}

void LocalClusterTest::StartCluster(ClusterOptions options) {
  options_ = std::move(options);
  folder_ = options_.folder.empty() ? dir_.path() : options_.folder;
  if (options_.test_hosts) {
    if (hosts_ == nullptr) {
      auto hosts = TestHosts::Create(options_.agents + options_.extra_hosts);
      ASSERT_TRUE(hosts.ok()) << hosts.status();
      hosts_ = *std::move(hosts);
    }
    listen_ = absl::StrCat(hosts_->bridge_address(), ":", FreeLoopbackPort());
  } else {
    listen_ = absl::StrCat("127.0.0.1:", FreeLoopbackPort());
  }
  if (options_.droverd_metrics) metrics_ = absl::StrCat("127.0.0.1:", FreeLoopbackPort());
  StartDroverd();
  // Without droverd there is nothing to test, and agents started anyway would outlive it.
  if (HasFatalFailure()) return;
  for (int k = 0; k < options_.agents; ++k) {
    StartAgent(AddNode());
    if (HasFatalFailure()) return;
  }
  if (options_.wait_until_ready && options_.agents > 0) WaitForReadyNodes(options_.agents);
}

void LocalClusterTest::StartDroverd(const std::vector<std::string>& more_flags) {
  std::vector<std::string> flags = {"--listen", listen_};
  if (options_.datastore_root) flags.insert(flags.end(), {"--datastore-root", dir_.path()});
  if (!metrics_.empty()) flags.insert(flags.end(), {"--metrics-listen", metrics_});
  flags.insert(flags.end(), options_.droverd_flags.begin(), options_.droverd_flags.end());
  flags.insert(flags.end(), more_flags.begin(), more_flags.end());
  auto droverd = DroverdProcess::Start(folder_ + "/state", flags, options_.droverd_files_dir,
                                       options_.tls);
  ASSERT_TRUE(droverd.ok()) << droverd.status();
  droverd_ = *std::move(droverd);
  ConnectClients();
}

absl::Duration LocalClusterTest::StopDroverd(int signal) {
  absl::Time asked = absl::Now();
  droverd_->Signal(signal);
  absl::StatusOr<int> exited = droverd_->Wait(absl::Seconds(20));
  EXPECT_TRUE(exited.ok()) << exited.status();
  absl::Duration took = absl::Now() - asked;
  absl::StrAppend(&stopped_logs_, "\n--- droverd stopped with signal ", signal, ":\n",
                  droverd_->ReadLog());
  droverd_.reset();
  return took;
}

void LocalClusterTest::RestartDroverd(int signal) {
  StopDroverd(signal);
  StartDroverd();
}

void LocalClusterTest::ConnectClients() {
  // A connection of its own: one shared with the channel to a killed droverd would fail
  // once.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  channel_ = grpc::CreateCustomChannel(
      listen_,
      TlsCredentials(options_.tls == DroverdProcess::Tls::kTestCa ? "" : droverd_->ca_file()),
      args);
  jobs_ = std::make_unique<JobClient>(channel_);
  blobs_ = v1::BlobService::NewStub(channel_);
  admin_ = v1::AdminService::NewStub(channel_);
}

int LocalClusterTest::AddNode() {
  agents_.emplace_back();
  work_dirs_.push_back(absl::StrCat(folder_, "/agent-", work_dirs_.size()));
  return static_cast<int>(work_dirs_.size()) - 1;
}

std::string LocalClusterTest::NodeName(int k) const {
  return hosts_ != nullptr ? hosts_->name(k) : absl::StrCat("n", k + 1);
}

void LocalClusterTest::StartAgent(int k, const std::vector<std::string>& more_flags) {
  if (agents_[k] != nullptr) connections_before_[k] = Connections(agents_[k]->ReadLog());
  std::vector<std::string> prefix;
  std::vector<std::string> flags;
  if (hosts_ != nullptr) {
    prefix = options_.agent_mount_namespace
                 ? hosts_->ExecPrefix(k)
                 : std::vector<std::string>{"/usr/bin/nsenter",
                                            absl::StrCat("--net=/run/netns/", hosts_->name(k)),
                                            "--"};
    flags = {"--address", hosts_->address(k), "--cpus", "2", "--memory", "4Gi"};
  }
  std::vector<std::string> env = options_.agent_env;
  if (auto armed = failpoints_.find(k); armed != failpoints_.end() && !armed->second.empty()) {
    env.push_back("DROVER_FAILPOINTS=" + armed->second);
  }
  if (!env.empty()) {
    prefix.push_back("/usr/bin/env");  // execs the agent in place: its pid stays
    prefix.insert(prefix.end(), env.begin(), env.end());
  }
  if (options_.datastore_root) flags.insert(flags.end(), {"--datastore-root", dir_.path()});
  flags.insert(flags.end(), options_.agent_flags.begin(), options_.agent_flags.end());
  if (options_.agent_flags_of != nullptr) {
    for (std::string& flag : options_.agent_flags_of(k)) flags.push_back(std::move(flag));
  }
  flags.insert(flags.end(), more_flags.begin(), more_flags.end());
  auto agent = AgentProcess::Start(listen_, NodeName(k), work_dirs_[k], flags, prefix);
  ASSERT_TRUE(agent.ok()) << agent.status();
  agents_[k] = *std::move(agent);
}

absl::Duration LocalClusterTest::StopAgent(int k, int signal) {
  absl::Time asked = absl::Now();
  agents_[k]->Signal(signal);
  absl::StatusOr<int> exited = agents_[k]->Wait(absl::Seconds(20));
  EXPECT_TRUE(exited.ok()) << exited.status();
  absl::Duration took = absl::Now() - asked;
  absl::StrAppend(&stopped_logs_, "\n--- agent ", NodeName(k), " stopped with signal ", signal,
                  ":\n", agents_[k]->ReadLog());
  return took;
}

void LocalClusterTest::WaitForReadyNodes(int count, absl::Duration timeout) {
  absl::Status ready = testing::WaitForReadyNodes(*admin_, count, timeout);
  ASSERT_TRUE(ready.ok()) << ready << AgentLogs();
}

void LocalClusterTest::WaitForAgentConnected(int k) {
  auto connections = [&] { return Connections(agents_[k]->ReadLog()); };
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (connections() <= connections_before_[k] && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_GT(connections(), connections_before_[k]) << "the agent never connected" << AgentLogs();
}

std::string LocalClusterTest::AgentLogs() const {
  std::string out = stopped_logs_;
  if (droverd_ != nullptr) absl::StrAppend(&out, "\n--- droverd:\n", droverd_->ReadLog());
  for (size_t k = 0; k < agents_.size(); ++k) {
    if (agents_[k] == nullptr) continue;
    absl::StrAppend(&out, "\n--- agent ", NodeName(static_cast<int>(k)), " (",
                    agents_[k]->Describe(), "):\n", agents_[k]->ReadLog());
  }
  return out;
}

v1::JobSpec LocalClusterTest::Shell(const std::string& script, int processes) {
  v1::JobSpec spec;
  spec.set_process_count_per_node(processes);
  spec.mutable_resources()->set_cpus(1);
  spec.mutable_resources()->set_memory_mib(512);
  return Shell(std::move(spec), script);
}

v1::JobSpec LocalClusterTest::Shell(v1::JobSpec spec, const std::string& command) {
  spec.set_entry_script("bin/sh");
  spec.add_arguments()->set_value("-c");
  spec.add_arguments()->set_value(command);
  return spec;
}

v1::Job LocalClusterTest::WaitFor(const std::string& id, v1::JobStatus::State state,
                                  absl::Duration timeout) {
  if (timeout == absl::ZeroDuration()) timeout = options_.job_timeout;
  return jobs_->WaitFor(id, state, timeout, [&] {
    return absl::StrCat("\nrank 0's stderr:\n", Logs(id, 0, v1::STDERR), AgentLogs());
  });
}

std::string LocalClusterTest::Download(const std::string& digest) {
  absl::StatusOr<std::string> bytes = DownloadBlob(*blobs_, digest);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.ok() ? *bytes : std::string();
}

std::string LocalClusterTest::UploadFile(const std::string& path) {
  absl::StatusOr<std::string> digest = UploadBlobFile(*blobs_, path);
  EXPECT_TRUE(digest.ok()) << digest.status();
  return digest.ok() ? *digest : std::string();
}

std::string LocalClusterTest::Snapshot(const std::string& folder) {
  auto snapshot = archive::BuildSnapshot(
      folder, {.output_path = absl::StrCat(dir_.path(), "/snapshot-", ++snapshots_, ".tar")});
  EXPECT_TRUE(snapshot.ok()) << snapshot.status();
  if (!snapshot.ok()) return "";
  return UploadFile(snapshot->tar_path);
}

void LocalClusterTest::Cancel(const std::string& id) {
  grpc::ClientContext context;
  v1::CancelJobRequest request;
  request.set_job_id(id);
  v1::Job job;
  grpc::Status status = jobs_->stub().CancelJob(&context, request, &job);
  ASSERT_TRUE(status.ok()) << id << ": " << status.error_message();
}

void LocalClusterTest::PutHostpathDatastore(const std::string& name, const std::string& root) {
  absl::Status created = CreateHostpathDatastore(*admin_, name, root, /*allow_write=*/true);
  ASSERT_TRUE(created.ok()) << created;
}

CommandResult LocalClusterTest::RunCli(const std::vector<std::string>& args,
                                       const std::vector<std::string>& env,
                                       const std::string& input) {
  std::vector<std::string> argv = {DROVER_CLI_PATH, "--server", listen_, "--ca",
                                   droverd_->ca_file()};
  argv.insert(argv.end(), args.begin(), args.end());
  absl::StatusOr<CommandResult> result = RunCommand(argv, env, input);
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? *result : CommandResult{};
}

std::string LocalClusterTest::Containers(const std::string& work) {
  auto listed = RunCommand({testing::TestOciRuntime(), "--root", work + "/runc", "list", "-q"});
  return listed.ok() ? listed->out : "runc list failed: " + std::string(listed.status().message());
}

void LocalClusterTest::ExpectNothingLeftBehind() {
  if (checked_) return;
  checked_ = true;
  for (auto& agent : agents_) {
    if (agent != nullptr) agent->Signal(SIGCONT);  // a test may have stopped one
  }
  for (size_t k = 0; k < agents_.size(); ++k) {
    if (agents_[k] == nullptr) continue;
    if (hosts_ != nullptr && options_.agent_mount_namespace) {
      // The agent mounts in its own mount namespace: look before it goes.
      std::string mounts =
          ReadWholeFile(absl::StrCat("/proc/", agents_[k]->pid(), "/mountinfo"));
      EXPECT_THAT(mounts, Not(HasSubstr(work_dirs_[k] + "/attempts")))
          << "mounts left behind on " << NodeName(static_cast<int>(k));
    }
    // SIGTERM: the agent stops what still runs (--jobs-on-exit stop).
    agents_[k]->Signal(SIGTERM);
    absl::StatusOr<int> exited = agents_[k]->Wait(absl::Seconds(20));
    EXPECT_TRUE(exited.ok() || absl::IsFailedPrecondition(exited.status())) << exited.status();
  }
  agents_.clear();
  std::string mounts = ReadWholeFile("/proc/self/mountinfo");
  for (const std::string& work : work_dirs_) {
    EXPECT_THAT(mounts, Not(HasSubstr(work))) << "mounts left behind";
    std::string left = Containers(work);
    EXPECT_EQ(left, "") << "containers left behind in " << work;
    // A container a SIGKILLed agent left: gone with the test all the same.
    for (absl::string_view id : absl::StrSplit(left, '\n', absl::SkipEmpty())) {
      (void)RunCommand({testing::TestOciRuntime(), "--root", work + "/runc", "delete", "--force",
                        std::string(id)});
    }
    // An agent's containers end in the hash of its work folder (other tests' agents may run
    // beside it).
    std::string suffix = absl::StrCat(
        "-", absl::Hex(std::hash<std::string>()(work) & 0xffffffff, absl::kZeroPad8));
    // Other tests' agents create and remove cgroups beside this walk: an entry that vanishes
    // under it ends the walk with an error (never an exception), and it starts again.
    std::vector<std::string> cgroups;
    std::error_code error;
    for (int walk = 0; walk < 5; ++walk) {
      cgroups.clear();
      error.clear();
      std::filesystem::recursive_directory_iterator it("/sys/fs/cgroup/memory", error);
      for (; !error && it != std::filesystem::recursive_directory_iterator();
           it.increment(error)) {
        std::string name = it->path().filename().string();
        if (name.rfind("drover-", 0) == 0 && absl::EndsWith(name, suffix)) {
          cgroups.push_back(it->path().string());
        }
      }
      if (!error) break;
    }
    EXPECT_FALSE(error) << "/sys/fs/cgroup/memory changed under 5 walks: " << error.message();
    EXPECT_THAT(cgroups, ::testing::IsEmpty()) << "cgroups left behind";
  }
}

}  // namespace drover::testing
