// Internal to the SQL stores (see store_ops_internal.h): reading the unfinished jobs when
// droverd starts, once for both engines: whole (LoadUnfinishedJobs), or row by row in their
// stored wire form with only what the queue needs decoded (ReadUnfinishedJobs).
#ifndef DROVER_STORAGE_STORE_JOBS_LOAD_INTERNAL_H_
#define DROVER_STORAGE_STORE_JOBS_LOAD_INTERNAL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/pki/secret_box.h"
#include "common/status_macros.h"
#include "google/protobuf/io/coded_stream.h"
#include "storage/store.h"
#include "storage/store_jobs_internal.h"
#include "storage/store_ops_internal.h"

namespace drover::storage::store_ops {

// Store::LoadUnfinishedJobs on a reader connection.
template <typename E>
absl::StatusOr<std::vector<v1::Job>> LoadUnfinishedJobs(typename E::Db& db,
                                                        const SecretBox* secrets) {
  DROVER_ASSIGN_OR_RETURN(auto select, db.Prepare(E::kJobSql.unfinished));
  select->Bind(1, static_cast<int64_t>(v1::JobStatus::COMPLETED))
      .Bind(2, static_cast<int64_t>(v1::JobStatus::FAILED))
      .Bind(3, static_cast<int64_t>(v1::JobStatus::CANCELED));
  return AllRows<v1::Job>(*select, [secrets](const auto& row) { return JobFromRow(row, secrets); });
}

// Appends a length-delimited field (wire type 2) numbered `field` holding `bytes`.
inline void AppendWireField(std::string& out, uint32_t field, absl::string_view bytes) {
  auto varint = [&out](uint64_t v) {
    while (v >= 0x80) {
      out.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out.push_back(static_cast<char>(v));
  };
  varint((static_cast<uint64_t>(field) << 3) | 2);
  varint(bytes.size());
  out.append(bytes.data(), bytes.size());
}

// Reads into `spec` (cleared first) the fields of a stored spec that JobQueue::Pack reads
// (compute_target, node_count, priority, resources, max_run_duration, array_task), and into
// `has_secret_env` whether it names secret variables, passing over the rest without
// building it. False when the bytes are not what this reads (the caller then parses them).
inline bool ScanStoredSpec(absl::string_view bytes, v1::JobSpec& spec, bool& has_secret_env) {
  using google::protobuf::io::CodedInputStream;
  spec.Clear();
  has_secret_env = false;
  CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                      static_cast<int>(bytes.size()));
  // A length-delimited field's bytes (after its tag).
  auto delimited = [&in](std::string& out) {
    uint32_t size = 0;
    return in.ReadVarint32(&size) && in.ReadString(&out, static_cast<int>(size));
  };
  auto skip = [&in](uint32_t tag) {
    uint64_t varint = 0;
    uint32_t size = 0;
    switch (tag & 7) {
      case 0: return in.ReadVarint64(&varint);
      case 1: return in.Skip(8);
      case 2: return in.ReadVarint32(&size) && in.Skip(static_cast<int>(size));
      case 5: return in.Skip(4);
      default: return false;  // groups: never written by droverd
    }
  };
  std::string sub;
  while (uint32_t tag = in.ReadTag()) {
    const uint32_t field = tag >> 3;
    const bool varint = (tag & 7) == 0;
    const bool bytes_field = (tag & 7) == 2;
    uint64_t value = 0;
    if (field == v1::JobSpec::kComputeTargetFieldNumber && bytes_field) {
      if (!delimited(*spec.mutable_compute_target())) return false;
    } else if (field == v1::JobSpec::kNodeCountFieldNumber && varint) {
      if (!in.ReadVarint64(&value)) return false;
      spec.set_node_count(static_cast<int32_t>(value));
    } else if (field == v1::JobSpec::kPriorityFieldNumber && varint) {
      if (!in.ReadVarint64(&value)) return false;
      spec.set_priority(static_cast<int32_t>(value));
    } else if (field == v1::JobSpec::kResourcesFieldNumber && bytes_field) {
      if (!delimited(sub) || !spec.mutable_resources()->ParseFromString(sub)) return false;
    } else if (field == v1::JobSpec::kMaxRunDurationFieldNumber && bytes_field) {
      if (!delimited(sub) || !spec.mutable_max_run_duration()->ParseFromString(sub)) return false;
    } else if (field == v1::JobSpec::kArrayTaskFieldNumber && bytes_field) {
      if (!delimited(sub) || !spec.mutable_array_task()->ParseFromString(sub)) return false;
    } else if (field == v1::JobSpec::kEnvironmentFieldNumber && bytes_field) {
      if (!delimited(sub)) return false;
      CodedInputStream env(reinterpret_cast<const uint8_t*>(sub.data()),
                           static_cast<int>(sub.size()));
      while (uint32_t env_tag = env.ReadTag()) {
        if ((env_tag >> 3) == v1::Environment::kSecretEnvFieldNumber) has_secret_env = true;
        uint32_t size = 0;
        uint64_t ignored = 0;
        const bool ok = (env_tag & 7) == 0   ? env.ReadVarint64(&ignored)
                        : (env_tag & 7) == 2 ? env.ReadVarint32(&size) &&
                                                   env.Skip(static_cast<int>(size))
                        : (env_tag & 7) == 1 ? env.Skip(8)
                        : (env_tag & 7) == 5 ? env.Skip(4)
                                             : false;
        if (!ok) return false;
      }
      if (!env.ConsumedEntireMessage()) return false;
    } else if (!skip(tag)) {
      return false;
    }
  }
  return in.ConsumedEntireMessage();
}

// Reads a stored status's state and version into `status` (cleared first), passing over
// the rest. False as ScanStoredSpec.
inline bool ScanStoredStatus(absl::string_view bytes, v1::JobStatus& status) {
  using google::protobuf::io::CodedInputStream;
  status.Clear();
  CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                      static_cast<int>(bytes.size()));
  while (uint32_t tag = in.ReadTag()) {
    uint64_t value = 0;
    uint32_t size = 0;
    const uint32_t field = tag >> 3;
    switch (tag & 7) {
      case 0:
        if (!in.ReadVarint64(&value)) return false;
        if (field == v1::JobStatus::kStateFieldNumber) {
          status.set_state(static_cast<v1::JobStatus::State>(static_cast<int>(value)));
        } else if (field == v1::JobStatus::kVersionFieldNumber) {
          status.set_version(static_cast<int64_t>(value));
        }
        break;
      case 1:
        if (!in.Skip(8)) return false;
        break;
      case 2:
        if (!in.ReadVarint32(&size) || !in.Skip(static_cast<int>(size))) return false;
        break;
      case 5:
        if (!in.Skip(4)) return false;
        break;
      default:
        return false;
    }
  }
  return in.ConsumedEntireMessage();
}

// Store::ReadUnfinishedJobs on a reader connection. The rows' spec and status blobs go into
// the job's wire form as stored, and only what JobQueue::Pack reads of them is parsed
// (ScanStoredSpec): a spec is parsed whole, opened and serialized again only when it names
// secret variables.
template <typename E>
absl::Status ReadUnfinishedJobs(typename E::Db& db, const SecretBox* secrets,
                                absl::FunctionRef<absl::Status(UnfinishedJobRow&)> each) {
  using google::protobuf::util::TimeUtil;
  DROVER_ASSIGN_OR_RETURN(auto select, db.Prepare(E::kJobSql.unfinished));
  select->Bind(1, static_cast<int64_t>(v1::JobStatus::COMPLETED))
      .Bind(2, static_cast<int64_t>(v1::JobStatus::FAILED))
      .Bind(3, static_cast<int64_t>(v1::JobStatus::CANCELED));
  UnfinishedJobRow row;
  v1::Job head;  // the fields outside spec and status
  std::string opened_spec;
  while (true) {
    DROVER_ASSIGN_OR_RETURN(bool found, select->Step());
    if (!found) break;
    row.id = FormatJobId(select->ColumnInt(0));
    const absl::string_view spec = select->ColumnBlob(1);
    const absl::string_view status = select->ColumnBlob(2);
    bool has_secret_env = false;
    if (!ScanStoredSpec(spec, row.spec, has_secret_env)) {
      if (!ParseStored(spec, row.spec)) {
        return absl::DataLossError(absl::StrCat("job '", row.id, "' has an unreadable record"));
      }
      has_secret_env = !row.spec.environment().secret_env().empty();
    } else if (has_secret_env && !ParseStored(spec, row.spec)) {
      return absl::DataLossError(absl::StrCat("job '", row.id, "' has an unreadable record"));
    }
    if (!ScanStoredStatus(status, row.status) && !ParseStored(status, row.status)) {
      return absl::DataLossError(absl::StrCat("job '", row.id, "' has an unreadable record"));
    }
    absl::string_view wire_spec = spec;
    if (has_secret_env) {
      DROVER_RETURN_IF_ERROR(rules::OpenSpec(secrets, row.id, row.spec));
      opened_spec.clear();
      row.spec.SerializeToString(&opened_spec);
      wire_spec = opened_spec;
    }
    head.Clear();
    head.set_id(row.id);
    *head.mutable_create_time() = TimeUtil::MicrosecondsToTimestamp(select->ColumnInt(3));
    head.set_owner(select->ColumnText(4));
    row.wire.clear();
    row.wire.reserve(head.ByteSizeLong() + wire_spec.size() + status.size() + 12);
    head.AppendToString(&row.wire);
    AppendWireField(row.wire, v1::Job::kSpecFieldNumber, wire_spec);
    AppendWireField(row.wire, v1::Job::kStatusFieldNumber, status);
    DROVER_RETURN_IF_ERROR(each(row));
  }
  return absl::OkStatus();
}

}  // namespace drover::storage::store_ops

#endif  // DROVER_STORAGE_STORE_JOBS_LOAD_INTERNAL_H_
