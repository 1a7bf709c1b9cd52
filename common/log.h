// Structured logging: one line per event on stderr, `key=value` fields.
//
//   2026-11-26T09:10:56.123456Z INFO event=job_submitted job=j-42 experiment=mnist
//
// Thread-safe: each line is written with a single write(2). The level threshold is process
// wide and set once by main() before threads start.
#ifndef DROVER_COMMON_LOG_H_
#define DROVER_COMMON_LOG_H_

#include <initializer_list>
#include <string>
#include "absl/strings/string_view.h"
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace drover {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// "debug", "info", "warning" or "error"; INVALID_ARGUMENT otherwise.
absl::StatusOr<LogLevel> ParseLogLevel(absl::string_view name);
void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);

// One field of a log line; the value is formatted with absl::StrCat rules.
struct LogField {
  template <typename T>
  LogField(absl::string_view k, const T& v) : key(k), value(absl::StrCat(v)) {}
  LogField(absl::string_view k, absl::string_view v) : key(k), value(v) {}
  LogField(absl::string_view k, const char* v) : key(k), value(v) {}
  LogField(absl::string_view k, const std::string& v) : key(k), value(v) {}
  LogField(absl::string_view k, bool v) : key(k), value(v ? "true" : "false") {}
  absl::string_view key;
  std::string value;
};

// Formats one line (without writing it). Values with spaces, quotes or `=` are quoted.
std::string FormatLogLine(LogLevel level, absl::string_view event,
                          std::initializer_list<LogField> fields);

// Writes one line to stderr when `level` is enabled.
void Log(LogLevel level, absl::string_view event, std::initializer_list<LogField> fields = {});

}  // namespace drover

#endif  // DROVER_COMMON_LOG_H_
