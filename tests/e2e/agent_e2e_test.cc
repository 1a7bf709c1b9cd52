// Jobs end to end on this machine: the real droverd and drover-agent as child processes,
// real runc containers (the host image), real processes. Runs as root. Every test checks
// that nothing is left behind: no container in the agent's runc root, no mount under its
// work folder, no cgroup.
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/archive/safe_extract.h"
#include "common/archive/sha256.h"
#include "common/archive/snapshot.h"
#include "drover/v1/admin_service.grpc.pb.h"
#include "drover/v1/blob.grpc.pb.h"
#include "drover/v1/job_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "agent/runtime/oci_runtime_choice.h"
#include "agent/runtime/oci_runtime_version.h"
#include "tests/testing/cluster.h"
#include "tests/testing/local_cluster.h"
#include "tests/testing/subprocess.h"

namespace drover {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

std::string ReadFile(const std::string& path) { return testing::ReadWholeFile(path); }

class AgentE2eTest : public testing::LocalClusterTest {
 protected:
  void SetUp() override {
    LocalClusterTest::SetUp();
    if (IsSkipped()) return;
    StartCluster({.agent_flags = {"--metrics-interval", "200ms", "--metrics-listen", agent_metrics_},
                  .droverd_metrics = true});
  }

  // Where the agent serves /metrics (droverd: metrics_).
  const std::string agent_metrics_ = absl::StrCat("127.0.0.1:", testing::FreeLoopbackPort());
};

TEST_F(AgentE2eTest, JobCompletesWithEveryRanksOutputAndTheEnvironmentContract) {
  std::string id = Submit(Shell(
      "echo rank $DROVER_RANK local $DROVER_LOCAL_RANK of $DROVER_WORLD_SIZE job $DROVER_JOB_ID "
      "attempt $DROVER_ATTEMPT out $DROVER_OUTPUT_DIR unbuffered $PYTHONUNBUFFERED; "
      "echo to stderr >&2",
      2));
  v1::Job job = WaitFor(id, v1::JobStatus::COMPLETED);
  ASSERT_EQ(job.status().exits_size(), 2);
  EXPECT_EQ(job.status().exits(0).exit_code(), 0);
  EXPECT_EQ(job.status().exits(1).exit_code(), 0);
  EXPECT_EQ(Logs(id, 0), absl::StrCat("rank 0 local 0 of 2 job ", id,
                                      " attempt 1 out /job/outputs unbuffered 1\n"));
  EXPECT_EQ(Logs(id, 1), absl::StrCat("rank 1 local 1 of 2 job ", id,
                                      " attempt 1 out /job/outputs unbuffered 1\n"));
  EXPECT_EQ(Logs(id, 1, v1::STDERR), "to stderr\n");
}

TEST_F(AgentE2eTest, AnEndedAttemptsRecordGoesOnceDroverdStoredItsEnd) {
  // The agent keeps an ended attempt's record (and last report) until droverd says it stored
  // what the end decided (EndsStored), not for its 10-minute fallback.
  std::string completed = Submit(Shell("true"));
  std::string failed = Submit(Shell("exit 3"));
  WaitFor(completed, v1::JobStatus::COMPLETED);
  WaitFor(failed, v1::JobStatus::FAILED);
  for (const std::string& id : {completed, failed}) {
    const std::string record = absl::StrCat(work(), "/records/", id, "-1");
    absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (fs::exists(record) && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
    EXPECT_FALSE(fs::exists(record)) << record << " is still there";
  }
}

TEST_F(AgentE2eTest, ABareCommandNameWithoutSnapshotIsFoundThroughTheImagesPath) {
  // As `sbatch --wrap echo` would: `drover submit --image host echo hello`.
  v1::JobSpec echo = Shell("unused");
  echo.set_entry_script("echo");
  echo.clear_arguments();
  echo.add_arguments()->set_value("hello");
  std::string found = Submit(echo);
  v1::JobSpec missing = echo;
  missing.set_entry_script("drover-no-such-command");
  std::string not_found = Submit(missing);
  v1::JobSpec path = echo;
  path.set_entry_script("bin/echo");  // a path from the image's root, as before
  std::string by_path = Submit(path);
  WaitFor(found, v1::JobStatus::COMPLETED);
  EXPECT_EQ(Logs(found, 0), "hello\n");
  WaitFor(by_path, v1::JobStatus::COMPLETED);
  EXPECT_EQ(Logs(by_path, 0), "hello\n");
  v1::Job failed = WaitFor(not_found, v1::JobStatus::FAILED);
  ASSERT_EQ(failed.status().exits_size(), 1);
  EXPECT_EQ(failed.status().exits(0).exit_code(), 127) << "the shell's 'command not found'";
}

TEST_F(AgentE2eTest, TheJobsExperimentAndTagsReachTheScriptsRunContext) {
  v1::JobSpec spec = Shell(
      "echo \"$DROVER_EXPERIMENT $DROVER_TAGS\"; python3 -c 'from drover import Run; "
      "r = Run.get_context(); print(r.id, r.experiment.name, sorted(r.get_tags().items()))'");
  spec.set_experiment("mnist");
  (*spec.mutable_tags())["lr"] = "0.1";
  (*spec.mutable_tags())["note"] = "say \"hi\" $HOME";  // quotes and a $ stay as they are
  std::string id = Submit(spec);
  WaitFor(id, v1::JobStatus::COMPLETED);
  EXPECT_EQ(Logs(id, 0),
            absl::StrCat("mnist {\"lr\":\"0.1\",\"note\":\"say \\\"hi\\\" $HOME\"}\n", id,
                         " mnist [('lr', '0.1'), ('note', 'say \"hi\" $HOME')]\n"));
}

TEST_F(AgentE2eTest, FailingScriptEndsFailedWithItsExitCode) {
  std::string id = Submit(Shell("echo about to fail; exit 3"));
  v1::Job job = WaitFor(id, v1::JobStatus::FAILED);
  EXPECT_EQ(job.status().cause(), v1::JobStatus::PROCESS_FAILED);
  ASSERT_EQ(job.status().exits_size(), 1);
  EXPECT_EQ(job.status().exits(0).exit_code(), 3);
  EXPECT_EQ(job.status().message(), "rank 0 on n1 exited with code 3");
  EXPECT_EQ(Logs(id, 0), "about to fail\n");
}

TEST_F(AgentE2eTest, OneFailingRankStopsTheOthers) {
  std::string id = Submit(Shell("if [ $DROVER_RANK = 1 ]; then exit 7; fi; exec sleep 300", 2));
  v1::Job job = WaitFor(id, v1::JobStatus::FAILED, absl::Seconds(40));
  EXPECT_EQ(job.status().message(), "rank 1 on n1 exited with code 7");
  ASSERT_EQ(job.status().exits_size(), 2);
  EXPECT_EQ(job.status().exits(0).signal(), SIGTERM);
}

TEST_F(AgentE2eTest, CancelStopsASleepingJob) {
  std::string id = Submit(Shell("echo started; exec sleep 300"));
  WaitFor(id, v1::JobStatus::RUNNING);
  grpc::ClientContext context;
  v1::CancelJobRequest request;
  request.set_job_id(id);
  v1::Job job;
  ASSERT_TRUE(jobs_->stub().CancelJob(&context, request, &job).ok());
  job = WaitFor(id, v1::JobStatus::CANCELED, absl::Seconds(30));
  EXPECT_EQ(job.status().cause(), v1::JobStatus::CANCELED_BY_USER);
  ASSERT_EQ(job.status().exits_size(), 1);
  EXPECT_EQ(job.status().exits(0).signal(), SIGTERM);
}

// The agent's shipping loop sleeps while the job is quiet and is woken by the job's writes
// (inotify on its log folder): a line written after seconds of silence still reaches droverd
// at once, not at a timer's next round. Each line carries the time it was written (the
// container shares the machine's clock).
TEST_F(AgentE2eTest, ALineAfterSilenceReachesDroverdPromptly) {
  std::string id = Submit(
      Shell("for i in 1 2 3 4 5; do sleep 1.3; date +%s.%N; done; echo done"));
  WaitFor(id, v1::JobStatus::RUNNING);
  std::vector<double> latencies;
  size_t seen = 0;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (latencies.size() < 5 && absl::Now() < deadline) {
    std::vector<std::string> lines = absl::StrSplit(jobs_->Logs(id, 0), '\n', absl::SkipEmpty());
    const double now = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
    for (; seen < lines.size() && lines[seen] != "done"; ++seen) {
      double written = 0;
      ASSERT_TRUE(absl::SimpleAtod(lines[seen], &written)) << lines[seen];
      latencies.push_back(now - written);
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_EQ(latencies.size(), 5u);
  std::sort(latencies.begin(), latencies.end());
  // The old timer took up to 50 ms; the safety tick alone would take up to a second.
  EXPECT_LT(latencies[2], 0.5) << "median latency, s";
  EXPECT_LT(latencies.back(), 2.0) << "slowest line, s";
  WaitFor(id, v1::JobStatus::COMPLETED);
}

TEST_F(AgentE2eTest, MaxRunDurationEndsTheJobAsTimeout) {
  v1::JobSpec spec = Shell("exec sleep 300");
  spec.mutable_max_run_duration()->set_seconds(1);
  std::string id = Submit(spec);
  v1::Job job = WaitFor(id, v1::JobStatus::FAILED, absl::Seconds(30));
  EXPECT_EQ(job.status().cause(), v1::JobStatus::TIMEOUT);
  EXPECT_THAT(job.status().message(), HasSubstr("max_run_duration 1s exceeded"));
}

TEST_F(AgentE2eTest, MemoryHogEndsOutOfMemory) {
  v1::JobSpec spec = Shell("exec /usr/bin/python3 -c \"x = b'x' * (400 << 20); print(len(x))\"");
  spec.mutable_resources()->set_memory_mib(64);
  std::string id = Submit(spec);
  v1::Job job = WaitFor(id, v1::JobStatus::FAILED);
  EXPECT_EQ(job.status().cause(), v1::JobStatus::OUT_OF_MEMORY);
  ASSERT_EQ(job.status().exits_size(), 1);
  EXPECT_TRUE(job.status().exits(0).oom_killed());
}

// `drover-agent --runc auto` (the default outside the tests, which name their runtime):
// the agent runs crun where it is installed and can apply a job's limits on this node's
// cgroups, else runc, and says which and why in one log line; jobs run under it with their
// limits on.
class AutoRuntimeE2eTest : public testing::LocalClusterTest {
 protected:
  AutoRuntimeE2eTest() : LocalClusterTest(testing::ClusterOptions{.agent_flags = {"--runc", "auto"}}) {}
};

TEST_F(AutoRuntimeE2eTest, TheAgentSaysWhichRuntimeItChoseAndWhyAndJobsRunWithTheirLimits) {
  // What this node offers, probed as the agent does: on this machine (crun 1.8.1, v1
  // controllers and a cgroup2 holding hugetlb) crun with cgroup2 hidden.
  agent::OciRuntimeChoice expected = agent::ChooseOciRuntime(agent::ProbeOciRuntimes(
      work() + "/runc", [](const std::vector<std::string>& argv) -> absl::StatusOr<std::string> {
        absl::StatusOr<testing::CommandResult> result = testing::RunCommand(argv);
        if (!result.ok()) return result.status();
        if (result->exit_code != 0) return absl::UnavailableError(result->err);
        return result->out;
      }));
  std::string logs = AgentLogs();
  EXPECT_THAT(logs, HasSubstr(absl::StrCat(" event=oci_runtime runtime=\"",
                                           fs::path(expected.path).filename().string(), " ")));
  EXPECT_THAT(logs, HasSubstr(absl::StrCat(" path=", expected.path, " chosen=auto reason=")));
  EXPECT_THAT(logs, HasSubstr(expected.hide_cgroup2
                                  ? absl::StrCat(" hidden=", agent::kHybridCgroup2Mount)
                                  : std::string(" hidden=-")));

  // `drover node show NODE` shows it too.
  absl::StatusOr<testing::CommandResult> version = testing::RunCommand(
      {expected.path == "runc" ? "/usr/sbin/runc" : expected.path, "--version"});
  ASSERT_TRUE(version.ok()) << version.status();
  testing::CommandResult node = RunCli({"node", "show", NodeName(0)});
  EXPECT_THAT(node.out, HasSubstr(absl::StrCat("container runtime: ",
                                               agent::OciRuntimeDescription(version->out), "\n")))
      << node.out << node.err;

  std::string id = Submit(Shell("echo ran under $(cat /proc/1/comm)"));
  WaitFor(id, v1::JobStatus::COMPLETED);
  EXPECT_EQ(Logs(id, 0), "ran under init\n");  // drover-init, at /run/drover/init

  v1::JobSpec hog = Shell("exec /usr/bin/python3 -c \"x = b'x' * (400 << 20); print(len(x))\"");
  hog.mutable_resources()->set_memory_mib(64);
  v1::Job job = WaitFor(Submit(hog), v1::JobStatus::FAILED);
  EXPECT_EQ(job.status().cause(), v1::JobStatus::OUT_OF_MEMORY);

  // No container of either runtime stays once the jobs ended (the fixture's own check asks
  // the tests' runtime only).
  std::string left;
  for (absl::Time deadline = absl::Now() + absl::Seconds(20);;) {
    left.clear();
    for (const char* runtime : {"/usr/sbin/runc", "/usr/bin/crun"}) {
      if (access(runtime, X_OK) != 0) continue;
      absl::StatusOr<testing::CommandResult> listed =
          testing::RunCommand({runtime, "--root", work() + "/runc", "list", "-q"});
      if (listed.ok()) left += listed->out;
    }
    if (left.empty() || absl::Now() > deadline) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(left, "");
}

TEST_F(AgentE2eTest, SnapshotCodeRunsAndItsOutputsComeBackByteIdentical) {
  std::string source = dir_.path() + "/project";
  fs::create_directories(source + "/lib");
  std::ofstream(source + "/train.py") <<
      "import hashlib, os, sys\n"
      "sys.path.insert(0, 'lib')\n"
      "import helper\n"
      "data = bytes((i * 31 + 7) % 256 for i in range(3 * 1024 * 1024 + 5))\n"
      "with open(os.path.join(os.environ['DROVER_OUTPUT_DIR'], 'model.bin'), 'wb') as f:\n"
      "    f.write(data)\n"
      "print(helper.greeting(), sys.argv[1:], hashlib.sha256(data).hexdigest())\n";
  std::ofstream(source + "/lib/helper.py") << "def greeting():\n    return 'hello from the snapshot'\n";
  std::ofstream(source + "/.gitignore") << "*.ckpt\n";
  std::ofstream(source + "/big.ckpt") << "ignored";
  auto snapshot = archive::BuildSnapshot(source, {.output_path = dir_.path() + "/code.tar"});
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  std::string digest = UploadFile(snapshot->tar_path);
  EXPECT_EQ(digest, snapshot->digest);

  v1::JobSpec spec;
  spec.set_source_snapshot(digest);
  spec.set_entry_script("train.py");
  spec.add_arguments()->set_value("--epochs");
  spec.add_arguments()->set_value("2");
  spec.mutable_resources()->set_memory_mib(512);
  std::string id = Submit(spec);
  v1::Job job = WaitFor(id, v1::JobStatus::COMPLETED);
  std::string printed = Logs(id, 0);
  EXPECT_THAT(printed, HasSubstr("hello from the snapshot ['--epochs', '2'] "));
  std::string expected_hash = printed.substr(printed.rfind(' ') + 1, 64);

  ASSERT_FALSE(job.status().outputs_digest().empty());
  std::string tar = dir_.path() + "/outputs.tar";
  std::ofstream(tar, std::ios::binary) << Download(job.status().outputs_digest());
  ASSERT_TRUE(archive::ExtractTar(tar, dir_.path() + "/outputs",
                                  {.expected_digest = job.status().outputs_digest()})
                  .ok());
  std::string model = ReadFile(dir_.path() + "/outputs/model.bin");
  EXPECT_EQ(model.size(), 3u * 1024 * 1024 + 5);
  EXPECT_EQ(archive::Sha256Digest(model), "sha256:" + expected_hash);
}

// Hostpath datastores: a read-only mount can be read and not written, a read-write one
// (where the datastore allows it) takes writes, DOWNLOAD copies in before the start and
// UPLOAD copies back at the end; the mounted root is in DROVER_DATASTORE_<NAME>.
TEST_F(AgentE2eTest, HostpathDatastoreIsMountedDownloadedAndUploaded) {
  std::string root = dir_.path() + "/datasets";
  fs::create_directories(root + "/mnist");
  std::ofstream(root + "/mnist/train.csv") << "1,2,3\n";
  absl::Status created = testing::CreateHostpathDatastore(*admin_, "data-sets", root, true);
  ASSERT_TRUE(created.ok()) << created;
  auto ref = [](v1::JobSpec* spec, const std::string& path, v1::DataReference::Mode mode,
                bool read_write = false) {
    v1::DataReference* data = spec->add_arguments()->mutable_data();
    data->set_datastore("data-sets");
    data->set_path(path);
    data->set_mode(mode);
    data->set_read_write(read_write);
  };

  // Read-only mount ($0), a download ($1) and an upload folder ($2).
  v1::JobSpec spec = Shell(
      "cat $0/train.csv; echo root=$DROVER_DATASTORE_DATA_SETS; "
      "touch $0/new 2>/dev/null && echo wrote || echo refused; "
      "cat $1; echo local > $1; "
      "echo result > $2/result.txt");
  ref(&spec, "mnist", v1::DataReference::MOUNT);
  ref(&spec, "mnist/train.csv", v1::DataReference::DOWNLOAD);
  ref(&spec, "runs/1", v1::DataReference::UPLOAD);
  std::string id = Submit(spec);
  WaitFor(id, v1::JobStatus::COMPLETED);
  EXPECT_EQ(Logs(id, 0), "1,2,3\nroot=/datastores/data-sets\nrefused\n1,2,3\n")
      << Logs(id, 0, v1::STDERR);
  EXPECT_FALSE(fs::exists(root + "/mnist/new")) << "a read-only mount took a write";
  EXPECT_EQ(testing::ReadWholeFile(root + "/mnist/train.csv"), "1,2,3\n")
      << "the downloaded copy is the job's own";
  EXPECT_EQ(testing::ReadWholeFile(root + "/runs/1/result.txt"), "result\n");

  // Read-write where asked for and allowed, and the folder lets the job's root write.
  testing::GiveToJobContainers(root + "/mnist");
  v1::JobSpec writer = Shell("echo written > $0/new.txt");
  ref(&writer, "mnist", v1::DataReference::MOUNT, /*read_write=*/true);
  std::string written = Submit(writer);
  WaitFor(written, v1::JobStatus::COMPLETED);
  EXPECT_EQ(testing::ReadWholeFile(root + "/mnist/new.txt"), "written\n");
}

TEST_F(AgentE2eTest, PytorchExampleTrainsAndItsModelComesBack) {
  auto snapshot = archive::BuildSnapshot(DROVER_SOURCE_DIR "/examples/pytorch-single-node",
                                         {.output_path = dir_.path() + "/example.tar"});
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  v1::JobSpec spec;
  spec.set_source_snapshot(UploadFile(snapshot->tar_path));
  spec.set_entry_script("train.py");
  spec.add_arguments()->set_value("--epochs");
  spec.add_arguments()->set_value("2");
  spec.mutable_resources()->set_memory_mib(2048);
  std::string id = Submit(spec);
  v1::Job job = WaitFor(id, v1::JobStatus::COMPLETED, absl::Seconds(120));
  std::string printed = Logs(id, 0);
  EXPECT_THAT(printed, HasSubstr("rank 0/1: training on"));
  EXPECT_THAT(printed, HasSubstr("epoch 2: loss="));
  EXPECT_THAT(printed, HasSubstr("saved model.pt and metrics.json to /job/outputs"));
  std::string tar = dir_.path() + "/outputs.tar";
  std::ofstream(tar, std::ios::binary) << Download(job.status().outputs_digest());
  ASSERT_TRUE(archive::ExtractTar(tar, dir_.path() + "/outputs").ok());
  EXPECT_TRUE(fs::exists(dir_.path() + "/outputs/model.pt"));
  EXPECT_THAT(ReadFile(dir_.path() + "/outputs/metrics.json"), HasSubstr("\"epoch\": 2"));
  // The example logs its loss and accuracy per epoch with the drover module.
  grpc::ClientContext context;
  v1::GetMetricsRequest request;
  request.set_job_id(id);
  request.add_sources(v1::MetricSeries::USER);
  v1::GetMetricsResponse metrics;
  ASSERT_TRUE(jobs_->stub().GetMetrics(&context, request, &metrics).ok());
  std::map<std::string, std::vector<int64_t>> steps;
  for (const v1::MetricSeries& series : metrics.series()) {
    steps[series.name()].assign(series.steps().begin(), series.steps().end());
  }
  EXPECT_EQ(steps["loss"], (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(steps["accuracy"], (std::vector<int64_t>{1, 2}));
}

TEST_F(AgentE2eTest, HostileSnapshotIsRefusedAndTheJobFailsToLaunch) {
  // A tar whose single entry climbs out of the extraction folder.
  std::string tar(1024 * 3, '\0');
  std::string name = "../escaped.txt";
  std::copy(name.begin(), name.end(), tar.begin());
  auto octal = [&tar](size_t at, size_t width, uint64_t value) {
    std::string text = absl::StrCat(absl::Dec(0, absl::kNoPad));
    char buffer[32];
    snprintf(buffer, sizeof buffer, "%0*llo", static_cast<int>(width - 1),
             static_cast<unsigned long long>(value));
    std::copy(buffer, buffer + width - 1, tar.begin() + at);
  };
  octal(100, 8, 0644);
  octal(108, 8, 0);
  octal(116, 8, 0);
  octal(124, 12, 5);
  octal(136, 12, 0);
  tar[156] = '0';
  std::copy_n("ustar", 6, tar.begin() + 257);
  std::copy_n("00", 2, tar.begin() + 263);
  std::fill(tar.begin() + 148, tar.begin() + 156, ' ');
  unsigned sum = 0;
  for (int i = 0; i < 512; ++i) sum += static_cast<unsigned char>(tar[i]);
  octal(148, 7, sum);
  std::copy_n("evil\n", 5, tar.begin() + 512);
  std::string path = dir_.path() + "/hostile.tar";
  std::ofstream(path, std::ios::binary) << tar;
  std::string digest = UploadFile(path);

  v1::JobSpec spec;
  spec.set_source_snapshot(digest);
  spec.set_entry_script("train.py");
  std::string id = Submit(spec);
  v1::Job job = WaitFor(id, v1::JobStatus::FAILED);
  EXPECT_EQ(job.status().cause(), v1::JobStatus::LAUNCH_FAILED);
  EXPECT_THAT(job.status().message(), HasSubstr("../escaped.txt"));
  EXPECT_FALSE(fs::exists(work() + "/snapshots/escaped.txt"));
}

TEST_F(AgentE2eTest, TensOfMegabytesOfLogsArriveCompleteAcrossADroverdRestart) {
  // 400,000 numbered lines (about 24 MB) written over a few seconds.
  std::string id = Submit(Shell(
      "i=0; while [ $i -lt 400 ]; do seq $((i*1000)) $((i*1000+999)) | "
      "sed 's/$/ the quick brown fox jumps over the lazy dog/'; i=$((i+1)); done"));
  WaitFor(id, v1::JobStatus::RUNNING);
  absl::SleepFor(absl::Milliseconds(300));
  RestartDroverd(SIGKILL);  // cuts the agent's stream mid-way
  v1::Job job = WaitFor(id, v1::JobStatus::COMPLETED, absl::Seconds(120));
  std::string expected;
  for (int n = 0; n < 400000; ++n) {
    absl::StrAppend(&expected, n, " the quick brown fox jumps over the lazy dog\n");
  }
  std::string stored = Logs(id, 0);
  EXPECT_EQ(stored.size(), expected.size());
  EXPECT_TRUE(stored == expected) << "the stored log differs from what the job printed";
}

// Scrapes http://`endpoint`/metrics and parses the page with Prometheus' own Python parser
// (python3-prometheus-client): every sample as "name{label=value,...}" -> value, labels
// sorted. A page the parser refuses fails the test.
std::map<std::string, double> Scrape(const std::string& endpoint) {
  std::string script = absl::StrCat(
      "import urllib.request\n"
      "from prometheus_client.parser import text_string_to_metric_families\n"
      "page = urllib.request.urlopen('http://", endpoint, "/metrics').read().decode()\n"
      "for family in text_string_to_metric_families(page):\n"
      "    for s in family.samples:\n"
      "        labels = ','.join(f'{k}={v}' for k, v in sorted(s.labels.items()))\n"
      "        print(f'{s.name}{{{labels}}} {s.value!r}')\n");
  auto scraped = testing::RunCommand({"/usr/bin/python3", "-c", script});
  EXPECT_TRUE(scraped.ok()) << scraped.status();
  std::map<std::string, double> samples;
  if (!scraped.ok()) return samples;
  EXPECT_EQ(scraped->exit_code, 0) << scraped->err;
  for (absl::string_view line : absl::StrSplit(scraped->out, '\n', absl::SkipEmpty())) {
    size_t space = line.rfind(' ');
    samples[std::string(line.substr(0, space))] = std::stod(std::string(line.substr(space + 1)));
  }
  return samples;
}

TEST_F(AgentE2eTest, DaemonMetricsParseAsPrometheusTextAndCountTheJob) {
  // The gauges of nodes and jobs follow droverd's state within a second.
  std::map<std::string, double> before;
  absl::Time deadline = absl::Now() + absl::Seconds(5);
  do {
    before = Scrape(metrics_);
  } while (before["drover_nodes{state=READY}"] != 1 && absl::Now() < deadline &&
           (absl::SleepFor(absl::Milliseconds(100)), true));
  EXPECT_EQ(before["drover_nodes{state=READY}"], 1);
  std::string id = Submit(Shell("echo hello; echo oops >&2"));
  WaitFor(id, v1::JobStatus::COMPLETED);
  std::map<std::string, double> after = Scrape(metrics_);
  EXPECT_EQ(after["drover_jobs_submitted_total{}"] - before["drover_jobs_submitted_total{}"], 1);
  EXPECT_EQ(after["drover_attempts_placed_total{}"] - before["drover_attempts_placed_total{}"], 1);
  EXPECT_EQ(after["drover_jobs_finished_total{state=COMPLETED}"], 1);
  EXPECT_GE(after["drover_rpcs_total{code=OK,method=JobService/SubmitJob}"], 1);
  EXPECT_GE(after["drover_rpc_duration_seconds_count{method=JobService/SubmitJob}"], 1);
  EXPECT_EQ(after["drover_ingested_bytes_total{stream=stdout}"], 6);
  EXPECT_EQ(after["drover_ingested_bytes_total{stream=stderr}"], 5);

  std::map<std::string, double> agent = Scrape(agent_metrics_);
  EXPECT_EQ(agent["drover_agent_connected{}"], 1);
  EXPECT_EQ(agent["drover_agent_attempts_ended_total{cause=none}"], 1);
  EXPECT_EQ(agent["drover_agent_preparation_seconds_count{result=ok}"], 1);
  EXPECT_EQ(agent["drover_agent_containers_running{}"], 0);
}

// The check: 10,000 values logged with the drover module across 2 ranks arrive
// exactly, in step order, per rank, although droverd is killed mid-run.
TEST_F(AgentE2eTest, ScriptMetricsArriveExactlyInStepOrderPerRankAcrossADroverdRestart) {
  std::string id = Submit(Shell(
      "exec python3 -c \"import drover, time\n"
      "run = drover.Run.get_context()\n"
      "run.set_tags(optimizer='adam')\n"
      "for i in range(5000):\n"
      "    run.log('loss', run.rank * 100000 + i)\n"
      "    if i % 500 == 0: time.sleep(0.05)\n\"",
      /*processes=*/2));
  WaitFor(id, v1::JobStatus::RUNNING);
  absl::SleepFor(absl::Milliseconds(150));
  RestartDroverd(SIGKILL);  // cuts the agent's stream mid-way
  WaitFor(id, v1::JobStatus::COMPLETED, absl::Seconds(120));

  grpc::ClientContext context;
  v1::GetMetricsRequest request;
  request.set_job_id(id);
  request.add_sources(v1::MetricSeries::USER);
  v1::GetMetricsResponse metrics;
  ASSERT_TRUE(jobs_->stub().GetMetrics(&context, request, &metrics).ok());
  EXPECT_EQ(metrics.attempt(), 1);
  EXPECT_EQ(metrics.skipped_lines(), 0);
  EXPECT_EQ(metrics.tags().at("optimizer"), "adam");
  ASSERT_EQ(metrics.series_size(), 2);
  for (const v1::MetricSeries& series : metrics.series()) {
    EXPECT_EQ(series.name(), "loss");
    ASSERT_EQ(series.values_size(), 5000) << "rank " << series.rank();
    for (int i = 0; i < 5000; ++i) {
      ASSERT_EQ(series.steps(i), i) << "rank " << series.rank();
      ASSERT_EQ(series.values(i), series.rank() * 100000 + i) << "rank " << series.rank();
    }
  }
  EXPECT_EQ(metrics.series(0).rank(), 0);
  EXPECT_EQ(metrics.series(1).rank(), 1);
}

// The job's system series (every node's CPU and memory samples), as droverd serves them.
v1::GetMetricsResponse SystemMetrics(v1::JobService::Stub& jobs, const std::string& id) {
  grpc::ClientContext context;
  v1::GetMetricsRequest request;
  request.set_job_id(id);
  request.add_sources(v1::MetricSeries::SYSTEM);
  v1::GetMetricsResponse metrics;
  grpc::Status status = jobs.GetMetrics(&context, request, &metrics);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return metrics;
}

TEST_F(AgentE2eTest, SystemMetricsShowTheMemoryPeakOfTheJob) {
  // Holds 200 MiB (touched) for a second, in a 512 MiB container.
  std::string id = Submit(Shell(
      "exec python3 -c \"import time\nx = bytearray(200 << 20)\n"
      "for i in range(0, len(x), 4096): x[i] = 1\ntime.sleep(1.5)\n\""));
  WaitFor(id, v1::JobStatus::COMPLETED);
  v1::GetMetricsResponse metrics = SystemMetrics(jobs_->stub(), id);
  std::map<std::string, double> max;
  for (const v1::MetricSeries& series : metrics.series()) {
    EXPECT_EQ(series.rank(), 0) << "node rank";
    for (double v : series.values()) max[series.name()] = std::max(max[series.name()], v);
  }
  ASSERT_TRUE(max.contains("memory_peak_bytes")) << metrics.DebugString();
  EXPECT_GE(max["memory_peak_bytes"], 200.0 * (1 << 20));
  EXPECT_LE(max["memory_peak_bytes"], 512.0 * (1 << 20));
  EXPECT_GE(max["memory_bytes"], 150.0 * (1 << 20));
  EXPECT_TRUE(max.contains("cpu_cores"));
}

// A job far shorter than the sampling interval: the sample taken when its processes ended
// (carried by the ENDED report) still shows its real memory peak, not only the start
// sample's few hundred KiB.
class ShortJobE2eTest : public testing::LocalClusterTest {
 protected:
  void SetUp() override {
    LocalClusterTest::SetUp();
    if (IsSkipped()) return;
    StartCluster({.agent_flags = {"--metrics-interval", "60s"}});
  }
};

TEST_F(ShortJobE2eTest, AJobShorterThanTheSamplingIntervalShowsItsMemoryPeak) {
  std::string id = Submit(Shell(
      "exec python3 -c \"x = bytearray(200 << 20)\n"
      "for i in range(0, len(x), 4096): x[i] = 1\n\""));
  WaitFor(id, v1::JobStatus::COMPLETED);
  v1::GetMetricsResponse metrics = SystemMetrics(jobs_->stub(), id);
  const v1::MetricSeries* peak = nullptr;
  for (const v1::MetricSeries& series : metrics.series()) {
    if (series.name() == "memory_peak_bytes") peak = &series;
  }
  ASSERT_NE(peak, nullptr) << metrics.DebugString();
  // The start sample (taken when the processes have barely started), then the end sample:
  // nothing in between with a 60 s interval.
  ASSERT_GE(peak->values_size(), 1);
  ASSERT_LE(peak->values_size(), 2) << metrics.DebugString();
  const int last = peak->values_size() - 1;
  if (last == 1) {
    EXPECT_LT(peak->values(0), 100.0 * (1 << 20));
  }
  EXPECT_GE(peak->values(last), 200.0 * (1 << 20));
  EXPECT_LE(peak->values(last), 512.0 * (1 << 20));
  EXPECT_EQ(peak->steps(last), last);
}

}  // namespace
}  // namespace drover
