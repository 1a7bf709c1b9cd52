// SystemSampler: see system_sampler.h.
#include "agent/system_sampler.h"

#include <fcntl.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/safe_open.h"

namespace drover::agent {

std::string SystemSampler::Take(absl::Time now, const ContainerStats& stats,
                                const std::vector<std::optional<GpuSample>>& gpus) {
  std::string lines;
  const double t = absl::ToDoubleSeconds(now - absl::UnixEpoch());
  auto point = [&](absl::string_view name, double value) {
    absl::StrAppend(&lines, "{\"n\":\"", name, "\",\"s\":", samples_, ",\"t\":",
                    absl::StrFormat("%.6f", t), ",\"v\":", absl::StrFormat("%.17g", value), "}\n");
  };
  if (last_cpu_ns_ >= 0 && now > last_) {
    point("cpu_cores", static_cast<double>(stats.cpu_ns - last_cpu_ns_) /
                           absl::ToDoubleNanoseconds(now - last_));
  }
  point("memory_bytes", static_cast<double>(stats.memory_bytes));
  if (stats.memory_peak_bytes >= 0) {
    point("memory_peak_bytes", static_cast<double>(stats.memory_peak_bytes));
  }
  for (size_t i = 0; i < gpus.size(); ++i) {
    if (!gpus[i].has_value()) continue;
    if (gpus[i]->utilization_percent >= 0) {
      point(absl::StrCat("gpu_utilization_percent/", i), gpus[i]->utilization_percent);
    }
    if (gpus[i]->memory_used_bytes >= 0) {
      point(absl::StrCat("gpu_memory_bytes/", i), gpus[i]->memory_used_bytes);
    }
  }
  last_cpu_ns_ = stats.cpu_ns;
  last_ = now;
  ++samples_;
  return lines;
}

std::optional<v1::AttemptUsage> SystemSampler::End(absl::Time now,
                                                   const ContainerStats& usage) const {
  if (usage.cpu_ns < 0 && usage.memory_peak_bytes < 0) return std::nullopt;
  v1::AttemptUsage end;
  const absl::Duration since_epoch = now - absl::UnixEpoch();
  end.mutable_time()->set_seconds(absl::ToInt64Seconds(since_epoch));
  end.mutable_time()->set_nanos(
      static_cast<int32_t>(absl::ToInt64Nanoseconds(since_epoch % absl::Seconds(1))));
  end.set_sample(samples_);
  if (usage.memory_peak_bytes >= 0) end.set_memory_peak_bytes(usage.memory_peak_bytes);
  if (usage.cpu_ns >= 0) {
    end.set_cpu_seconds(static_cast<double>(usage.cpu_ns) / 1e9);
    // A counter that went back is not the same container's (or not a counter): no rate.
    if (last_cpu_ns_ >= 0 && usage.cpu_ns >= last_cpu_ns_ && now > last_) {
      end.set_cpu_cores(static_cast<double>(usage.cpu_ns - last_cpu_ns_) /
                        absl::ToDoubleNanoseconds(now - last_));
    }
  }
  return end;
}

void AppendToJobFile(const std::string& job_dir, const std::string& path,
                     const std::string& lines) {
  FileKind kind = FileKind::kMissing;
  absl::StatusOr<UniqueFd> fd =
      OpenBeneath(job_dir, path, O_WRONLY | O_CREAT | O_APPEND, 0644, &kind);
  if (!fd.ok()) {
    if (kind != FileKind::kMissing) LogUnsafeFile(absl::StrCat(job_dir, "/", path), kind);
    return;
  }
  (void)!::write(fd->get(), lines.data(), lines.size());
}

}  // namespace drover::agent
