// ValidateJobSpec's refusals as a table: each row breaks one field of a valid spec, and the
// message must name that field, say what to do, and stay on one line.
#include <cmath>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "drover/v1/job.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/unknown_field_set.h"
#include "gtest/gtest.h"
#include "scheduler/job_spec.h"
#include "tests/scheduler/job_spec_test_util.h"

namespace drover::scheduler {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using testing_util::FullSpec;
using testing_util::kDigest;
using testing_util::Message;
using v1::DataReference;
using v1::JobSpec;

// One row: how to break a valid spec, and the field path the message must name.
struct BadSpec {
  const char* test_name;
  std::function<void(JobSpec&)> mutate;
  std::string field;
};

void PrintTo(const BadSpec& row, std::ostream* os) { *os << row.test_name; }

void SetEnv(JobSpec& s, const std::string& name, const std::string& value) {
  (*s.mutable_environment()->mutable_env())[name] = value;
}

DataReference* DataArg(JobSpec& s, int index) { return s.mutable_arguments(index)->mutable_data(); }

std::vector<BadSpec> BadSpecs() {
  const std::string nul("a\0b", 3);
  const std::string bad_utf8("caf\xC3", 4);
  return {
      // name, experiment, tags
      {"NameWithSpace", [](JobSpec& s) { s.set_name("my job"); }, "spec.name"},
      {"NameStartingWithDot", [](JobSpec& s) { s.set_name(".hidden"); }, "spec.name"},
      {"NameTooLong", [](JobSpec& s) { s.set_name(std::string(129, 'a')); }, "spec.name"},
      {"EmptyExperiment", [](JobSpec& s) { s.set_experiment(""); }, "spec.experiment"},
      {"ExperimentWithSlash", [](JobSpec& s) { s.set_experiment("a/b"); }, "spec.experiment"},
      {"TooManyTags",
       [](JobSpec& s) {
         for (int i = 0; i < 65; ++i) (*s.mutable_tags())[absl::StrCat("k", i)] = "v";
       },
       "spec.tags"},
      {"TagKeyWithSpace", [](JobSpec& s) { (*s.mutable_tags())["my team"] = "x"; },
       "spec.tags['my team']"},
      {"EmptyTagKey", [](JobSpec& s) { (*s.mutable_tags())[""] = "x"; }, "spec.tags['']"},
      {"TagKeyTooLong", [](JobSpec& s) { (*s.mutable_tags())[std::string(64, 'k')] = "x"; },
       "spec.tags['kkkk"},
      {"TagValueTooLong", [](JobSpec& s) { (*s.mutable_tags())["team"] = std::string(257, 'v'); },
       "spec.tags['team']"},
      {"TagValueNotUtf8", [bad_utf8](JobSpec& s) { (*s.mutable_tags())["team"] = bad_utf8; },
       "spec.tags['team']"},
      // source and entry script
      {"SnapshotWithoutAlgorithm", [](JobSpec& s) { s.set_source_snapshot(std::string(64, 'a')); },
       "spec.source_snapshot"},
      {"SnapshotUppercaseHex",
       [](JobSpec& s) { s.set_source_snapshot("sha256:" + std::string(64, 'A')); },
       "spec.source_snapshot"},
      {"SnapshotShortDigest",
       [](JobSpec& s) { s.set_source_snapshot("sha256:" + std::string(63, 'a')); },
       "spec.source_snapshot"},
      {"MissingEntryScript", [](JobSpec& s) { s.clear_entry_script(); }, "spec.entry_script"},
      {"AbsoluteEntryScript", [](JobSpec& s) { s.set_entry_script("/etc/passwd"); },
       "spec.entry_script"},
      {"EntryScriptEscapingSnapshot", [](JobSpec& s) { s.set_entry_script("src/../../train.py"); },
       "spec.entry_script"},
      {"EntryScriptParentOnly", [](JobSpec& s) { s.set_entry_script(".."); }, "spec.entry_script"},
      {"EntryScriptWithNul", [nul](JobSpec& s) { s.set_entry_script(nul); }, "spec.entry_script"},
      {"EntryScriptTooLong", [](JobSpec& s) { s.set_entry_script(std::string(1025, 'a')); },
       "spec.entry_script"},
      // arguments
      {"TooManyArguments",
       [](JobSpec& s) {
         for (int i = 0; i < 1025; ++i) s.add_arguments()->set_value("x");
       },
       "spec.arguments"},
      {"ArgumentsTooLargeTogether",
       [](JobSpec& s) {
         for (int i = 0; i < 5; ++i) s.add_arguments()->set_value(std::string(30 * 1024, 'x'));
       },
       "spec.arguments"},
      {"ArgumentWithNeitherValueNorData", [](JobSpec& s) { s.add_arguments(); },
       "spec.arguments[4]"},
      {"ArgumentValueTooLong",
       [](JobSpec& s) { s.mutable_arguments(1)->set_value(std::string(32 * 1024 + 1, 'x')); },
       "spec.arguments[1].value"},
      {"ArgumentValueWithNul", [nul](JobSpec& s) { s.mutable_arguments(0)->set_value(nul); },
       "spec.arguments[0].value"},
      {"DataReferenceWithoutDatastore", [](JobSpec& s) { DataArg(s, 2)->clear_datastore(); },
       "spec.arguments[2].data.datastore"},
      {"DatastoreWithUppercase", [](JobSpec& s) { DataArg(s, 2)->set_datastore("DataSets"); },
       "spec.arguments[2].data.datastore"},
      {"DataPathEscapingDatastore", [](JobSpec& s) { DataArg(s, 2)->set_path("a/../../b"); },
       "spec.arguments[2].data.path"},
      {"AbsoluteDataPath", [](JobSpec& s) { DataArg(s, 3)->set_path("/data"); },
       "spec.arguments[3].data.path"},
      {"ReadWriteDownload", [](JobSpec& s) { DataArg(s, 2)->set_mode(DataReference::DOWNLOAD); },
       "spec.arguments[2].data.read_write"},
      {"UnknownDataMode",
       [](JobSpec& s) { DataArg(s, 3)->set_mode(static_cast<DataReference::Mode>(9)); },
       "spec.arguments[3].data.mode"},
      // compute target and environment
      {"EmptyComputeTarget", [](JobSpec& s) { s.clear_compute_target(); }, "spec.compute_target"},
      {"ComputeTargetWithSpace", [](JobSpec& s) { s.set_compute_target("gpu pool"); },
       "spec.compute_target"},
      {"EmptyImage", [](JobSpec& s) { s.mutable_environment()->clear_image(); },
       "spec.environment.image"},
      {"ImageTooLong",
       [](JobSpec& s) { s.mutable_environment()->set_image(std::string(513, 'a')); },
       "spec.environment.image"},
      {"ImageWithSpace", [](JobSpec& s) { s.mutable_environment()->set_image("ubuntu 22.04"); },
       "spec.environment.image"},
      {"ImageWithUppercaseRepository",
       [](JobSpec& s) { s.mutable_environment()->set_image("Ubuntu:22.04"); },
       "spec.environment.image"},
      {"ImageWithEmptyTag", [](JobSpec& s) { s.mutable_environment()->set_image("ubuntu:"); },
       "spec.environment.image"},
      {"ImageWithShortDigest",
       [](JobSpec& s) { s.mutable_environment()->set_image("ubuntu@sha256:abc"); },
       "spec.environment.image"},
      {"ImageWithEmptyComponent",
       [](JobSpec& s) { s.mutable_environment()->set_image("team//train"); },
       "spec.environment.image"},
      {"DockerPrefixOnly", [](JobSpec& s) { s.mutable_environment()->set_image("docker://"); },
       "spec.environment.image"},
      {"EmptyPipPackage", [](JobSpec& s) { s.mutable_environment()->add_pip_packages(""); },
       "spec.environment.pip_packages[2]"},
      {"PipOption",
       [](JobSpec& s) {
         s.mutable_environment()->add_pip_packages("--extra-index-url=http://evil");
       },
       "spec.environment.pip_packages[2]"},
      {"PipNewlineInjection",
       [](JobSpec& s) { s.mutable_environment()->set_pip_packages(0, "torch\n-e ."); },
       "spec.environment.pip_packages[0]"},
      {"PipWhitespace",
       [](JobSpec& s) { s.mutable_environment()->set_pip_packages(1, "numpy --pre"); },
       "spec.environment.pip_packages[1]"},
      {"PipPackageTooLong",
       [](JobSpec& s) { s.mutable_environment()->add_pip_packages(std::string(513, 'a')); },
       "spec.environment.pip_packages[2]"},
      {"TooManyPipPackages",
       [](JobSpec& s) {
         for (int i = 0; i < 255; ++i) s.mutable_environment()->add_pip_packages("a");
       },
       "spec.environment.pip_packages"},
      {"CondaOption", [](JobSpec& s) { s.mutable_environment()->add_conda_packages("-c"); },
       "spec.environment.conda_packages[1]"},
      {"CondaControlCharacter",
       [](JobSpec& s) { s.mutable_environment()->set_conda_packages(0, "numpy\x1b"); },
       "spec.environment.conda_packages[0]"},
      {"EnvNameStartingWithDigit", [](JobSpec& s) { SetEnv(s, "1VAR", "x"); },
       "spec.environment.env['1VAR']"},
      {"EnvNameWithDash", [](JobSpec& s) { SetEnv(s, "MY-VAR", "x"); },
       "spec.environment.env['MY-VAR']"},
      {"EmptyEnvName", [](JobSpec& s) { SetEnv(s, "", "x"); }, "spec.environment.env['']"},
      {"ReservedEnvName", [](JobSpec& s) { SetEnv(s, "DROVER_RANK", "0"); },
       "spec.environment.env['DROVER_RANK']"},
      {"EnvValueTooLong", [](JobSpec& s) { SetEnv(s, "BIG", std::string(32 * 1024 + 1, 'x')); },
       "spec.environment.env['BIG']"},
      {"EnvValueWithNul", [nul](JobSpec& s) { SetEnv(s, "FOO", nul); },
       "spec.environment.env['FOO']"},
      {"EnvValuesTooLargeTogether",
       [](JobSpec& s) {
         for (int i = 0; i < 5; ++i) SetEnv(s, absl::StrCat("V", i), std::string(30 * 1024, 'x'));
       },
       "spec.environment.env"},
      {"TooManyEnvVars",
       [](JobSpec& s) {
         for (int i = 0; i < 257; ++i) SetEnv(s, absl::StrCat("V", i), "x");
       },
       "spec.environment.env"},
      // shape of the job
      {"NodeCountZero", [](JobSpec& s) { s.set_node_count(0); }, "spec.node_count"},
      {"NodeCountTooLarge", [](JobSpec& s) { s.set_node_count(1025); }, "spec.node_count"},
      {"MultiNodeWithoutBackend", [](JobSpec& s) { s.set_distributed_backend(JobSpec::NONE); },
       "spec.node_count"},
      {"ProcessCountZero", [](JobSpec& s) { s.set_process_count_per_node(0); },
       "spec.process_count_per_node"},
      {"ProcessCountTooLarge", [](JobSpec& s) { s.set_process_count_per_node(257); },
       "spec.process_count_per_node"},
      {"UnknownBackend",
       [](JobSpec& s) { s.set_distributed_backend(static_cast<JobSpec::DistributedBackend>(7)); },
       "spec.distributed_backend"},
      // resources
      {"ZeroCpus", [](JobSpec& s) { s.mutable_resources()->set_cpus(0); }, "spec.resources.cpus"},
      {"NegativeCpus", [](JobSpec& s) { s.mutable_resources()->set_cpus(-1); },
       "spec.resources.cpus"},
      {"NanCpus", [](JobSpec& s) { s.mutable_resources()->set_cpus(std::nan("")); },
       "spec.resources.cpus"},
      {"InfiniteCpus", [](JobSpec& s) { s.mutable_resources()->set_cpus(HUGE_VAL); },
       "spec.resources.cpus"},
      {"TooManyCpus", [](JobSpec& s) { s.mutable_resources()->set_cpus(1024.5); },
       "spec.resources.cpus"},
      {"ZeroMemory", [](JobSpec& s) { s.mutable_resources()->set_memory_mib(0); },
       "spec.resources.memory_mib"},
      {"TooMuchMemory",
       [](JobSpec& s) { s.mutable_resources()->set_memory_mib(int64_t{16} * 1024 * 1024 + 1); },
       "spec.resources.memory_mib"},
      {"NegativeGpus", [](JobSpec& s) { s.mutable_resources()->set_gpus(-1); },
       "spec.resources.gpus"},
      {"TooManyGpus", [](JobSpec& s) { s.mutable_resources()->set_gpus(65); },
       "spec.resources.gpus"},
      {"GpusWithoutUseGpu", [](JobSpec& s) { s.mutable_environment()->set_use_gpu(false); },
       "spec.resources.gpus"},
      {"UseGpuWithZeroGpus", [](JobSpec& s) { s.mutable_resources()->set_gpus(0); },
       "spec.resources.gpus"},
      {"NegativeShm", [](JobSpec& s) { s.mutable_resources()->set_shm_mib(-1); },
       "spec.resources.shm_mib"},
      {"TooMuchShm", [](JobSpec& s) { s.mutable_resources()->set_shm_mib(1024 * 1024 + 1); },
       "spec.resources.shm_mib"},
      // limits and policy
      {"NegativeRunDuration",
       [](JobSpec& s) {
         s.mutable_max_run_duration()->set_seconds(-5);
         s.mutable_max_run_duration()->set_nanos(0);
       },
       "spec.max_run_duration"},
      {"NegativeRunDurationNanos",
       [](JobSpec& s) {
         s.mutable_max_run_duration()->set_seconds(0);
         s.mutable_max_run_duration()->set_nanos(-1);
       },
       "spec.max_run_duration"},
      {"RunDurationNanosOutOfRange",
       [](JobSpec& s) { s.mutable_max_run_duration()->set_nanos(1'000'000'000); },
       "spec.max_run_duration"},
      {"RunDurationMixedSigns", [](JobSpec& s) { s.mutable_max_run_duration()->set_nanos(-5); },
       "spec.max_run_duration"},
      {"RunDurationOverAYear",
       [](JobSpec& s) {
         s.mutable_max_run_duration()->set_seconds(365 * 24 * 3600);
         s.mutable_max_run_duration()->set_nanos(1);
       },
       "spec.max_run_duration"},
      {"PriorityTooHigh", [](JobSpec& s) { s.set_priority(1001); }, "spec.priority"},
      {"PriorityTooLow", [](JobSpec& s) { s.set_priority(-1001); }, "spec.priority"},
      {"NegativeRetries", [](JobSpec& s) { s.set_max_retries(-1); }, "spec.max_retries"},
      {"TooManyRetries", [](JobSpec& s) { s.set_max_retries(101); }, "spec.max_retries"},
      {"TooManyOutputs",
       [](JobSpec& s) {
         for (int i = 0; i < 16; ++i) {
           v1::OutputTarget* o = s.add_outputs();
           o->set_datastore("results");
           o->set_path("p");
         }
       },
       "spec.outputs"},
      {"OutputWithoutDatastore", [](JobSpec& s) { s.mutable_outputs(0)->clear_datastore(); },
       "spec.outputs[0].datastore"},
      {"OutputWithoutPath", [](JobSpec& s) { s.mutable_outputs(0)->clear_path(); },
       "spec.outputs[0].path"},
      {"OutputPathEscapingDatastore",
       [](JobSpec& s) { s.mutable_outputs(0)->set_path("../other-team"); }, "spec.outputs[0].path"},
      {"InputWithoutName",
       [](JobSpec& s) { s.add_inputs()->mutable_data()->set_datastore("results"); },
       "spec.inputs[1].name"},
      {"InputNameWithDash",
       [](JobSpec& s) {
         v1::DataInput* in = s.add_inputs();
         in->set_name("train-set");
         in->mutable_data()->set_datastore("results");
       },
       "spec.inputs[1].name"},
      {"InputNameStartingWithADigit",
       [](JobSpec& s) {
         v1::DataInput* in = s.add_inputs();
         in->set_name("1st");
         in->mutable_data()->set_datastore("results");
       },
       "spec.inputs[1].name"},
      {"InputNameTooLong",
       [](JobSpec& s) {
         v1::DataInput* in = s.add_inputs();
         in->set_name(std::string(64, 'a'));
         in->mutable_data()->set_datastore("results");
       },
       "spec.inputs[1].name"},
      {"InputNameTwice",
       [](JobSpec& s) {
         for (int i = 0; i < 2; ++i) {
           v1::DataInput* in = s.add_inputs();
           in->set_name("train");
           in->mutable_data()->set_datastore("results");
         }
       },
       "spec.inputs[2].name"},
      {"InputWithoutData", [](JobSpec& s) { s.add_inputs()->set_name("train"); },
       "spec.inputs[1].data"},
      {"InputPathEscapingDatastore",
       [](JobSpec& s) {
         v1::DataInput* in = s.add_inputs();
         in->set_name("train");
         in->mutable_data()->set_datastore("results");
         in->mutable_data()->set_path("../../etc");
       },
       "spec.inputs[1].data.path"},
      {"InputReadWriteDownload",
       [](JobSpec& s) {
         v1::DataInput* in = s.add_inputs();
         in->set_name("train");
         in->mutable_data()->set_datastore("results");
         in->mutable_data()->set_mode(v1::DataReference::DOWNLOAD);
         in->mutable_data()->set_read_write(true);
       },
       "spec.inputs[1].data.read_write"},
      {"TooManyInputs",
       [](JobSpec& s) {
         for (int i = 0; i < 65; ++i) {
           v1::DataInput* in = s.add_inputs();
           in->set_name(absl::StrCat("in", i));
           in->mutable_data()->set_datastore("results");
         }
       },
       "spec.inputs"},
      {"IdempotencyKeyTooLong", [](JobSpec& s) { s.set_idempotency_key(std::string(129, 'k')); },
       "spec.idempotency_key"},
      {"IdempotencyKeyNotPrintable", [](JobSpec& s) { s.set_idempotency_key("key\n2"); },
       "spec.idempotency_key"},
      {"IdempotencyKeyNotAscii", [](JobSpec& s) { s.set_idempotency_key("clé"); },
       "spec.idempotency_key"},
      // the whole spec
      {"SpecOverOneMebibyte",
       [](JobSpec& s) {
         s.GetReflection()->MutableUnknownFields(&s)->AddLengthDelimited(999,
                                                                         std::string(1 << 20, 'x'));
       },
       "spec: "},
  };
}

class ValidateJobSpecTableTest : public ::testing::TestWithParam<BadSpec> {};

TEST_P(ValidateJobSpecTableTest, RefusesNamingTheField) {
  JobSpec spec = FullSpec();
  ASSERT_TRUE(ValidateJobSpec(spec).ok()) << "the base spec must be valid";
  GetParam().mutate(spec);
  absl::Status s = ValidateJobSpec(spec);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(Message(s), StartsWith(GetParam().field));
  EXPECT_THAT(Message(s), StartsWith("spec"));
  EXPECT_FALSE(absl::EndsWith(s.message(), ".")) << s;
  EXPECT_THAT(Message(s), HasSubstr("; ")) << "the message should say what to do: " << s;
  EXPECT_THAT(Message(s), Not(HasSubstr("\n")));
}

INSTANTIATE_TEST_SUITE_P(BadSpecs, ValidateJobSpecTableTest, ::testing::ValuesIn(BadSpecs()),
                         [](const ::testing::TestParamInfo<BadSpec>& info) {
                           return std::string(info.param.test_name);
                         });

}  // namespace
}  // namespace drover::scheduler
