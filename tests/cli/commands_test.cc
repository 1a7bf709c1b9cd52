// The drover command table run against FakeDroverClient: what each command sends, prints and
// exits with.
#include "cli/commands.h"

#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cli/cli_fixture.h"

namespace drover::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

// ---- submit

TEST_F(CliTest, SubmitPrintsOnlyTheJobId) {
  EXPECT_EQ(Run({"submit", "train.py"}), 0) << err();
  EXPECT_EQ(out(), "j-1\n");
  EXPECT_THAT(err(), IsEmpty());
}

TEST_F(CliTest, SubmitBuildsTheSpecFromFlags) {
  env_["WANDB_KEY"] = "secret";
  ASSERT_EQ(Run({"submit", "--name", "resnet", "--experiment", "vision", "--tag", "team=cv",
                 "--tag", "owner=ana", "--target", "gpu", "--image", "pytorch:2.1", "--pip",
                 "torch==2.1.0", "--pip", "numpy", "--conda", "cudatoolkit", "--env", "SEED=1",
                 "--env", "WANDB_KEY", "--gpu", "--nodes", "2", "--processes-per-node", "4",
                 "--backend", "PyTorch", "--cpus", "7.5", "--memory", "16Gi", "--gpus", "4",
                 "--shm", "2Gi", "--max-run-duration", "90m", "--priority", "-5",
                 "--max-retries", "2", "--snapshot", "sha256:abc", "--idempotency-key", "k1",
                 "--outputs-to", "ds://results/runs/7", "--outputs-to", "ds://archive/r7",
                 "train.py", "--lr", "0.1", "ds://imagenet/train?mode=download", "\\ds://x"}),
            0)
      << err();
  const v1::JobSpec& spec = SubmittedSpec();
  EXPECT_EQ(spec.name(), "resnet");
  EXPECT_EQ(spec.experiment(), "vision");
  EXPECT_EQ(spec.tags().at("team"), "cv");
  EXPECT_EQ(spec.tags().at("owner"), "ana");
  EXPECT_EQ(spec.compute_target(), "gpu");
  EXPECT_EQ(spec.environment().image(), "pytorch:2.1");
  EXPECT_THAT(spec.environment().pip_packages(), ElementsAre("torch==2.1.0", "numpy"));
  EXPECT_THAT(spec.environment().conda_packages(), ElementsAre("cudatoolkit"));
  EXPECT_EQ(spec.environment().env().at("SEED"), "1");
  EXPECT_EQ(spec.environment().env().at("WANDB_KEY"), "secret");
  EXPECT_TRUE(spec.environment().use_gpu());
  EXPECT_EQ(spec.node_count(), 2);
  EXPECT_EQ(spec.process_count_per_node(), 4);
  EXPECT_EQ(spec.distributed_backend(), v1::JobSpec::PYTORCH);
  EXPECT_DOUBLE_EQ(spec.resources().cpus(), 7.5);
  EXPECT_EQ(spec.resources().memory_mib(), 16384);
  EXPECT_EQ(spec.resources().gpus(), 4);
  EXPECT_EQ(spec.resources().shm_mib(), 2048);
  EXPECT_EQ(spec.max_run_duration().seconds(), 5400);
  EXPECT_EQ(spec.priority(), -5);
  EXPECT_EQ(spec.max_retries(), 2);
  EXPECT_EQ(spec.source_snapshot(), "sha256:abc");
  EXPECT_EQ(spec.idempotency_key(), "k1");
  ASSERT_EQ(spec.outputs_size(), 2);
  EXPECT_EQ(spec.outputs(0).datastore(), "results");
  EXPECT_EQ(spec.outputs(0).path(), "runs/7");
  EXPECT_EQ(spec.outputs(1).datastore(), "archive");
  EXPECT_EQ(spec.outputs(1).path(), "r7");
  EXPECT_EQ(spec.entry_script(), "train.py");
  ASSERT_EQ(spec.arguments_size(), 4);
  EXPECT_EQ(spec.arguments(0).value(), "--lr");
  EXPECT_EQ(spec.arguments(1).value(), "0.1");
  EXPECT_EQ(spec.arguments(2).data().datastore(), "imagenet");
  EXPECT_EQ(spec.arguments(2).data().path(), "train");
  EXPECT_EQ(spec.arguments(2).data().mode(), v1::DataReference::DOWNLOAD);
  EXPECT_EQ(spec.arguments(3).value(), "ds://x");
}

TEST_F(CliTest, SubmitLeavesUnsetFieldsForTheServerDefaults) {
  ASSERT_EQ(Run({"submit", "train.py"}), 0);
  const v1::JobSpec& spec = SubmittedSpec();
  EXPECT_FALSE(spec.has_environment());
  EXPECT_FALSE(spec.has_resources());
  EXPECT_FALSE(spec.has_max_run_duration());
  EXPECT_EQ(spec.node_count(), 0);
}

TEST_F(CliTest, SubmitStopsFlagParsingAtTheScript) {
  ASSERT_EQ(Run({"submit", "--name", "a", "train.py", "--name", "b", "--output", "json"}), 0);
  const v1::JobSpec& spec = SubmittedSpec();
  EXPECT_EQ(spec.name(), "a");
  ASSERT_EQ(spec.arguments_size(), 4);
  EXPECT_EQ(spec.arguments(1).value(), "b");
  EXPECT_EQ(out(), "j-1\n");  // --output json went to the script
}

TEST_F(CliTest, SubmitDoubleDashEndsFlags) {
  ASSERT_EQ(Run({"submit", "--", "--weird-script-name.py", "x"}), 0) << err();
  EXPECT_EQ(SubmittedSpec().entry_script(), "--weird-script-name.py");
}

TEST_F(CliTest, SubmitReadsSpecFileAndFlagsOverrideIt) {
  std::string path = WriteTempFile("job.json", R"({
    "name": "from-file", "experiment": "exp", "nodeCount": 4,
    "distributed_backend": "mpi",
    "entry_script": "file.py", "arguments": [{"value": "--from-file"}],
    "tags": {"a": "1", "b": "2"},
    "environment": {"pip_packages": ["a", "b"], "env": {"X": "1"}, "use_gpu": true},
    "resources": {"cpus": 2, "memory_mib": 1000},
    "idempotency_key": "file-key",
    "outputs": ["ds://results/from-file", {"datastore": "more", "path": "x"}]
  })");
  ASSERT_EQ(Run({"submit", "-f", path, "--name", "from-flag", "--tag", "b=3", "--pip", "c",
                 "--env", "Y=2", "--memory", "2Gi", "--gpu=false", "--outputs-to",
                 "ds://results/from-flag"}),
            0)
      << err();
  const v1::JobSpec& spec = SubmittedSpec();
  EXPECT_EQ(spec.name(), "from-flag");
  EXPECT_EQ(spec.experiment(), "exp");
  EXPECT_EQ(spec.node_count(), 4);
  EXPECT_EQ(spec.distributed_backend(), v1::JobSpec::MPI);
  EXPECT_EQ(spec.entry_script(), "file.py");
  ASSERT_EQ(spec.arguments_size(), 1);
  EXPECT_EQ(spec.tags().at("a"), "1");
  EXPECT_EQ(spec.tags().at("b"), "3");
  EXPECT_THAT(spec.environment().pip_packages(), ElementsAre("c"));
  EXPECT_EQ(spec.environment().env().at("X"), "1");
  EXPECT_EQ(spec.environment().env().at("Y"), "2");
  EXPECT_FALSE(spec.environment().use_gpu());
  EXPECT_DOUBLE_EQ(spec.resources().cpus(), 2);
  EXPECT_EQ(spec.resources().memory_mib(), 2048);
  EXPECT_EQ(spec.idempotency_key(), "file-key");
  ASSERT_EQ(spec.outputs_size(), 1) << "--outputs-to replaces the file's list";
  EXPECT_EQ(spec.outputs(0).path(), "from-flag");
}

TEST_F(CliTest, SubmitPositionalsReplaceTheFilesScriptAndArguments) {
  std::string path =
      WriteTempFile("job.json", R"({"entry_script": "file.py", "arguments": [{"value": "old"}]})");
  ASSERT_EQ(Run({"submit", "-f", path, "cli.py", "new"}), 0) << err();
  EXPECT_EQ(SubmittedSpec().entry_script(), "cli.py");
  ASSERT_EQ(SubmittedSpec().arguments_size(), 1);
  EXPECT_EQ(SubmittedSpec().arguments(0).value(), "new");
}

TEST_F(CliTest, SubmitReadsSpecFromStdin) {
  in_.str(R"({"entry_script": "stdin.py"})");
  ASSERT_EQ(Run({"submit", "-f", "-"}), 0) << err();
  EXPECT_EQ(SubmittedSpec().entry_script(), "stdin.py");
}

TEST_F(CliTest, SubmitUsageErrorsExit2AndSendNothing) {
  std::string bad_json = WriteTempFile("bad.json", R"({"nodes": 2})");
  struct Case {
    std::vector<std::string> args;
    std::string message;
  } cases[] = {
      {{"submit"}, "no entry script"},
      {{"submit", "--memory", "lots", "t.py"}, "--memory"},
      {{"submit", "--nodes", "two", "t.py"}, "--nodes"},
      {{"submit", "--nodes", "99999999999", "t.py"}, "--nodes"},
      {{"submit", "--backend", "horovod", "t.py"}, "none, mpi or pytorch"},
      {{"submit", "--max-run-duration", "soon", "t.py"}, "--max-run-duration"},
      {{"submit", "--tag", "=v", "t.py"}, "--tag"},
      {{"submit", "--env", "NOT_SET_HERE", "t.py"}, "NOT_SET_HERE is not set"},
      {{"submit", "--frobnicate", "t.py"}, "unknown flag --frobnicate"},
      {{"submit", "t.py", "ds://d/x?mode=fast"}, "ds://d/x?mode=fast"},
      {{"submit", "--outputs-to", "results/run7", "t.py"}, "--outputs-to: output target 'results/run7': does not start with ds://"},
      {{"submit", "--outputs-to", "ds://results", "t.py"}, "no folder"},
      {{"submit", "--outputs-to", "ds://results/x?mode=upload", "t.py"}, "takes no options"},
      {{"submit", "-f", "/nonexistent/job.json"}, "cannot read job spec file"},
      {{"submit", "-f", bad_json}, "bad.json"},
      {{"submit", "--output", "yaml", "t.py"}, "--output"},
      {{"submit", "--timeout", "-1s", "t.py"}, "--timeout"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.message);
    EXPECT_EQ(Run(c.args), 2);
    ExpectOneErrorLine(c.message);
    EXPECT_THAT(out(), IsEmpty());
  }
  EXPECT_THAT(server_.submits, IsEmpty());
  EXPECT_THAT(server_.connects, IsEmpty());
}

TEST_F(CliTest, SubmitGeneratesAKeyAndRetriesUnavailableWithIt) {
  server_.errors = {absl::UnavailableError("droverd is stopping"),
                    absl::UnavailableError("droverd is stopping")};
  ASSERT_EQ(Run({"submit", "train.py"}), 0) << err();
  EXPECT_EQ(out(), "j-1\n");
  ASSERT_EQ(server_.submits.size(), 3u);
  for (const v1::SubmitJobRequest& request : server_.submits) {
    EXPECT_EQ(request.spec().idempotency_key(), "generated-1");
  }
  EXPECT_EQ(sleeps_.size(), 2u);
  EXPECT_EQ(server_.jobs.size(), 1u);
  EXPECT_THAT(err(), IsEmpty());
}

TEST_F(CliTest, SubmitGivesUpAfterAFewRetriesWithExit6) {
  for (int i = 0; i < 10; ++i) {
    server_.errors.push_back(absl::UnavailableError(
        "cannot reach droverd at localhost:7070 (connection refused); is it running? set "
        "--server or DROVER_SERVER"));
  }
  EXPECT_EQ(Run({"submit", "train.py"}), 6);
  ExpectOneErrorLine("cannot reach droverd at localhost:7070 (connection refused)");
  EXPECT_LE(server_.submits.size(), 5u);
  EXPECT_THAT(out(), IsEmpty());
}

TEST_F(CliTest, SubmitDoesNotRetryOtherErrors) {
  server_.errors = {absl::InvalidArgumentError("spec.node_count: 0 is out of range; use 1 to 1024")};
  EXPECT_EQ(Run({"submit", "train.py"}), 3);
  EXPECT_EQ(err(), "drover: spec.node_count: 0 is out of range; use 1 to 1024\n");
  EXPECT_EQ(server_.submits.size(), 1u);
}

TEST_F(CliTest, SubmitWithAReusedKeySaysWhichJobItReturns) {
  ASSERT_EQ(Run({"submit", "--idempotency-key", "k", "train.py"}), 0);
  ASSERT_EQ(Run({"submit", "--idempotency-key", "k", "train.py"}), 0);
  EXPECT_EQ(out(), "j-1\n");
  EXPECT_THAT(err(), HasSubstr("'k' was used before; j-1"));
}

TEST_F(CliTest, SubmitJsonPrintsTheJob) {
  ASSERT_EQ(Run({"submit", "-o", "json", "--name", "n", "train.py"}), 0);
  EXPECT_THAT(out(), HasSubstr("\"id\": \"j-1\""));
  EXPECT_THAT(out(), HasSubstr("\"entry_script\": \"train.py\""));
}

TEST_F(CliTest, SubmitWatchFollowsTheNewJob) {
  v1::Job done;
  done.set_id("j-1");
  done.mutable_status()->set_state(v1::JobStatus::COMPLETED);
  done.mutable_status()->set_version(5);
  server_.streams.push_back({{done}, absl::OkStatus()});
  EXPECT_EQ(Run({"submit", "--watch", "train.py"}), 0) << err();
  std::vector<std::string> lines = absl::StrSplit(out(), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "j-1");
  EXPECT_THAT(lines[1], HasSubstr("j-1 COMPLETED"));
  ASSERT_EQ(server_.watches.size(), 1u);
  EXPECT_EQ(server_.watches[0].job_id(), "j-1");
}

// ---- global flags and the server address

TEST_F(CliTest, ServerDefaultsToLocalhost) {
  ASSERT_EQ(Run({"list"}), 0);
  ASSERT_EQ(server_.connects.size(), 1u);
  EXPECT_EQ(server_.connects[0].address, "localhost:7070");
  EXPECT_EQ(server_.connects[0].timeout, absl::Seconds(30));
}

TEST_F(CliTest, ServerComesFromTheEnvironmentThenTheFlag) {
  env_["DROVER_SERVER"] = "head:9000";
  ASSERT_EQ(Run({"list"}), 0);
  EXPECT_EQ(server_.connects.back().address, "head:9000");
  ASSERT_EQ(Run({"--server", "other:1", "list"}), 0);
  EXPECT_EQ(server_.connects.back().address, "other:1");
}

TEST_F(CliTest, GlobalFlagsWorkBeforeAndAfterTheCommand) {
  ASSERT_EQ(Run({"--server", "a:1", "--timeout", "5s", "list"}), 0);
  EXPECT_EQ(server_.connects.back().address, "a:1");
  EXPECT_EQ(server_.connects.back().timeout, absl::Seconds(5));
  ASSERT_EQ(Run({"list", "--server=b:2", "--timeout=2m", "--output", "json"}), 0);
  EXPECT_EQ(server_.connects.back().address, "b:2");
  EXPECT_EQ(server_.connects.back().timeout, absl::Minutes(2));
  EXPECT_EQ(out(), "[]\n");
  ASSERT_EQ(Run({"-o", "json", "list"}), 0);
  EXPECT_EQ(out(), "[]\n");
}

TEST_F(CliTest, MalformedServerAddressIsAUsageError) {
  EXPECT_EQ(Run({"--server", "localhost", "list"}), 2);
  ExpectOneErrorLine("--server: 'localhost' is not HOST:PORT");
  env_["DROVER_SERVER"] = "nohost";
  EXPECT_EQ(Run({"list"}), 2);
  ExpectOneErrorLine("DROVER_SERVER: 'nohost'");
  EXPECT_THAT(server_.connects, IsEmpty());
  ASSERT_EQ(Run({"--server", "unix:/run/drover.sock", "list"}), 0);
  ASSERT_EQ(Run({"--server", "[::1]:7070", "list"}), 0);
}

// ---- list

TEST_F(CliTest, ListShowsATableNewestFirst) {
  server_.Add(v1::JobStatus::COMPLETED, "old");
  server_.Add(v1::JobStatus::QUEUED, "new");
  ASSERT_EQ(Run({"list"}), 0) << err();
  std::vector<std::string> lines = absl::StrSplit(out(), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_THAT(lines[0], StartsWith("ID   NAME  EXPERIMENT  STATE"));
  EXPECT_THAT(lines[1], StartsWith("j-2  new"));
  EXPECT_THAT(lines[2], StartsWith("j-1  old"));
  EXPECT_THAT(lines[1], HasSubstr("1m"));  // created 99 s before "now"
}

TEST_F(CliTest, ListPassesFilters) {
  ASSERT_EQ(Run({"list", "--state", "queued,Running", "--state", "FAILED", "--experiment", "e",
                 "--tag", "team=cv"}),
            0)
      << err();
  const v1::ListJobsRequest& request = server_.lists.back();
  EXPECT_THAT(request.states(), ElementsAre(v1::JobStatus::QUEUED, v1::JobStatus::RUNNING,
                                            v1::JobStatus::FAILED));
  EXPECT_EQ(request.experiment(), "e");
  EXPECT_EQ(request.tag(), "team=cv");
  EXPECT_EQ(request.page_size(), 50);
}

TEST_F(CliTest, ListRejectsUnknownStatesLocally) {
  EXPECT_EQ(Run({"list", "--state", "done"}), 2);
  ExpectOneErrorLine("--state: 'done' is not a job state; use one of QUEUED");
  EXPECT_EQ(Run({"list", "--limit", "0"}), 2);
  EXPECT_EQ(Run({"list", "extra"}), 2);
  EXPECT_THAT(server_.lists, IsEmpty());
}

TEST_F(CliTest, ListLimitStopsEarlyAndSaysThereIsMore) {
  for (int i = 0; i < 7; ++i) server_.Add(v1::JobStatus::QUEUED);
  ASSERT_EQ(Run({"list", "--limit", "3"}), 0);
  std::vector<std::string> lines = absl::StrSplit(out(), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_THAT(lines[1], StartsWith("j-7"));
  EXPECT_THAT(lines[3], StartsWith("j-5"));
  EXPECT_THAT(err(), HasSubstr("--all"));
}

TEST_F(CliTest, ListAllFollowsEveryPage) {
  for (int i = 0; i < 2500; ++i) server_.Add(v1::JobStatus::QUEUED);
  ASSERT_EQ(Run({"list", "--all", "-o", "json"}), 0) << err();
  EXPECT_EQ(server_.lists.size(), 3u);
  EXPECT_EQ(server_.lists[1].page_token(), "1000");
  std::vector<std::string> lines = absl::StrSplit(out(), '\n', absl::SkipEmpty());
  EXPECT_EQ(lines.size(), 2502u);  // [ ... ]
  EXPECT_EQ(lines.front(), "[");
  EXPECT_EQ(lines.back(), "]");
  EXPECT_THAT(lines[1], HasSubstr("\"id\":\"j-2500\""));
  EXPECT_THAT(lines[1], ::testing::EndsWith(","));
  EXPECT_THAT(err(), IsEmpty());
}

// ---- show

TEST_F(CliTest, ShowPrintsSectionsOrJson) {
  server_.Add(v1::JobStatus::QUEUED, "bert");
  ASSERT_EQ(Run({"show", "j-1"}), 0) << err();
  EXPECT_THAT(out(), HasSubstr("id:         j-1\n"));
  EXPECT_THAT(out(), HasSubstr("status:\n  state:"));
  ASSERT_EQ(Run({"show", "1", "--output", "json"}), 0) << err();
  EXPECT_THAT(out(), HasSubstr("\"id\": \"j-1\""));
  EXPECT_THAT(out(), HasSubstr("\"entry_script\": \"train.py\""));
  EXPECT_EQ(server_.gets.back().job_id(), "j-1");
}

TEST_F(CliTest, ShowOfAnUnknownJobExits4) {
  EXPECT_EQ(Run({"show", "j-99"}), 4);
  ExpectOneErrorLine("j-99");
}

TEST_F(CliTest, ShowChecksTheJobIdLocally) {
  EXPECT_EQ(Run({"show", "job-x"}), 2);
  ExpectOneErrorLine("'job-x' is not a job id");
  EXPECT_EQ(Run({"show"}), 2);
  ExpectOneErrorLine("missing JOB");
  EXPECT_EQ(Run({"show", "j-1", "j-2"}), 2);
  EXPECT_THAT(server_.gets, IsEmpty());
}

// ---- cancel

TEST_F(CliTest, CancelPrintsTheNewState) {
  server_.Add(v1::JobStatus::QUEUED);
  server_.Add(v1::JobStatus::RUNNING);
  ASSERT_EQ(Run({"cancel", "j-1", "--reason", "wrong lr"}), 0) << err();
  EXPECT_EQ(out(), "j-1 CANCELED\n");
  EXPECT_EQ(server_.cancels.back().reason(), "wrong lr");
  ASSERT_EQ(Run({"cancel", "j-2"}), 0);
  EXPECT_EQ(out(), "j-2 CANCEL_REQUESTED\n");
}

TEST_F(CliTest, CancelOfAFinishedJobExits5) {
  server_.Add(v1::JobStatus::COMPLETED);
  EXPECT_EQ(Run({"cancel", "j-1"}), 5);
  ExpectOneErrorLine("already ended");
}

// ---- tag

TEST_F(CliTest, TagSetsAndRemovesTagsAndPrintsThemAll) {
  v1::Job& job = server_.Add(v1::JobStatus::RUNNING);
  (*job.mutable_spec()->mutable_tags())["stage"] = "draft";
  ASSERT_EQ(Run({"tag", "j-1", "lr=0.01", "note=a=b", "--remove", "stage"}), 0) << err();
  EXPECT_EQ(out(), "j-1 lr=0.01 note=a=b\n");
  const v1::UpdateJobTagsRequest& sent = server_.tag_updates.back();
  EXPECT_EQ(sent.job_id(), "j-1");
  EXPECT_THAT(sent.set(), ::testing::UnorderedElementsAre(::testing::Pair("lr", "0.01"),
                                                          ::testing::Pair("note", "a=b")));
  EXPECT_THAT(sent.remove(), ElementsAre("stage"));
  ASSERT_EQ(Run({"tag", "1", "--remove", "lr", "--remove", "note"}), 0) << err();
  EXPECT_EQ(out(), "j-1 (no tags)\n");
}

TEST_F(CliTest, TagChecksItsArgumentsLocally) {
  server_.Add(v1::JobStatus::QUEUED);
  EXPECT_EQ(Run({"tag", "j-1"}), 2);
  ExpectOneErrorLine("nothing to change");
  EXPECT_EQ(Run({"tag", "j-1", "stage"}), 2);
  ExpectOneErrorLine("'stage': write KEY=VALUE");
  EXPECT_EQ(Run({"tag", "j-1", "=x"}), 2);
  EXPECT_EQ(Run({"tag"}), 2);
  ExpectOneErrorLine("missing JOB");
  EXPECT_THAT(server_.tag_updates, IsEmpty());
}

TEST_F(CliTest, TagOfAnUnknownJobExitsWithTheServersMessage) {
  EXPECT_EQ(Run({"tag", "j-9", "a=b"}), 4);
  ExpectOneErrorLine("job 'j-9' not found");
}

// ---- watch

v1::Job Event(v1::JobStatus::State state, int64_t version, std::string reason = "") {
  v1::Job job;
  job.set_id("j-1");
  job.mutable_status()->set_state(state);
  job.mutable_status()->set_version(version);
  job.mutable_status()->set_reason(std::move(reason));
  job.mutable_status()->mutable_update_time()->set_seconds(1'700'000'000 + version);
  return job;
}

TEST_F(CliTest, WatchPrintsOneLinePerEventAndExitsByFinalState) {
  struct Case {
    v1::JobStatus::State end;
    int exit_code;
  } cases[] = {{v1::JobStatus::COMPLETED, 0}, {v1::JobStatus::FAILED, 10}, {v1::JobStatus::CANCELED, 11}};
  for (const Case& c : cases) {
    server_.streams.push_back(
        {{Event(v1::JobStatus::QUEUED, 1, "WAITING_FOR_NODES need=1 free=0"),
          Event(v1::JobStatus::RUNNING, 2), Event(c.end, 3)},
         absl::OkStatus()});
    EXPECT_EQ(Run({"watch", "j-1"}), c.exit_code);
    std::vector<std::string> lines = absl::StrSplit(out(), '\n', absl::SkipEmpty());
    ASSERT_EQ(lines.size(), 3u);
    EXPECT_EQ(lines[0], "2023-11-14T22:13:21+00:00 j-1 QUEUED WAITING_FOR_NODES need=1 free=0");
    EXPECT_EQ(lines[1], "2023-11-14T22:13:22+00:00 j-1 RUNNING");
  }
}

TEST_F(CliTest, WatchJsonPrintsOneObjectPerLine) {
  server_.streams.push_back(
      {{Event(v1::JobStatus::QUEUED, 1), Event(v1::JobStatus::CANCELED, 2)}, absl::OkStatus()});
  EXPECT_EQ(Run({"watch", "j-1", "-o", "json"}), 11);
  std::vector<std::string> lines = absl::StrSplit(out(), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_THAT(lines[1], StartsWith("{\"id\":\"j-1\""));
  EXPECT_THAT(lines[1], HasSubstr("\"state\":\"CANCELED\""));
}

TEST_F(CliTest, WatchReconnectsAfterABrokenStreamWithoutRepeatingEvents) {
  server_.streams.push_back({{Event(v1::JobStatus::QUEUED, 1), Event(v1::JobStatus::RUNNING, 2)},
                             absl::UnavailableError("connection lost")});
  server_.streams.push_back({{Event(v1::JobStatus::RUNNING, 2), Event(v1::JobStatus::COMPLETED, 3)},
                             absl::OkStatus()});
  EXPECT_EQ(Run({"watch", "j-1"}), 0) << err();
  std::vector<std::string> lines = absl::StrSplit(out(), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_THAT(lines[2], HasSubstr("COMPLETED"));
  EXPECT_EQ(sleeps_.size(), 1u);
}

TEST_F(CliTest, WatchWaitsLongerForARestartOnceTheJobWasSeen) {
  server_.streams.push_back({{Event(v1::JobStatus::RUNNING, 2)}, absl::UnavailableError("closed")});
  for (int i = 0; i < 5; ++i) {
    server_.streams.push_back({{}, absl::UnavailableError("cannot reach droverd")});
  }
  server_.streams.push_back({{Event(v1::JobStatus::FAILED, 3)}, absl::OkStatus()});
  EXPECT_EQ(Run({"watch", "j-1"}), 10) << err();
  EXPECT_EQ(sleeps_.size(), 6u);
}

TEST_F(CliTest, WatchOfAnUnreachableServerGivesUpQuickly) {
  for (int i = 0; i < 10; ++i) server_.errors.push_back(absl::UnavailableError("cannot reach droverd"));
  EXPECT_EQ(Run({"watch", "j-1"}), 6);
  EXPECT_EQ(sleeps_.size(), 3u);
}

TEST_F(CliTest, RetryPausesWaitForTheConnectionFirstAndSleepOnlyTheRest) {
  // The real client spends a pause driving the reconnection (a TLS handshake); a plain
  // sleep would leave it stalled. The pauses keep their length either way.
  server_.connection_wait = absl::Milliseconds(100);
  server_.errors = {absl::UnavailableError("cannot reach droverd"),
                    absl::UnavailableError("cannot reach droverd")};
  server_.Add(v1::JobStatus::RUNNING);
  EXPECT_EQ(Run({"show", "j-1"}), 0) << err();
  EXPECT_THAT(server_.connection_limits,
              ElementsAre(absl::Milliseconds(250), absl::Milliseconds(500)));
  EXPECT_THAT(sleeps_, ElementsAre(absl::Milliseconds(150), absl::Milliseconds(400)));
}

TEST_F(CliTest, ARetryAfterAWholePauseSpentConnectingDoesNotSleep) {
  server_.connection_wait = absl::Seconds(10);
  server_.errors = {absl::UnavailableError("cannot reach droverd")};
  server_.Add(v1::JobStatus::RUNNING);
  EXPECT_EQ(Run({"show", "j-1"}), 0) << err();
  EXPECT_THAT(server_.connection_limits, ElementsAre(absl::Milliseconds(250)));
  EXPECT_TRUE(sleeps_.empty());
}

TEST_F(CliTest, WatchOfAnUnknownJobExits4) {
  EXPECT_EQ(Run({"watch", "j-5"}), 4);
  ExpectOneErrorLine("j-5");
}

TEST_F(CliTest, WatchGivesUpWhenTheStreamKeepsEndingEarly) {
  for (int i = 0; i < 10; ++i) server_.streams.push_back({{Event(v1::JobStatus::RUNNING, 2)}, absl::OkStatus()});
  EXPECT_EQ(Run({"watch", "j-1"}), 6);
  ExpectOneErrorLine("before the job finished (last state RUNNING)");
}

// ---- exit codes, help, version

TEST(ExitCodeTest, MapsServerCodesToWhatScriptsDoNext) {
  EXPECT_EQ(ExitCodeForServerStatus(absl::InvalidArgumentError("")), 3);
  EXPECT_EQ(ExitCodeForServerStatus(absl::NotFoundError("")), 4);
  EXPECT_EQ(ExitCodeForServerStatus(absl::AlreadyExistsError("")), 5);
  EXPECT_EQ(ExitCodeForServerStatus(absl::FailedPreconditionError("")), 5);
  EXPECT_EQ(ExitCodeForServerStatus(absl::AbortedError("")), 5);
  EXPECT_EQ(ExitCodeForServerStatus(absl::UnavailableError("")), 6);
  EXPECT_EQ(ExitCodeForServerStatus(absl::DeadlineExceededError("")), 6);
  EXPECT_EQ(ExitCodeForServerStatus(absl::InternalError("")), 1);
  EXPECT_EQ(ExitCodeForServerStatus(absl::UnknownError("")), 1);
}

TEST_F(CliTest, HelpOfEveryCommandExits0AndListsItsFlags) {
  struct Case {
    std::string command;
    std::vector<std::string> flags;
  } cases[] = {
      {"submit", {"--file", "--name", "--tag", "--memory", "--backend", "--watch", "--server"}},
      {"list", {"--state", "--experiment", "--tag", "--limit", "--all", "--output"}},
      {"show", {"--output", "--server"}},
      {"cancel", {"--reason"}},
      {"tag", {"--remove", "KEY=VALUE"}},
      {"watch", {"--output", "--timeout"}},
      {"logs", {"--follow", "--rank", "--stdout", "--stderr", "--all-streams", "--attempt"}},
      {"download", {"--dest"}},
      {"nodes", {"--output"}},
      {"node", {"cordon", "uncordon", "drain", "--server"}},
      {"target", {"create", "list", "delete"}},
      {"image", {"import", "list", "delete"}},
      {"datastore", {"create", "list", "delete"}},
      {"version", {"--server"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.command);
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{c.command, "--help"}, {"help", c.command}, {c.command, "-h"}}) {
      EXPECT_EQ(Run(args), 0);
      EXPECT_THAT(out(), StartsWith("Usage: drover " + c.command));
      EXPECT_THAT(out(), HasSubstr("Examples:"));
      EXPECT_THAT(out(), HasSubstr("Exit codes:"));
      for (const std::string& flag : c.flags) EXPECT_THAT(out(), HasSubstr(flag));
    }
  }
  EXPECT_THAT(server_.connects, IsEmpty());
}

TEST_F(CliTest, HelpOfAnActionListsItsFlags) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"help", "node", "cordon"}, {"node", "cordon", "--help"}}) {
    EXPECT_EQ(Run(args), 0) << err();
    EXPECT_THAT(out(), StartsWith("Usage: drover node cordon [flags] NODE"));
    EXPECT_THAT(out(), HasSubstr("--reason"));
  }
  EXPECT_EQ(Run({"help", "target", "create"}), 0);
  EXPECT_THAT(out(), HasSubstr("--selector"));
  EXPECT_EQ(Run({"help", "list", "extra"}), 2);
  EXPECT_THAT(server_.connects, IsEmpty());
}

TEST_F(CliTest, TopLevelHelpListsCommandsAndExitCodes) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--help"}, {"help"}, {"-h"}}) {
    EXPECT_EQ(Run(args), 0);
    for (const char* word : {"submit", "list", "show", "cancel", "watch", "logs", "download",
                             "nodes", "node", "target", "image", "datastore", "version",
                             "--server", "DROVER_SERVER",
                             "Exit codes:", "11"}) {
      EXPECT_THAT(out(), HasSubstr(word));
    }
  }
}

TEST_F(CliTest, NoCommandOrUnknownCommandIsAUsageError) {
  EXPECT_EQ(Run({}), 2);
  EXPECT_THAT(err(), HasSubstr("Usage: drover"));
  EXPECT_EQ(Run({"frobnicate"}), 2);
  ExpectOneErrorLine("unknown command 'frobnicate'");
  EXPECT_EQ(Run({"help", "frobnicate"}), 2);
  EXPECT_EQ(Run({"--bogus", "list"}), 2);
  ExpectOneErrorLine("unknown flag --bogus");
}

TEST_F(CliTest, VersionPrintsTheVersion) {
  EXPECT_EQ(Run({"version"}), 0);
  EXPECT_EQ(out(), absl::StrCat("drover ", DroverVersion(), "\n"));
}

TEST(RandomIdempotencyKeyTest, IsFreshEachTime) {
  absl::StatusOr<std::string> a = RandomIdempotencyKey();
  absl::StatusOr<std::string> b = RandomIdempotencyKey();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
  EXPECT_EQ(a->size(), 7u + 32u);
}

}  // namespace
}  // namespace drover::cli
