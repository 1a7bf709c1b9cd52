// Fuzz target: common/archive/safe_extract.h, how the agent unpacks snapshots and the CLI
// job outputs, both of which a user or a job made. Invariants: after an error nothing is
// left in the destination's folder; after success the destination is the only thing there,
// it holds only folders, regular files and links, every link stays inside the tree, and
// the files hold no more than the limits allow. Small limits keep each run quick.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/archive/archive_paths.h"
#include "common/archive/safe_extract.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

constexpr uint64_t kMaxTotalBytes = 1 << 20;
constexpr uint64_t kMaxEntries = 1000;

struct Walk {
  uint64_t entries = 0;      // files and links: folders may be made for an entry's parents
  uint64_t file_bytes = 0;  // of every regular file seen, hard links counted each time
};

// Checks every entry below `root`/`relative` without following links.
void CheckTree(const std::string& root, const std::string& relative, Walk* walk) {
  std::string folder = relative.empty() ? root : root + "/" + relative;
  for (const std::string& name : drover::fuzz::ListFolder(folder)) {
    std::string entry = relative.empty() ? name : relative + "/" + name;
    std::string path = root + "/" + entry;
    struct stat st;
    FUZZ_CHECK(lstat(path.c_str(), &st) == 0, entry);
    FUZZ_CHECK((st.st_mode & (S_ISUID | S_ISGID | S_ISVTX)) == 0, entry + " keeps setuid, setgid or sticky");
    if (S_ISDIR(st.st_mode)) {
      CheckTree(root, entry, walk);
      continue;
    }
    ++walk->entries;
    if (S_ISLNK(st.st_mode)) {
      std::string target(4096, '\0');
      ssize_t n = readlink(path.c_str(), target.data(), target.size());
      FUZZ_CHECK(n > 0, entry);
      target.resize(static_cast<size_t>(n));
      FUZZ_CHECK(drover::archive::SymlinkStaysInside(entry, target), entry + " -> " + target);
    } else {
      FUZZ_CHECK(S_ISREG(st.st_mode), entry + " is neither folder, file nor link");
      walk->file_bytes += static_cast<uint64_t>(st.st_size);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace drover;
  const std::string& scratch = fuzz::ScratchDir();
  const std::string tar_path = scratch + "/input.tar";
  const std::string parent = scratch + "/parent";
  const std::string dest = parent + "/dest";
  fuzz::WriteFileOrDie(tar_path, fuzz::AsText(data, size));
  fuzz::RemoveTree(parent);
  FUZZ_CHECK(mkdir(parent.c_str(), 0700) == 0, parent);

  archive::ExtractOptions options;
  options.max_total_bytes = kMaxTotalBytes;
  options.max_file_bytes = kMaxTotalBytes / 2;
  options.max_entries = kMaxEntries;
  absl::StatusOr<archive::ExtractResult> result = archive::ExtractTar(tar_path, dest, options);

  std::vector<std::string> scratch_names = fuzz::ListFolder(scratch);
  std::sort(scratch_names.begin(), scratch_names.end());
  FUZZ_CHECK((scratch_names == std::vector<std::string>{"input.tar", "parent"}),
             "something was written beside the destination's folder");
  std::vector<std::string> beside = fuzz::ListFolder(parent);
  if (!result.ok()) {
    FUZZ_CHECK(beside.empty(), absl::StrCat(result.status().ToString(), " left ", beside.front()));
    return 0;
  }
  FUZZ_CHECK(beside == std::vector<std::string>{"dest"}, "something was left beside the destination");
  struct stat st;
  FUZZ_CHECK(lstat(dest.c_str(), &st) == 0 && S_ISDIR(st.st_mode), "the destination is no folder");
  Walk walk;
  CheckTree(dest, "", &walk);
  FUZZ_CHECK(walk.entries <= result->entry_count,
             absl::StrCat(walk.entries, " files and links found, ", result->entry_count,
                          " entries reported"));
  FUZZ_CHECK(result->total_bytes <= kMaxTotalBytes, absl::StrCat(result->total_bytes, " bytes"));
  fuzz::RemoveTree(parent);
  return 0;
}
