// The small status files drover-init writes for the agent (drover_init.cc): one format, one
// writer and one reader, side by side. Header only, plain C++ (drover-init links no
// Abseil). Any thread.
//
//   <name>.exit  "exit_code=<n> signal=<s>[ end_time_ns=<t>]"  a rank, the launcher
//                (mpirun.exit) or drover-init itself (init.exit) ended
//   init.result  "first_failed_rank=<R> exit_code=<n> signal=<s>"
//
// The files are in folders the job can write: a reader takes any bytes and gives nothing
// back for anything that is not exactly such a line (keys in that order, decimal numbers
// in range, one trailing newline at most), never undefined behaviour on a huge number.
#ifndef DROVER_AGENT_LAUNCHER_INIT_FILES_H_
#define DROVER_AGENT_LAUNCHER_INIT_FILES_H_

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace drover::agent {

struct ExitRecord {
  int exit_code = 0;            // 0..255; -1 when a signal ended it
  int signal = 0;               // 0..64
  int64_t end_time_ns = -1;     // CLOCK_REALTIME when it ended; -1: not recorded
};

struct InitResult {
  int first_failed_rank = -1;   // -1: none (or, with a launcher, not known here)
  int exit_code = 0;
  int signal = 0;
};

namespace init_files_internal {

// "key=<integer in [low, high]>" as the next space-separated field of `text`.
template <typename Int>
bool TakeField(std::string_view& text, std::string_view key, Int low, Int high, Int* out) {
  if (text.substr(0, key.size()) != key || text.size() <= key.size() || text[key.size()] != '=') {
    return false;
  }
  text.remove_prefix(key.size() + 1);
  size_t end = text.find(' ');
  std::string_view number = text.substr(0, end);
  if (number.empty() || number.size() > 20) return false;
  Int value = 0;
  auto [ptr, error] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (error != std::errc() || ptr != number.data() + number.size() || value < low ||
      value > high) {
    return false;
  }
  *out = value;
  text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
  return true;
}

inline std::string_view WithoutNewline(std::string_view text) {
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  return text;
}

}  // namespace init_files_internal

inline std::string FormatExitRecord(const ExitRecord& r) {
  std::string line = "exit_code=" + std::to_string(r.exit_code) + " signal=" + std::to_string(r.signal);
  if (r.end_time_ns >= 0) line += " end_time_ns=" + std::to_string(r.end_time_ns);
  return line + "\n";
}

inline std::optional<ExitRecord> ParseExitRecord(std::string_view text) {
  using init_files_internal::TakeField;
  text = init_files_internal::WithoutNewline(text);
  ExitRecord r;
  if (!TakeField(text, "exit_code", -1, 255, &r.exit_code) ||
      !TakeField(text, "signal", 0, 64, &r.signal)) {
    return std::nullopt;
  }
  if (!text.empty() &&
      !TakeField<int64_t>(text, "end_time_ns", 0, INT64_MAX, &r.end_time_ns)) {
    return std::nullopt;
  }
  if (!text.empty()) return std::nullopt;
  return r;
}

inline std::string FormatInitResult(const InitResult& r) {
  return "first_failed_rank=" + std::to_string(r.first_failed_rank) +
         " exit_code=" + std::to_string(r.exit_code) + " signal=" + std::to_string(r.signal) +
         "\n";
}

inline std::optional<InitResult> ParseInitResult(std::string_view text) {
  using init_files_internal::TakeField;
  text = init_files_internal::WithoutNewline(text);
  InitResult r;
  if (!TakeField(text, "first_failed_rank", -1, INT32_MAX, &r.first_failed_rank) ||
      !TakeField(text, "exit_code", -1, 255, &r.exit_code) ||
      !TakeField(text, "signal", 0, 64, &r.signal) || !text.empty()) {
    return std::nullopt;
  }
  return r;
}

}  // namespace drover::agent

#endif  // DROVER_AGENT_LAUNCHER_INIT_FILES_H_
