// What the job-spec tests share: the message as a std::string, a digest, a spec with every
// field set to a valid value and the minimal spec after defaults.
#ifndef DROVER_TESTS_SCHEDULER_JOB_SPEC_TEST_UTIL_H_
#define DROVER_TESTS_SCHEDULER_JOB_SPEC_TEST_UTIL_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "drover/v1/job.pb.h"
#include "scheduler/job_spec.h"

namespace drover::scheduler::testing_util {

using v1::DataReference;
using v1::JobSpec;

// gMock's string matchers take std::string; Debian's Abseil has its own string_view.
inline std::string Message(const absl::Status& s) { return std::string(s.message()); }

inline const std::string kDigest = absl::StrCat("sha256:", std::string(64, 'a'));

// Every field set to a valid value: a two-node PyTorch job with a mounted dataset argument
// and an output target. Rows of the table below break one thing each.
inline JobSpec FullSpec() {
  JobSpec spec;
  spec.set_name("resnet50-baseline_v2.1");
  spec.set_experiment("imagenet");
  (*spec.mutable_tags())["team"] = "vision";
  (*spec.mutable_tags())["drover.dev/owner"] = "Zoë";
  spec.set_source_snapshot(kDigest);
  spec.set_entry_script("src/train.py");
  spec.add_arguments()->set_value("--epochs=90");
  spec.add_arguments()->set_value("--data");
  DataReference* data = spec.add_arguments()->mutable_data();
  data->set_datastore("datasets");
  data->set_path("imagenet/train");
  data->set_mode(DataReference::MOUNT);
  data->set_read_write(true);
  DataReference* cache = spec.add_arguments()->mutable_data();
  cache->set_datastore("scratch_1");
  cache->set_mode(DataReference::DOWNLOAD);
  spec.set_compute_target("gpu-a100");
  v1::Environment* env = spec.mutable_environment();
  env->set_image("registry.example.com:5000/ml/pytorch:2.1.0-cuda12");
  env->add_pip_packages("torch==2.1.0");
  env->add_pip_packages("numpy>=1.24");
  env->add_conda_packages("cudatoolkit=11.8");
  (*env->mutable_env())["NCCL_DEBUG"] = "INFO";
  (*env->mutable_env())["_PRIVATE2"] = "";
  env->set_use_gpu(true);
  spec.set_node_count(2);
  spec.set_process_count_per_node(8);
  spec.set_distributed_backend(JobSpec::PYTORCH);
  v1::Resources* r = spec.mutable_resources();
  r->set_cpus(31.5);
  r->set_memory_mib(256 * 1024);
  r->set_gpus(8);
  r->set_shm_mib(0);
  spec.mutable_max_run_duration()->set_seconds(2 * 24 * 3600);
  spec.mutable_max_run_duration()->set_nanos(500);
  spec.set_priority(-10);
  spec.set_max_retries(3);
  v1::OutputTarget* out = spec.add_outputs();
  out->set_datastore("results");
  out->set_path("imagenet/resnet50");
  v1::DataInput* input = spec.add_inputs();
  input->set_name("Labels_2");
  input->mutable_data()->set_datastore("imagenet");
  input->mutable_data()->set_path("labels");
  input->mutable_data()->set_mode(DataReference::DOWNLOAD);
  spec.set_idempotency_key("submit 2024-05-01T10:00:00Z #1");
  return spec;
}

// What a user who only names the script submits, after defaults.
inline JobSpec MinimalSpec() {
  JobSpec spec;
  spec.set_entry_script("train.py");
  ApplyJobSpecDefaults(&spec);
  return spec;
}

}  // namespace drover::scheduler::testing_util

#endif  // DROVER_TESTS_SCHEDULER_JOB_SPEC_TEST_UTIL_H_
