// ValidateJobSpec and ApplyJobSpecDefaults: what is accepted, the messages of particular
// refusals, and the defaults. The table of refusals, one row per broken field, is in
// job_spec_table_test.cc.
#include "scheduler/job_spec.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "drover/v1/job.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/scheduler/job_spec_test_util.h"

namespace drover::scheduler {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using v1::DataReference;
using v1::JobSpec;
using testing_util::FullSpec;
using testing_util::kDigest;
using testing_util::Message;
using testing_util::MinimalSpec;

TEST(ValidateJobSpecTest, AcceptsFullyPopulatedSpec) {
  absl::Status s = ValidateJobSpec(FullSpec());
  EXPECT_TRUE(s.ok()) << s;
}

TEST(ValidateJobSpecTest, AcceptsMinimalSpecAfterDefaults) {
  absl::Status s = ValidateJobSpec(MinimalSpec());
  EXPECT_TRUE(s.ok()) << s;
}

TEST(ValidateJobSpecTest, AcceptsEveryImageReferenceForm) {
  for (const std::string& image : std::vector<std::string>{
           "host", "ubuntu", "ubuntu:22.04", "library/ubuntu:22.04", "docker://ubuntu:22.04",
           "docker://nvcr.io/nvidia/pytorch:23.10-py3", "localhost:5000/team/train",
           "localhost/train:v1", "my_image.v2", "ubuntu@sha256:" + std::string(64, '0'),
           "ubuntu:22.04@sha256:" + std::string(64, 'f')}) {
    JobSpec spec = MinimalSpec();
    spec.mutable_environment()->set_image(image);
    absl::Status s = ValidateJobSpec(spec);
    EXPECT_TRUE(s.ok()) << image << ": " << s;
  }
}

TEST(ValidateJobSpecTest, AcceptsValuesAtTheirLimits) {
  JobSpec spec = MinimalSpec();
  spec.set_name(std::string(128, 'n'));
  spec.set_node_count(1024);
  spec.set_process_count_per_node(256);
  spec.set_distributed_backend(JobSpec::MPI);
  spec.mutable_resources()->set_cpus(1024);
  spec.mutable_resources()->set_memory_mib(int64_t{16} * 1024 * 1024);
  spec.mutable_resources()->set_shm_mib(1024 * 1024);
  spec.mutable_max_run_duration()->set_seconds(365 * 24 * 3600);
  spec.set_priority(1000);
  spec.set_max_retries(100);
  spec.set_idempotency_key(std::string(128, '~'));
  for (int i = 0; i < 4; ++i) spec.add_arguments()->set_value(std::string(32 * 1024, 'x'));
  absl::Status s = ValidateJobSpec(spec);
  EXPECT_TRUE(s.ok()) << s;
}

TEST(ValidateJobSpecTest, TreatsUnspecifiedEnumsAsTheirDocumentedDefaults) {
  JobSpec spec = MinimalSpec();
  spec.set_distributed_backend(JobSpec::DISTRIBUTED_BACKEND_UNSPECIFIED);
  DataReference* data = spec.add_arguments()->mutable_data();
  data->set_datastore("ds");
  data->set_read_write(true);  // MODE_UNSPECIFIED means MOUNT, which may be writable
  absl::Status s = ValidateJobSpec(spec);
  EXPECT_TRUE(s.ok()) << s;
}

TEST(ValidateJobSpecTest, ReportsNodeCountInTheHouseFormat) {
  JobSpec spec = MinimalSpec();
  spec.set_node_count(0);
  EXPECT_EQ(ValidateJobSpec(spec),
            absl::InvalidArgumentError("spec.node_count: 0 is out of range; use 1 to 1024"));
}

TEST(ValidateJobSpecTest, RefusesReservedDroverEnvironmentVariables) {
  JobSpec spec = MinimalSpec();
  (*spec.mutable_environment()->mutable_env())["DROVER_JOB_ID"] = "j-1";
  absl::Status s = ValidateJobSpec(spec);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), StartsWith("spec.environment.env['DROVER_JOB_ID']: "));
  EXPECT_THAT(Message(s), HasSubstr("reserved"));
}

TEST(ValidateJobSpecTest, ExplainsThatMultipleNodesNeedMpiOrPytorch) {
  JobSpec spec = MinimalSpec();
  spec.set_node_count(4);
  absl::Status s = ValidateJobSpec(spec);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), HasSubstr("spec.node_count"));
  EXPECT_THAT(Message(s), HasSubstr("mpi or pytorch"));
}

TEST(ValidateJobSpecTest, HorovodNeedsTheMpiBackend) {
  JobSpec spec = MinimalSpec();
  spec.mutable_environment()->set_horovod(true);
  for (JobSpec::DistributedBackend backend :
       {JobSpec::DISTRIBUTED_BACKEND_UNSPECIFIED, JobSpec::NONE, JobSpec::PYTORCH}) {
    spec.set_distributed_backend(backend);
    absl::Status s = ValidateJobSpec(spec);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << backend;
    EXPECT_THAT(Message(s), StartsWith("spec.environment.horovod: "));
    EXPECT_THAT(Message(s), HasSubstr("distributed_backend to mpi"));
  }
  spec.set_distributed_backend(JobSpec::MPI);
  EXPECT_TRUE(ValidateJobSpec(spec).ok()) << ValidateJobSpec(spec);
}

TEST(ValidateJobSpecTest, ReportsOnlyTheFirstProblemInFieldOrder) {
  JobSpec spec = MinimalSpec();
  spec.set_name("bad name");
  spec.set_entry_script("");
  spec.set_priority(5000);
  absl::Status s = ValidateJobSpec(spec);
  EXPECT_THAT(Message(s), StartsWith("spec.name: "));
  EXPECT_THAT(Message(s), Not(HasSubstr("priority")));
}

TEST(ValidateJobSpecTest, ReportsMapProblemsInKeyOrder) {
  JobSpec spec = MinimalSpec();
  auto& env = *spec.mutable_environment()->mutable_env();
  env["Z-BAD"] = "1";
  env["A-BAD"] = "1";
  env["M-BAD"] = "1";
  EXPECT_THAT(Message(ValidateJobSpec(spec)), StartsWith("spec.environment.env['A-BAD']"));
}

TEST(ValidateJobSpecTest, QuotesHostileValuesOnOneLine) {
  JobSpec spec = MinimalSpec();
  spec.mutable_environment()->add_pip_packages("numpy\n--index-url=http://evil");
  absl::Status s = ValidateJobSpec(spec);
  EXPECT_THAT(Message(s), StartsWith("spec.environment.pip_packages[0]: "));
  EXPECT_THAT(Message(s), Not(HasSubstr("\n")));
}

TEST(ApplyJobSpecDefaultsTest, FillsExactlyTheDocumentedDefaults) {
  JobSpec spec;
  spec.set_entry_script("train.py");
  spec.add_arguments()->mutable_data()->set_datastore("ds");
  spec.add_arguments()->set_value("--fast");
  v1::DataInput* input = spec.add_inputs();
  input->set_name("labels");
  input->mutable_data()->set_datastore("ds");
  ApplyJobSpecDefaults(&spec);

  JobSpec want;
  want.set_entry_script("train.py");
  want.add_arguments()->mutable_data()->set_datastore("ds");
  want.mutable_arguments(0)->mutable_data()->set_mode(DataReference::MOUNT);
  want.add_arguments()->set_value("--fast");
  v1::DataInput* wanted_input = want.add_inputs();
  wanted_input->set_name("labels");
  wanted_input->mutable_data()->set_datastore("ds");
  wanted_input->mutable_data()->set_mode(DataReference::MOUNT);
  want.set_experiment("default");
  want.set_compute_target("default");
  want.mutable_environment()->set_image("host");
  want.set_node_count(1);
  want.set_process_count_per_node(1);
  want.set_distributed_backend(JobSpec::NONE);
  want.mutable_resources()->set_cpus(1);
  want.mutable_resources()->set_memory_mib(1024);
  want.mutable_resources()->set_shm_mib(1024);
  EXPECT_EQ(spec.DebugString(), want.DebugString());
  EXPECT_EQ(spec.resources().gpus(), 0);
  EXPECT_EQ(spec.priority(), 0);
  EXPECT_EQ(spec.max_retries(), 0);
  EXPECT_FALSE(spec.has_max_run_duration());
  EXPECT_TRUE(spec.name().empty());
}

TEST(ApplyJobSpecDefaultsTest, GivesOneGpuWhenUseGpuIsSet) {
  JobSpec spec;
  spec.mutable_environment()->set_use_gpu(true);
  ApplyJobSpecDefaults(&spec);
  EXPECT_EQ(spec.resources().gpus(), 1);
}

TEST(ApplyJobSpecDefaultsTest, NeverOverwritesSetFields) {
  const JobSpec full = FullSpec();
  JobSpec spec = full;
  spec.mutable_resources()->set_shm_mib(64);  // FullSpec's 0 means "default"
  const JobSpec before = spec;
  ApplyJobSpecDefaults(&spec);
  EXPECT_EQ(spec.DebugString(), before.DebugString());
}

TEST(ApplyJobSpecDefaultsTest, KeepsExplicitDataModesAndIsIdempotent) {
  JobSpec spec;
  spec.add_arguments()->mutable_data()->set_mode(DataReference::UPLOAD);
  spec.add_arguments()->mutable_data()->set_mode(DataReference::DOWNLOAD);
  ApplyJobSpecDefaults(&spec);
  EXPECT_EQ(spec.arguments(0).data().mode(), DataReference::UPLOAD);
  EXPECT_EQ(spec.arguments(1).data().mode(), DataReference::DOWNLOAD);
  const JobSpec once = spec;
  ApplyJobSpecDefaults(&spec);
  EXPECT_EQ(spec.DebugString(), once.DebugString());
}

}  // namespace
}  // namespace drover::scheduler
