// Helpers for the common/archive tests: scratch folders, building file trees, describing a
// tree for comparison, running the system `tar`, and writing tar headers by hand (so that
// hostile archives can be made without trusting the writer under test).
#ifndef DROVER_TESTS_COMMON_ARCHIVE_ARCHIVE_TEST_UTIL_H_
#define DROVER_TESTS_COMMON_ARCHIVE_ARCHIVE_TEST_UTIL_H_

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace drover::archive::testing {

// A fresh folder under $TMPDIR (or /tmp), removed with everything below it (read-only
// folders included) on destruction.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& relative) const { return path_ + "/" + relative; }

 private:
  std::string path_;
};

// Creates the file (and its missing parent folders) with `contents` and exactly `mode`.
void WriteFile(const std::string& path, const std::string& contents, mode_t mode = 0644);
std::string ReadFile(const std::string& path);
void MakeDirs(const std::string& path);
void MakeSymlink(const std::string& target, const std::string& path);
// Sets the file's modification time (without following links).
void SetMtime(const std::string& path, int64_t seconds);

// Every path below `root` (relative, sorted) mapped to a description: "dir 0755",
// "file 0644 <contents digest>", "link -> target".
std::map<std::string, std::string> DescribeTree(const std::string& root);
// The relative paths directly inside `dir`, sorted.
std::vector<std::string> ListDir(const std::string& dir);

// Runs `argv` (argv[0] looked up in PATH) and returns its exit code, or -1; its stdout and
// stderr go to `output` when given.
int RunProgram(const std::vector<std::string>& argv, std::string* output = nullptr);

// Hand-made tar archives.
struct RawEntry {
  std::string name;
  char type = '0';
  std::string data;  // written after the header, padded to 512 bytes
  std::string linkname;
  uint32_t mode = 0644;
  // When set, the size field says this instead of data.size().
  int64_t size_override = -1;
};

class RawTar {
 public:
  RawTar& Add(const RawEntry& entry);
  RawTar& File(const std::string& name, const std::string& data, uint32_t mode = 0644);
  RawTar& Dir(const std::string& name, uint32_t mode = 0755);
  RawTar& Symlink(const std::string& name, const std::string& target);
  RawTar& HardLink(const std::string& name, const std::string& target);
  // A pax extended header ('x') carrying the given records for the next entry.
  RawTar& Pax(const std::vector<std::pair<std::string, std::string>>& records);
  // A GNU long name ('L') header for the next entry.
  RawTar& GnuLongName(const std::string& name);
  // Raw bytes appended as they are.
  RawTar& Bytes(const std::string& bytes);
  // The archive with two zero blocks at the end (unless `terminate` is false).
  std::string Finish(bool terminate = true) const;

  // One header block, checksum included.
  static std::string Header(const RawEntry& entry, bool gnu_magic = false);

 private:
  std::string bytes_;
};

}  // namespace drover::archive::testing

#endif  // DROVER_TESTS_COMMON_ARCHIVE_ARCHIVE_TEST_UTIL_H_
