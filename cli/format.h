// Output of the drover CLI: tables (jobs, nodes, targets), ages and sizes, the `show` page,
// `watch` lines, the end of a job and JSON. Pure
// functions of their arguments (the time "now" and the time zone are passed in), so tests
// pin them down exactly. Any thread.
#ifndef DROVER_CLI_FORMAT_H_
#define DROVER_CLI_FORMAT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "drover/v1/admin_service.pb.h"
#include "drover/v1/job.pb.h"
#include "drover/v1/job_service.pb.h"
#include "drover/v1/node.pb.h"
#include "google/protobuf/message.h"

namespace drover::cli {

// Columns separated by two spaces and padded to the widest cell; the last column is not
// padded, so no line ends in spaces. Every row has the header's number of cells.
std::string FormatTable(const std::vector<std::vector<std::string>>& rows);

// Age in the largest whole unit: "0s".."59s", "1m".."59m", "1h".."23h", then days ("4d").
// Negative ages (clock skew between client and server) show as "0s".
std::string FormatAge(absl::Duration age);

// `text` cut to at most `width` characters, the last three of them "..." when cut.
std::string Truncate(absl::string_view text, size_t width);

// "QUEUED", "RUNNING", ...
std::string StateName(v1::JobStatus::State state);
// Accepts any case ("queued"). INVALID_ARGUMENT lists the states.
absl::StatusOr<v1::JobStatus::State> ParseStateName(absl::string_view name);
// COMPLETED, FAILED and CANCELED.
bool IsTerminal(v1::JobStatus::State state);

// The `drover list` table: ID, NAME, EXPERIMENT, STATE, REASON (cut to 40 characters),
// NODES (nodes x processes per node), AGE; rows in the order given. Empty cells are "-".
// With `arrays` (ListJobs' group_arrays), each array is one line among the jobs, by its first
// task's id: its id, ARRAY[size%max_running] as state and its tasks counted by state
// ("12 running, 30 queued, 958 completed") as reason.
std::string FormatJobTable(const std::vector<v1::Job>& jobs, absl::Time now,
                           const std::vector<v1::ArraySummary>& arrays = {});
// "12 running, 30 queued, 958 completed": an array's tasks by state, running first.
std::string FormatArrayCounts(const v1::ArraySummary& array);

// The `drover show` page: "key: value" lines in sections (status, spec, arguments,
// environment, resources, times). Times are shown in `zone`.
std::string FormatJobDetails(const v1::Job& job, absl::Time now, absl::TimeZone zone);

// One `drover watch` line without the newline: "<time> <job> <STATE> <reason>", the time
// being the status' update time in RFC 3339 in `zone`.
std::string FormatWatchLine(const v1::Job& job, absl::TimeZone zone);

// A memory size in MiB the way a user writes it: "512Mi", "16Gi", "1Ti".
std::string FormatMib(int64_t mib);

// A memory size in MiB for reading, rounded: "512Mi", "12.5Gi", "64Gi", "1.5Ti"; 0 is "0".
std::string FormatMemory(int64_t mib);

// CPU cores: "8", "1.5", "0.25".
std::string FormatCpus(double cpus);

// How one process ended: "rank 1 on n1 exited with code 3", "rank 0 on n2 was killed by
// signal 9 (SIGKILL)", "rank 2 on n1 was killed for running out of memory".
std::string FormatRankExit(const v1::RankExit& exit);

// What `drover logs -f` prints on stderr when the job ended, one or more lines each ending
// in a newline. The first line is "<job> <STATE>", with the cause when it is not a process
// failure and the status message: "j-42 COMPLETED", "j-42 FAILED: rank 1 on n1 exited with
// code 3", "j-42 FAILED TIMEOUT: ...". For a job that did not complete, indented lines
// follow for every rank that did not exit 0 (at most 16, then a count) and one line for
// the ranks that did.
std::string FormatJobEnd(const v1::Job& job);

// The `drover nodes` table: NAME, STATE, CPUS, MEMORY and GPUS (used/total), JOBS (running
// job ids, at most three, then "+N"), LABELS (sorted key=value, cut to 40 characters) and
// LAST SEEN (age). Rows in the order given; empty cells are "-".
std::string FormatNodeTable(const std::vector<v1::Node>& nodes, absl::Time now);

// The line `drover nodes` prints under the table while droverd pauses the handling of lost
// nodes (mass loss); empty when it does not.
std::string FormatNodeLoss(const v1::NodeLossStatus& loss, absl::Time now);

// The `drover node show` page: name, state, reason, addresses, labels, jobs, agent version;
// resources held over offered; every GPU by index (UUID, name, memory); times in `zone`.
std::string FormatNodeDetails(const v1::Node& node, absl::Time now, absl::TimeZone zone);

// The `drover target list` table: NAME, SELECTOR (sorted key=value, "(every node)" when
// empty), MAX NODES ("no limit" for 0).
std::string FormatTargetTable(const std::vector<v1::ComputeTarget>& targets);

// "READY", "CORDONED", ...
std::string NodeStateName(v1::Node::State state);

// A message in protobuf's JSON form with the proto field names ("node_count"), leaving out
// fields at their default. `pretty` indents it over several lines; otherwise one line.
std::string MessageToJson(const google::protobuf::Message& message, bool pretty);
std::string JobToJson(const v1::Job& job, bool pretty);

// One JSON array of already formatted items, one per line: "[\n a,\n b\n]", or "[]".
std::string JsonArray(const std::vector<std::string>& items);

}  // namespace drover::cli

#endif  // DROVER_CLI_FORMAT_H_
