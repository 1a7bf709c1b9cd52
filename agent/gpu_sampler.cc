#include "agent/gpu_sampler.h"

#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "agent/runtime/process.h"
#include "common/log.h"

namespace drover::agent {
namespace {

std::map<std::string, int> IndexByUuid(const GpuInventory& inventory) {
  std::map<std::string, int> index;
  for (const NodeGpu& gpu : inventory.gpus) index[gpu.gpu.uuid()] = gpu.gpu.index();
  return index;
}

// A number with an optional unit, or -1 for nvidia-smi's "[N/A]" and the like.
absl::StatusOr<double> Field(absl::string_view field, absl::string_view unit) {
  field = absl::StripSuffix(absl::StripAsciiWhitespace(field), unit);
  double value = 0;
  if (absl::SimpleAtod(field, &value) && value >= 0) return value;
  if (absl::StartsWith(field, "[")) return -1;
  return absl::InvalidArgumentError("not a number");
}

}  // namespace

absl::StatusOr<std::map<std::string, GpuSample>> ParseGpuSampleCsv(absl::string_view output,
                                                                   absl::Time at) {
  std::map<std::string, GpuSample> samples;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    std::vector<absl::string_view> fields = absl::StrSplit(line, ',');
    auto bad = [&](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat("line ", line_number, " '", line, "': ", why));
    };
    if (fields.size() != 4) {
      return bad(absl::StrCat("expected 4 fields (", kGpuSampleQuery, "), got ", fields.size()));
    }
    std::string uuid(absl::StripAsciiWhitespace(fields[0]));
    if (uuid.empty()) return bad("the UUID is empty");
    absl::StatusOr<double> utilization = Field(fields[1], " %");
    absl::StatusOr<double> used = Field(fields[2], " MiB");
    absl::StatusOr<double> total = Field(fields[3], " MiB");
    if (!utilization.ok()) return bad("utilization.gpu is not a percentage");
    if (!used.ok()) return bad("memory.used is not a number of MiB");
    if (!total.ok()) return bad("memory.total is not a number of MiB");
    GpuSample& sample = samples[uuid];
    sample.utilization_percent = *utilization;
    sample.memory_used_bytes = *used < 0 ? -1 : *used * 1048576;
    sample.memory_total_bytes = *total < 0 ? -1 : *total * 1048576;
    sample.at = at;
  }
  return samples;
}

GpuSampler::GpuSampler(const GpuInventory& inventory, absl::Duration interval,
                       AgentMetrics* metrics, const Clock& clock)
    : nvidia_smi_(inventory.nvidia_smi),
      index_by_uuid_(IndexByUuid(inventory)),
      interval_(interval),
      metrics_(metrics),
      clock_(clock) {}

GpuSampler::~GpuSampler() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  waiter_.Notify();
  if (thread_.joinable()) thread_.join();
}

void GpuSampler::Start() {
  if (nvidia_smi_.empty() || index_by_uuid_.empty() || thread_.joinable()) return;
  thread_ = std::thread([this] { Loop(); });
}

std::optional<GpuSample> GpuSampler::Latest(const std::string& uuid, absl::Time not_before) const {
  absl::MutexLock lock(&mu_);
  auto it = latest_.find(uuid);
  if (it == latest_.end() || it->second.at < not_before) return std::nullopt;
  return it->second;
}

absl::Status GpuSampler::SampleOnce() {
  // Never longer than an interval: a hung driver must not pile up nvidia-smi processes.
  absl::StatusOr<ProcessResult> ran =
      RunProcess({nvidia_smi_, absl::StrCat("--query-gpu=", kGpuSampleQuery),
                  "--format=csv,noheader,nounits"},
                 std::max(interval_, absl::Seconds(5)));
  absl::StatusOr<std::map<std::string, GpuSample>> samples =
      !ran.ok()     ? ran.status()
      : !ran->ok()  ? absl::UnavailableError(ran->Said())
                    : ParseGpuSampleCsv(ran->out, clock_.Now());
  absl::MutexLock lock(&mu_);
  if (!samples.ok()) {
    if (!failing_) {
      Log(LogLevel::kWarning, "gpu_sample_failed",
          {{"nvidia_smi", nvidia_smi_}, {"error", samples.status().message()}});
    }
    failing_ = true;
    return samples.status();
  }
  failing_ = false;
  for (auto& [uuid, sample] : *samples) {
    auto known = index_by_uuid_.find(uuid);
    if (known == index_by_uuid_.end()) continue;  // not offered (--gpus N)
    if (metrics_ != nullptr) {
      LabelValues labels = {absl::StrCat(known->second), uuid};
      if (sample.utilization_percent >= 0) {
        metrics_->gpu_utilization.With(labels).Set(sample.utilization_percent / 100);
      }
      if (sample.memory_used_bytes >= 0) {
        metrics_->gpu_memory_used_bytes.With(labels).Set(sample.memory_used_bytes);
      }
    }
    latest_[uuid] = sample;
  }
  return absl::OkStatus();
}

void GpuSampler::Loop() {
  auto stopped = [this] {
    absl::MutexLock lock(&mu_);
    return stop_;
  };
  // The interval is the clock's; the destructor ends the pause.
  do {
    (void)SampleOnce();
  } while (!waiter_.WaitFor(interval_, stopped));
}

}  // namespace drover::agent
