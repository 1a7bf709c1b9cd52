// The fixture of the rclone datastore end-to-end tests: the local cluster (local_cluster.h)
// with drover-agents on test hosts, real runc containers, and a real WebDAV server (`rclone
// serve webdav`, with a user and password) on a test host of its own, registered as an
// RCLONE datastore whose password is a secret. TearDown checks that no mount, rclone
// process or credential is left behind on any node. Tests: datastore_e2e_test.cc (mounts,
// transfers, failures, cancel) and datastore_agent_restart_e2e_test.cc (agents restarted
// under a mount). Root only.
#ifndef DROVER_TESTS_E2E_DATASTORE_FIXTURE_H_
#define DROVER_TESTS_E2E_DATASTORE_FIXTURE_H_

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/archive/sha256.h"
#include "drover/v1/admin_service.grpc.pb.h"
#include "drover/v1/job_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/local_cluster.h"

namespace drover {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

// The WebDAV server's password: never to be seen in a log or a message.
inline constexpr char kPassword[] = "pw-4c1e9a-must-not-leak";
inline constexpr int kWebdavPort = 8080;

// The mount points of rclone mounts under `dir` in a mountinfo text.
inline std::vector<std::string> RcloneMounts(const std::string& mountinfo, const std::string& dir) {
  std::vector<std::string> found;
  for (absl::string_view line : absl::StrSplit(mountinfo, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> fields = absl::StrSplit(line, ' ');
    auto dash = std::find(fields.begin(), fields.end(), "-");
    if (fields.size() < 5 || dash == fields.end() || dash + 1 == fields.end()) continue;
    if (*(dash + 1) == "fuse.rclone" && absl::StartsWith(fields[4], dir + "/")) {
      found.emplace_back(fields[4]);
    }
  }
  return found;
}

// Live (not zombie) `rclone mount` processes (as an agent starts them) whose command line
// holds `text`.
inline std::vector<pid_t> RcloneProcesses(const std::string& text) {
  std::vector<pid_t> found;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator("/proc", error)) {
    pid_t pid = atoi(entry.path().filename().c_str());
    if (pid <= 0) continue;
    std::string cmdline = testing::ReadWholeFile(entry.path().string() + "/cmdline");
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (!absl::StartsWith(cmdline, "rclone mount ") || !absl::StrContains(cmdline, text)) continue;
    std::string stat = testing::ReadWholeFile(entry.path().string() + "/stat");
    size_t paren = stat.rfind(')');
    if (paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z') {
      found.push_back(pid);
    }
  }
  return found;
}

class DatastoreE2eTest : public testing::LocalClusterTest {
 protected:
  void SetUp() override {
    LocalClusterTest::SetUp();
    if (IsSkipped()) return;
    if (access("/dev/fuse", R_OK | W_OK) != 0 || access("/usr/bin/rclone", X_OK) != 0) {
      GTEST_SKIP() << "needs /dev/fuse and rclone";
    }
    served_ = dir_.path() + "/served";
    fs::create_directories(served_ + "/data");
    std::string bytes;
    for (int i = 0; i < 300000; ++i) bytes += static_cast<char>((i * 7919) % 251);
    std::ofstream(served_ + "/data/file.bin", std::ios::binary) << bytes;
    file_sha_ = std::string(absl::StripPrefix(archive::Sha256Digest(bytes), "sha256:"));
  }

  // `agents` test hosts with a drover-agent each, one more that serves `served_` over
  // WebDAV, droverd on their bridge. With `own_mount_namespace` false the agents run in this
  // test's mount namespace (their network is still the host's): a new agent then sees what
  // a killed one mounted, as on a real node. `agent_env` ("NAME=VALUE") is added to the
  // agents' environment.
  void StartCluster(int agents, bool own_mount_namespace = true,
                    const std::vector<std::string>& agent_env = {}) {
    LocalClusterTest::StartCluster(
        {.agents = agents,
         .test_hosts = true,
         .extra_hosts = 1,
         .agent_mount_namespace = own_mount_namespace,
         .agent_flags_of = [this](int) { return agent_args_; },
         .agent_env = agent_env,
         .datastore_root = false,
         .wait_until_ready = false,
         .job_timeout = absl::Seconds(120)});
    if (HasFatalFailure()) return;
    const int storage = agents;
    std::vector<std::string> serve = hosts_->ExecPrefix(storage);
    serve.insert(serve.end(), {"/usr/bin/rclone", "serve", "webdav", served_, "--addr",
                               absl::StrCat(hosts_->address(storage), ":", kWebdavPort),
                               "--user", "drover", "--pass", kPassword});
    auto server = testing::SpawnDaemon(serve, dir_.path() + "/webdav.log");
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *server;
    ASSERT_TRUE(WaitForServer(hosts_->address(storage)))
        << testing::ReadWholeFile(dir_.path() + "/webdav.log");
    url_ = absl::StrCat("http://", hosts_->address(storage), ":", kWebdavPort);
    WaitForReadyNodes(agents);
  }

  bool WaitForServer(const std::string& address) {
    absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline) {
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_port = htons(kWebdavPort);
      inet_pton(AF_INET, address.c_str(), &addr.sin_addr);
      bool connected = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
      close(fd);
      if (connected) return true;
      absl::SleepFor(absl::Milliseconds(50));
    }
    return false;
  }

  void TearDown() override {
    if (hosts_ == nullptr) return;
    for (size_t k = 0; k < agents_.size(); ++k) {
      if (agents_[k] == nullptr) continue;
      ExpectNothingMountedOn(k);
      EXPECT_THAT(agents_[k]->ReadLog(), Not(HasSubstr(kPassword))) << "agent log of node " << k;
    }
    EXPECT_THAT(droverd_->ReadLog(), Not(HasSubstr(kPassword))) << "droverd's log";
    ExpectNothingLeftBehind();  // SIGTERM: each agent stops what still runs
    // Whatever a failed test left: its rclone processes (descendants of this test, found by
    // the test's folder in their command line), then its mounts in this namespace.
    for (pid_t pid : RcloneProcesses(dir_.path())) {
      ADD_FAILURE() << "rclone " << pid << " outlived its agent";
      kill(pid, SIGKILL);
    }
    for (const std::string& mountpoint :
         RcloneMounts(testing::ReadWholeFile("/proc/self/mountinfo"), dir_.path())) {
      ADD_FAILURE() << "mount left behind: " << mountpoint;
      (void)testing::RunCommand({"/usr/bin/fusermount3", "-uz", mountpoint});
    }
    if (server_ > 0) {
      kill(server_, SIGTERM);
      waitpid(server_, nullptr, 0);
    }
    LocalClusterTest::TearDown();
  }

  // No rclone mount under node k's work folder in its agent's mount namespace, no rclone
  // process of it, no rclone config file left in its attempt folders.
  // Files named `name` below `root`, while the agent may be removing folders there (an
  // entry that vanishes under the walk is skipped, never thrown).
  static std::vector<std::string> FilesNamed(const std::string& root, const std::string& name) {
    std::vector<std::string> found;
    std::error_code error;
    fs::recursive_directory_iterator it(root, error);
    for (; !error && it != fs::recursive_directory_iterator(); it.increment(error)) {
      if (it->path().filename() == name) found.push_back(it->path().string());
    }
    return found;
  }

  void ExpectNothingMountedOn(size_t k) {
    std::string mountinfo =
        testing::ReadWholeFile(absl::StrCat("/proc/", agents_[k]->pid(), "/mountinfo"));
    EXPECT_THAT(RcloneMounts(mountinfo, work_dirs_[k]), ::testing::IsEmpty())
        << "mounts left behind on node " << k;
    EXPECT_THAT(RcloneProcesses(work_dirs_[k]), ::testing::IsEmpty())
        << "rclone left running for node " << k;
  }

  // Polls until node k has (or has not) an rclone mount.
  bool WaitForMounts(size_t k, bool mounted, absl::Duration timeout = absl::Seconds(30)) {
    absl::Time deadline = absl::Now() + timeout;
    while (true) {
      std::string mountinfo =
          testing::ReadWholeFile(absl::StrCat("/proc/", agents_[k]->pid(), "/mountinfo"));
      if (RcloneMounts(mountinfo, work_dirs_[k]).empty() != mounted) return true;
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(50));
    }
  }

  // Registers an RCLONE datastore of the WebDAV server; `pass` is a secret.
  void CreateDatastore(const std::string& name, bool allow_write, const std::string& url = "",
                       const std::string& password = kPassword) {
    grpc::ClientContext context;
    v1::PutDatastoreRequest request;
    v1::Datastore* store = request.mutable_datastore();
    store->set_name(name);
    store->set_type(v1::Datastore::RCLONE);
    (*store->mutable_rclone_options())["type"] = "webdav";
    (*store->mutable_rclone_options())["url"] = url.empty() ? url_ : url;
    (*store->mutable_rclone_options())["user"] = "drover";
    (*store->mutable_rclone_options())["pass"] = password;
    store->add_secret_keys("pass");
    store->set_allow_write(allow_write);
    v1::Datastore created;
    grpc::Status status = admin_->PutDatastore(&context, request, &created);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(created.rclone_options().at("pass"), "***");
  }

  static v1::JobSpec Shell(const std::string& script, int nodes = 1) {
    v1::JobSpec spec;
    spec.set_entry_script("bin/sh");
    spec.add_arguments()->set_value("-c");
    spec.add_arguments()->set_value(script);
    spec.set_node_count(nodes);
    if (nodes > 1) spec.set_distributed_backend(v1::JobSpec::PYTORCH);
    spec.mutable_resources()->set_cpus(1);
    spec.mutable_resources()->set_memory_mib(512);
    return spec;
  }

  static void Ref(v1::JobSpec* spec, const std::string& datastore, const std::string& path,
                  v1::DataReference::Mode mode, bool read_write = false) {
    v1::DataReference* data = spec->add_arguments()->mutable_data();
    data->set_datastore(datastore);
    data->set_path(path);
    data->set_mode(mode);
    data->set_read_write(read_write);
  }

  // Polls until rank `rank` printed `text`.
  bool WaitForOutput(const std::string& id, int rank, const std::string& text) {
    absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (!absl::StrContains(jobs_->Logs(id, rank), text)) {
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(100));
    }
    return true;
  }

  // The job folder of `id`'s first attempt on node k (bound at /job).
  std::string JobFolder(size_t k, const std::string& id) const {
    return absl::StrCat(work_dirs_[k], "/attempts/", id, "-1/job");
  }

  // The mount table of the mount namespace `ns` (a descriptor of this process).
  static std::string MountinfoIn(int ns) {
    auto run = testing::RunCommand({"/usr/bin/nsenter",
                                    absl::StrCat("--mount=/proc/", getpid(), "/fd/", ns), "--",
                                    "cat", "/proc/self/mountinfo"});
    return run.ok() ? run->out : run.status().ToString();
  }

  // runc's status of the container of `id`'s first attempt on node k.
  std::string ContainerStatus(size_t k, const std::string& id) const {
    auto list = testing::RunCommand({testing::TestOciRuntime(), "--root", work_dirs_[k] + "/runc", "list"});
    if (!list.ok()) return "";
    for (absl::string_view line : absl::StrSplit(list->out, '\n', absl::SkipEmpty())) {
      std::vector<absl::string_view> fields = absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (fields.size() > 2 && absl::StartsWith(fields[0], absl::StrCat("drover-", id, "-1-"))) {
        return std::string(fields[2]);
      }
    }
    return "";
  }

  // A job that reads `given.txt` and writes `one.txt` through a read-write mount of
  // `scratch`, waits for /job/go, then reads both back, writes and reads `two.txt` and
  // touches /job/finished.
  std::string SubmitScratchJob() {
    fs::create_directories(served_ + "/scratch");
    std::ofstream(served_ + "/scratch/given.txt") << "given\n";
    v1::JobSpec spec = Shell(
        "cat $0/given.txt && echo one > $0/one.txt && echo wrote one; "
        "while [ ! -e /job/go ]; do sleep 0.05; done; "
        "cat $0/one.txt $0/given.txt && echo two > $0/two.txt && cat $0/two.txt && "
        "echo done && touch /job/finished");
    Ref(&spec, "dav", "scratch", v1::DataReference::MOUNT, /*read_write=*/true);
    std::string id = jobs_->Submit(spec);
    WaitFor(id, v1::JobStatus::RUNNING);
    EXPECT_TRUE(WaitForOutput(id, 0, "wrote one\n")) << jobs_->Logs(id, 0, v1::STDERR);
    return id;
  }

  // Ends node 0's agent with `signal` while the job `id` (SubmitScratchJob) runs, lets the
  // job end meanwhile when `end_while_away` says so, and starts the agent again (it stops
  // its jobs on exit); then the job completes in the same attempt, its files are on the
  // server, and nothing is left: no rclone, no mount in either agent's mount namespace, no
  // folder of the attempt.
  void RestartAgentWhileTheJobRuns(const std::string& id, int signal, bool end_while_away) {
    std::vector<pid_t> rclone = RcloneProcesses(work_dirs_[0]);
    ASSERT_THAT(rclone, ::testing::SizeIs(1));
    // The namespace the mount lives in, held as the job's container holds it.
    int old_ns = open(absl::StrCat("/proc/", agents_[0]->pid(), "/ns/mnt").c_str(),
                      O_RDONLY | O_CLOEXEC);
    ASSERT_GE(old_ns, 0);
    std::string first_log = agents_[0]->ReadLog();
    agents_[0]->Signal(signal);
    ASSERT_TRUE(agents_[0]->Wait(absl::Seconds(30)).ok());
    EXPECT_EQ(kill(rclone[0], 0), 0) << "rclone ended with the agent";
    EXPECT_THAT(RcloneMounts(MountinfoIn(old_ns), work_dirs_[0]), ::testing::SizeIs(1))
        << "the mount went with the agent";
    if (end_while_away) {
      std::ofstream(JobFolder(0, id) + "/go") << "";
      absl::Time deadline = absl::Now() + absl::Seconds(60);
      while ((!fs::exists(JobFolder(0, id) + "/finished") || ContainerStatus(0, id) != "stopped") &&
             absl::Now() < deadline) {
        absl::SleepFor(absl::Milliseconds(50));
      }
      ASSERT_EQ(ContainerStatus(0, id), "stopped") << "the job did not end while no agent ran";
    }
    agent_args_.clear();
    StartAgent(0);
    ASSERT_FALSE(HasFatalFailure());
    if (!end_while_away) {
      absl::Time deadline = absl::Now() + absl::Seconds(60);
      while (!absl::StrContains(agents_[0]->ReadLog(), "attempt_recovered") &&
             absl::Now() < deadline) {
        absl::SleepFor(absl::Milliseconds(50));
      }
      std::ofstream(JobFolder(0, id) + "/go") << "";
    }
    v1::Job job = jobs_->WaitFor(id, v1::JobStatus::COMPLETED, absl::Seconds(120), [&] {
      return absl::StrCat("\nrank 0's stderr:\n", jobs_->Logs(id, 0, v1::STDERR),
                          "\n--- first agent:\n", first_log, AgentLogs());
    });
    EXPECT_EQ(job.status().attempt(), 1) << "the job ran again";
    EXPECT_EQ(jobs_->Logs(id, 0), "given\nwrote one\none\ngiven\ntwo\ndone\n")
        << jobs_->Logs(id, 0, v1::STDERR);
    EXPECT_EQ(testing::ReadWholeFile(served_ + "/scratch/one.txt"), "one\n");
    EXPECT_EQ(testing::ReadWholeFile(served_ + "/scratch/two.txt"), "two\n");
    EXPECT_THAT(agents_[0]->ReadLog(), HasSubstr("rclone_adopted"));
    ExpectNothingMountedOn(0);
    EXPECT_THAT(RcloneMounts(MountinfoIn(old_ns), work_dirs_[0]), ::testing::IsEmpty())
        << "left mounted in the first agent's namespace";
    close(old_ns);
    absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (fs::exists(absl::StrCat(work_dirs_[0], "/attempts/", id, "-1")) && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(50));
    }
    EXPECT_FALSE(fs::exists(absl::StrCat(work_dirs_[0], "/attempts/", id, "-1")));
    EXPECT_FALSE(fs::exists(absl::StrCat(work_dirs_[0], "/mounts/", id, "-1")));
  }

  std::string ServedSha(const std::string& path) {
    absl::StatusOr<std::string> digest = archive::Sha256File(served_ + "/" + path);
    return digest.ok() ? std::string(absl::StripPrefix(*digest, "sha256:")) : digest.status().ToString();
  }

  std::string served_;
  std::string file_sha_;
  std::string url_;
  pid_t server_ = 0;
  std::vector<std::string> agent_args_;  // added to every agent's flags
};

}  // namespace drover

#endif  // DROVER_TESTS_E2E_DATASTORE_FIXTURE_H_
