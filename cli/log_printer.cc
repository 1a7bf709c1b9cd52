#include "cli/log_printer.h"

#include "absl/strings/str_cat.h"

namespace drover::cli {

std::string LogPrinter::Prefix(int32_t rank, v1::LogStream stream) {
  return absl::StrCat(stream == v1::PREPARE ? "[node " : "[rank ", rank, "] ");
}

void LogPrinter::Add(int32_t rank, v1::LogStream stream, int64_t offset, absl::string_view data) {
  StreamState& state = streams_[{rank, static_cast<int>(stream)}];
  int64_t end = offset + static_cast<int64_t>(data.size());
  if (end <= state.next_offset) return;  // sent before
  if (offset < state.next_offset) data.remove_prefix(static_cast<size_t>(state.next_offset - offset));
  state.next_offset = end;
  Emit(rank, stream, state, data);
  OutputFor(stream).flush();
}

void LogPrinter::Emit(int32_t rank, v1::LogStream stream, StreamState& state,
                      absl::string_view data) {
  std::ostream& os = OutputFor(stream);
  if (!prefix_ranks_) {
    os << data;
    return;
  }
  std::string prefix = Prefix(rank, stream);
  while (!data.empty()) {
    size_t newline = data.find('\n');
    if (newline == absl::string_view::npos) {
      state.held.append(data.data(), data.size());
      if (state.held.size() > kMaxHeldBytes) {
        os << prefix << state.held << "\n";
        state.held.clear();
      }
      return;
    }
    os << prefix << state.held << data.substr(0, newline + 1);
    state.held.clear();
    data.remove_prefix(newline + 1);
  }
}

void LogPrinter::Flush() {
  for (auto& [key, state] : streams_) {
    if (state.held.empty()) continue;
    auto stream = static_cast<v1::LogStream>(key.second);
    OutputFor(stream) << Prefix(key.first, stream) << state.held << "\n";
    OutputFor(stream).flush();
    state.held.clear();
  }
}

}  // namespace drover::cli
