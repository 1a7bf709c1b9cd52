// Helpers shared by the fuzz targets of tests/fuzz: an invariant check that aborts (so that
// libFuzzer, or the replay test, reports the input) and a scratch folder for the targets
// that need files. One fuzzing process runs one input at a time.
#ifndef DROVER_TESTS_FUZZ_FUZZ_UTIL_H_
#define DROVER_TESTS_FUZZ_FUZZ_UTIL_H_

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

// Aborts with the condition and a message when an invariant of a parser does not hold.
#define FUZZ_CHECK(condition, message)                                                 \
  do {                                                                                 \
    if (!(condition)) {                                                                \
      std::fprintf(stderr, "%s:%d: invariant failed: %s: %s\n", __FILE__, __LINE__,   \
                   #condition, std::string(message).c_str());                          \
      std::abort();                                                                    \
    }                                                                                  \
  } while (0)

namespace drover::fuzz {

// The bytes of a fuzz input.
inline absl::string_view AsText(const uint8_t* data, size_t size) {
  return absl::string_view(reinterpret_cast<const char*>(data), size);
}

// Removes `path` and everything below it without following links; folders are made
// searchable first, so that entries with mode 000 go too. Best effort.
inline void RemoveTree(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    chmod(path.c_str(), 0700);
    if (DIR* dir = opendir(path.c_str())) {
      std::vector<std::string> names;
      while (dirent* entry = readdir(dir)) {
        std::string name = entry->d_name;
        if (name != "." && name != "..") names.push_back(name);
      }
      closedir(dir);
      for (const std::string& name : names) RemoveTree(path + "/" + name);
    }
    rmdir(path.c_str());
  } else {
    unlink(path.c_str());
  }
}

// The names in folder `path` ("." and ".." left out), or an empty list.
inline std::vector<std::string> ListFolder(const std::string& path) {
  std::vector<std::string> names;
  if (DIR* dir = opendir(path.c_str())) {
    while (dirent* entry = readdir(dir)) {
      std::string name = entry->d_name;
      if (name != "." && name != "..") names.push_back(name);
    }
    closedir(dir);
  }
  return names;
}

// A scratch folder under $TMPDIR (else /tmp), made on first use and removed at exit.
inline const std::string& ScratchDir() {
  static const std::string* dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                          "/drover-fuzz-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) {
      std::perror("mkdtemp");
      std::abort();
    }
    auto* made = new std::string(pattern);
    std::atexit([] { RemoveTree(ScratchDir()); });
    return made;
  }();
  return *dir;
}

// Writes `bytes` to `path` (created or truncated); aborts when it cannot.
inline void WriteFileOrDie(const std::string& path, absl::string_view bytes) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  FUZZ_CHECK(fd >= 0, path);
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
    FUZZ_CHECK(n > 0, path);
    done += static_cast<size_t>(n);
  }
  close(fd);
}

}  // namespace drover::fuzz

#endif  // DROVER_TESTS_FUZZ_FUZZ_UTIL_H_
