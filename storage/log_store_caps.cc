#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <sstream>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/safe_open.h"
#include "storage/log_store.h"
#include "storage/log_store_internal.h"

namespace drover::storage {

namespace log_store_internal {

// memchr rather than a loop over every byte: metric chunks of 256 KiB hold ~4,000 lines.
int64_t Lines(absl::string_view data) {
  int64_t lines = 0;
  const char* at = data.data();
  const char* end = at + data.size();
  while (at < end) {
    const void* newline = std::memchr(at, '\n', static_cast<size_t>(end - at));
    if (newline == nullptr) break;
    ++lines;
    at = static_cast<const char*>(newline) + 1;
  }
  return lines;
}

}  // namespace log_store_internal

using log_store_internal::IsMetricStream;
using log_store_internal::Lines;

std::string LogCapNote(v1::LogStream stream, int64_t cap) {
  if (IsMetricStream(stream)) {
    return absl::StrCat("{\"drover_note\":\"capped\",\"max_records\":", cap, "}\n");
  }
  return absl::StrCat("[drover: log truncated at ", cap,
                      " bytes (droverd --max-log-bytes); the rest of this stream is dropped]\n");
}

std::string LogDroppedNote(v1::LogStream stream, int64_t dropped_bytes, int64_t dropped_records) {
  if (IsMetricStream(stream)) {
    return absl::StrCat("{\"drover_note\":\"dropped\",\"records\":", dropped_records,
                        ",\"bytes\":", dropped_bytes, "}\n");
  }
  return absl::StrCat("[drover: ", dropped_bytes, " bytes dropped past the cap]\n");
}

void LogStore::LoadCap(const LogStreamKey& key, int fd, const std::string& path,
                       File& file) const {
  if (IsMetricStream(key.stream) && limits_.max_metric_records > 0) {
    // Counted once per droverd start; the file is at most about the cap.
    std::string buffer(1 << 16, '\0');
    for (int64_t at = 0; at < file.size;) {
      ssize_t n = ::pread(fd, buffer.data(), buffer.size(), at);
      if (n <= 0) break;
      file.records += Lines(absl::string_view(buffer.data(), static_cast<size_t>(n)));
      at += n;
    }
  }
  // A cap reached before a restart: the sidecar has where and what came after; without
  // it (lost in a crash) a stream above its cap was capped all the same.
  absl::StatusOr<std::string> text =
      ReadSmallFileBeneath(root_fd_, RelativePathOf(key) + ".capped", 256);
  std::istringstream sidecar(text.ok() ? *text : "");
  int64_t cap_at = 0, received = 0, dropped_records = 0;
  if (sidecar >> cap_at >> received >> dropped_records) {
    file.capped = true;
    file.cap_at = cap_at;
    file.received = std::max(received, file.size);
    file.dropped_records = dropped_records;
  } else if ((IsMetricStream(key.stream) && limits_.max_metric_records > 0 &&
              file.records > limits_.max_metric_records) ||
             (!IsMetricStream(key.stream) && limits_.max_log_bytes > 0 &&
              file.size > limits_.max_log_bytes)) {
    file.capped = true;
    file.cap_at = file.size;
  }
}

void LogStore::SaveCap(const LogStreamKey& key, const File& file) {
  // Not synced: without it a restarted droverd still sees the cap (the note put the file
  // above it) and at worst counts some dropped bytes twice.
  absl::StatusOr<int> fd = OpenGuarded(RelativePathOf(key) + ".capped", O_WRONLY | O_CREAT | O_TRUNC);
  if (!fd.ok()) return;
  std::string text = absl::StrCat(file.cap_at, " ", file.received, " ", file.dropped_records, "\n");
  if (::pwrite(*fd, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size())) {
    Log(LogLevel::kDebug, "log_cap_unsaved", {{"path", PathOf(key)}});
  }
  ::close(*fd);
}

absl::StatusOr<int64_t> LogStore::AppendCapped(const LogStreamKey& key, File& file,
                                               int64_t offset, absl::string_view rest) {
  const bool metrics = IsMetricStream(key.stream);
  const int64_t cap = metrics ? limits_.max_metric_records : limits_.max_log_bytes;
  absl::string_view keep;
  if (metrics) {
    // Whole lines up to the cap.
    int64_t allowed = std::max<int64_t>(0, cap - file.records);
    size_t end = 0;
    for (int64_t i = 0; i < allowed; ++i) {
      size_t newline = rest.find('\n', end);
      if (newline == absl::string_view::npos) break;
      end = newline + 1;
    }
    keep = rest.substr(0, end);
  } else {
    keep = rest.substr(0, static_cast<size_t>(std::max<int64_t>(0, cap - file.size)));
  }
  char last = '\n';
  if (!keep.empty()) {
    last = keep.back();
  } else if (file.size > 0 && ::pread(file.fd, &last, 1, file.size - 1) != 1) {
    last = '\n';
  }
  std::string text = absl::StrCat(keep, last == '\n' ? "" : "\n", LogCapNote(key.stream, cap));
  const int64_t stored_before = file.size;
  if (absl::Status written = WriteAt(key, file, text); !written.ok()) return written;
  absl::string_view dropped = rest.substr(keep.size());
  file.capped = true;
  file.cap_at = stored_before + static_cast<int64_t>(keep.size());
  file.received = stored_before + static_cast<int64_t>(rest.size());  // the chunk's end
  file.dropped_records = Lines(dropped);
  SaveCap(key, file);
  Log(LogLevel::kWarning, "log_capped",
      {{"job", key.job_id}, {"epoch", key.epoch}, {"rank", key.rank},
       {"stream", absl::AsciiStrToLower(v1::LogStream_Name(key.stream))}, {"cap", cap}});
  if (on_dropped_ && !dropped.empty()) on_dropped_(key.stream, static_cast<int64_t>(dropped.size()));
  return file.received;
}

}  // namespace drover::storage
