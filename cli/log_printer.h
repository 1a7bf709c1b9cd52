// LogPrinter: turns the chunks of droverd's StreamLogs into what `drover logs` prints.
//
//   - Each stream goes to its own output: a process's stdout to `out`, its stderr to `err`.
//   - Every byte is printed once, however often droverd sends it: chunks carry their offset
//     in the stream, and a stream that is read again after a reconnect starts from 0.
//   - A node's preparation log (PREPARE, `rank` the node rank) goes to `out`.
//   - With `prefix_ranks`, every line starts with "[rank N] " (for PREPARE "[node N] ").
//     Chunks end anywhere, also in the middle of a line, so the start of a line is held per
//     (rank, stream) until its end arrives, or until Flush(), which ends it with a newline. A
//     held line longer than `kMaxHeldBytes` is printed early, broken in two.
//   - Without `prefix_ranks` the bytes pass through unchanged (nothing is held).
//
// Writes through the streams it was given and flushes them after every chunk. Not
// thread-safe; main thread.
#ifndef DROVER_CLI_LOG_PRINTER_H_
#define DROVER_CLI_LOG_PRINTER_H_

#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"
#include "drover/v1/agent.pb.h"

namespace drover::cli {

class LogPrinter {
 public:
  static constexpr size_t kMaxHeldBytes = 64 * 1024;

  LogPrinter(std::ostream* out, std::ostream* err, bool prefix_ranks)
      : out_(out), err_(err), prefix_ranks_(prefix_ranks) {}

  // Prints the part of `data` (bytes `offset`.. of the rank's `stream`) not printed yet.
  // A chunk that starts past what was printed (a gap droverd should never leave) is
  // printed from its start.
  void Add(int32_t rank, v1::LogStream stream, int64_t offset, absl::string_view data);

  // Prints every held line start, each ended with a newline. Call at the end, and before
  // Reset().
  void Flush();

  // Forgets every stream's offset (after Flush): what follows is another attempt, whose
  // streams start again at offset 0.
  void Reset() { streams_.clear(); }

 private:
  struct StreamState {
    int64_t next_offset = 0;  // first byte not yet taken in
    std::string held;         // start of a line whose end has not arrived
  };
  std::ostream& OutputFor(v1::LogStream stream) { return stream == v1::STDERR ? *err_ : *out_; }
  static std::string Prefix(int32_t rank, v1::LogStream stream);
  void Emit(int32_t rank, v1::LogStream stream, StreamState& state, absl::string_view data);

  std::ostream* out_;
  std::ostream* err_;
  const bool prefix_ranks_;
  std::map<std::pair<int32_t, int>, StreamState> streams_;
};

}  // namespace drover::cli

#endif  // DROVER_CLI_LOG_PRINTER_H_
