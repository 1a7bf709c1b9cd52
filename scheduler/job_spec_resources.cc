// The checks of what a job asks of the cluster: how many nodes and processes, how they are
// wired together (spec.distributed_backend), and each node's share (spec.resources).
#include <cmath>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "scheduler/job_spec_rules.h"

namespace drover::scheduler::job_spec_internal {

using v1::JobSpec;

absl::Status CheckDistribution(const JobSpec& spec) {
  if (spec.node_count() < 1 || spec.node_count() > kMaxNodes) {
    return Invalid("spec.node_count", OutOfRange(spec.node_count(), 1, kMaxNodes));
  }
  if (spec.process_count_per_node() < 1 || spec.process_count_per_node() > kMaxProcessesPerNode) {
    return Invalid("spec.process_count_per_node",
                   OutOfRange(spec.process_count_per_node(), 1, kMaxProcessesPerNode));
  }
  if (!JobSpec::DistributedBackend_IsValid(spec.distributed_backend())) {
    return Invalid("spec.distributed_backend",
                   absl::StrCat(static_cast<int>(spec.distributed_backend()),
                                " is not a backend; use none, mpi or pytorch"));
  }
  const bool single_node_backend =
      spec.distributed_backend() == JobSpec::NONE ||
      spec.distributed_backend() == JobSpec::DISTRIBUTED_BACKEND_UNSPECIFIED;
  if (spec.node_count() > 1 && single_node_backend) {
    return Invalid("spec.node_count",
                   absl::StrCat(spec.node_count(),
                                " nodes need spec.distributed_backend mpi or pytorch, not none; "
                                "set the backend or use node_count 1"));
  }
  if (spec.environment().horovod() && spec.distributed_backend() != JobSpec::MPI) {
    return Invalid("spec.environment.horovod",
                   "Horovod is built for MPI and runs under mpirun; set "
                   "spec.distributed_backend to mpi, or leave horovod out");
  }
  return absl::OkStatus();
}

absl::Status CheckResources(const v1::Resources& r, bool use_gpu) {
  if (!std::isfinite(r.cpus()) || r.cpus() <= 0 || r.cpus() > kMaxCpus) {
    return Invalid("spec.resources.cpus",
                   absl::StrCat(r.cpus(), " is out of range; use more than 0 and at most ",
                                kMaxCpus, " (fractions allowed)"));
  }
  if (r.memory_mib() < 1 || r.memory_mib() > kMaxMemoryMib) {
    return Invalid("spec.resources.memory_mib", OutOfRange(r.memory_mib(), 1, kMaxMemoryMib));
  }
  if (r.gpus() < 0 || r.gpus() > kMaxGpus) {
    return Invalid("spec.resources.gpus", OutOfRange(r.gpus(), 0, kMaxGpus));
  }
  if (r.gpus() > 0 && !use_gpu) {
    return Invalid(
        "spec.resources.gpus",
        absl::StrCat(r.gpus(), " gpus need spec.environment.use_gpu; set use_gpu or use 0 gpus"));
  }
  if (r.gpus() == 0 && use_gpu) {
    return Invalid("spec.resources.gpus",
                   absl::StrCat("0 gpus with spec.environment.use_gpu set; use 1 to ", kMaxGpus,
                                " or unset use_gpu"));
  }
  if (r.shm_mib() < 0 || r.shm_mib() > kMaxShmMib) {
    return Invalid("spec.resources.shm_mib", OutOfRange(r.shm_mib(), 0, kMaxShmMib));
  }
  return absl::OkStatus();
}

}  // namespace drover::scheduler::job_spec_internal
