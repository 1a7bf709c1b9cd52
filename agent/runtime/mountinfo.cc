// The mountinfo reader (mountinfo.h): decoding of its escapes and its lines.
#include "agent/runtime/mountinfo.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "agent/runtime/runtime_files.h"

namespace drover::agent {

std::string UnescapeMountField(absl::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 3 < text.size()) {
      int value = 0;
      bool octal = true;
      for (size_t j = 1; j <= 3; ++j) {
        char c = text[i + j];
        if (c < '0' || c > '7') octal = false;
        value = value * 8 + (c - '0');
      }
      if (octal) {
        out.push_back(static_cast<char>(value));
        i += 3;
        continue;
      }
    }
    out.push_back(text[i]);
  }
  return out;
}

std::vector<MountEntry> ParseMountInfo(absl::string_view text) {
  std::vector<MountEntry> mounts;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS
    std::vector<absl::string_view> fields = absl::StrSplit(line, ' ');
    auto dash = std::find(fields.begin(), fields.end(), "-");
    if (fields.size() < 5 || dash == fields.end() || fields.end() - dash < 4) continue;
    MountEntry entry;
    entry.mount_point = UnescapeMountField(fields[4]);
    entry.fs_type = std::string(dash[1]);
    entry.super_options = std::string(dash[3]);
    mounts.push_back(std::move(entry));
  }
  return mounts;
}

std::vector<MountEntry> ReadMountInfo() {
  absl::StatusOr<std::string> text = ReadFile("/proc/self/mountinfo");
  if (!text.ok()) return {};
  return ParseMountInfo(*text);
}

bool IsAtOrUnder(absl::string_view path, absl::string_view dir) {
  return path == dir ||
         (absl::StartsWith(path, dir) && path.size() > dir.size() && path[dir.size()] == '/');
}

}  // namespace drover::agent
