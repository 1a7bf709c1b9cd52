// Output of the drover CLI: tables, ages, the `show` page, `watch` lines and JSON. Pure
// functions of their arguments (the time "now" and the time zone are passed in), so tests
// pin them down exactly. Any thread.
#ifndef DROVER_CLI_FORMAT_H_
#define DROVER_CLI_FORMAT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "drover/v1/job.pb.h"

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
std::string FormatJobTable(const std::vector<v1::Job>& jobs, absl::Time now);

// The `drover show` page: "key: value" lines in sections (status, spec, arguments,
// environment, resources, times). Times are shown in `zone`.
std::string FormatJobDetails(const v1::Job& job, absl::Time now, absl::TimeZone zone);

// One `drover watch` line without the newline: "<time> <job> <STATE> <reason>", the time
// being the status' update time in RFC 3339 in `zone`.
std::string FormatWatchLine(const v1::Job& job, absl::TimeZone zone);

// A memory size in MiB the way a user writes it: "512Mi", "16Gi", "1Ti".
std::string FormatMib(int64_t mib);

// The job in protobuf's JSON form with the proto field names ("node_count"), leaving out
// fields at their default. `pretty` indents it over several lines; otherwise one line.
std::string JobToJson(const v1::Job& job, bool pretty);

}  // namespace drover::cli

#endif  // DROVER_CLI_FORMAT_H_
