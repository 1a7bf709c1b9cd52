// `drover submit` run against FakeDroverClient: the spec it builds from flags, files and
// stdin, its retries with one idempotency key, what it prints and exits with.
#include "cli/commands.h"

#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "cli/submit_spec.h"
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

TEST_F(CliTest, SubmitHorovodAsksForItInTheEnvironment) {
  ASSERT_EQ(Run({"submit", "--backend", "mpi", "--nodes", "2", "--horovod", "train.py"}), 0)
      << err();
  EXPECT_TRUE(SubmittedSpec().environment().horovod());
  EXPECT_EQ(SubmittedSpec().distributed_backend(), v1::JobSpec::MPI);
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
                 "--input", "labels=ds://imagenet/labels?mode=download", "--input",
                 "scratch=ds://tmp?rw=true", "train.py", "--lr", "0.1", "ds://imagenet/train?mode=download", "\\ds://x"}),
            0)
      << err();
  const v1::JobSpec& spec = SubmittedSpec();
  EXPECT_EQ(spec.name(), "resnet");
  EXPECT_EQ(spec.experiment(), "vision");
  EXPECT_EQ(spec.tags().at("team"), "cv");
  EXPECT_EQ(spec.tags().at("owner"), "ana");
  ASSERT_EQ(spec.inputs_size(), 2);
  EXPECT_EQ(spec.inputs(0).name(), "labels");
  EXPECT_EQ(FormatDataReference(spec.inputs(0).data()), "ds://imagenet/labels?mode=download");
  EXPECT_EQ(spec.inputs(1).name(), "scratch");
  EXPECT_EQ(FormatDataReference(spec.inputs(1).data()), "ds://tmp?rw=true");
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
      {{"submit", "--input", "ds://d/x", "t.py"}, "--input: input 'ds://d/x': has no NAME=; write NAME=ds://DATASTORE/PATH"},
      {{"submit", "--input", "=ds://d/x", "t.py"}, "--input: input '=ds://d/x': has no NAME="},
      {{"submit", "--input", "x=/etc", "t.py"}, "the data does not start with ds://"},
      {{"submit", "--input", "x=ds://d/x?mode=fast", "t.py"}, "mode 'fast' is not one of mount, download, upload"},
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

}  // namespace
}  // namespace drover::cli
