#include "tests/common/archive/archive_test_util.h"

#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/archive/sha256.h"

extern char** environ;

namespace drover::archive::testing {
namespace fs = std::filesystem;

namespace {

void Check(bool ok, const std::string& what) {
  if (!ok) throw std::runtime_error(absl::StrCat(what, ": ", std::strerror(errno)));
}

}  // namespace

ScratchDir::ScratchDir() {
  const char* tmp = getenv("TMPDIR");
  std::string pattern =
      absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/drover-archive-test-XXXXXX");
  Check(mkdtemp(pattern.data()) != nullptr, "mkdtemp");
  path_ = pattern;
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  // Make every folder writable first so that read-only ones can be emptied.
  for (auto it = fs::recursive_directory_iterator(path_, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_directory(ec) && !it->is_symlink(ec)) {
      chmod(it->path().c_str(), 0700);
    }
  }
  chmod(path_.c_str(), 0700);
  fs::remove_all(path_, ec);
}

void MakeDirs(const std::string& path) { fs::create_directories(path); }

void WriteFile(const std::string& path, const std::string& contents, mode_t mode) {
  fs::create_directories(fs::path(path).parent_path());
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  Check(fd >= 0, "open " + path);
  Check(write(fd, contents.data(), contents.size()) == static_cast<ssize_t>(contents.size()),
        "write " + path);
  Check(fchmod(fd, mode) == 0, "fchmod " + path);
  close(fd);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

void MakeSymlink(const std::string& target, const std::string& path) {
  fs::create_directories(fs::path(path).parent_path());
  Check(symlink(target.c_str(), path.c_str()) == 0, "symlink " + path);
}

void SetMtime(const std::string& path, int64_t seconds) {
  struct timespec times[2];
  times[0].tv_sec = times[1].tv_sec = seconds;
  times[0].tv_nsec = times[1].tv_nsec = 0;
  Check(utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW) == 0, "utimensat");
}

std::map<std::string, std::string> DescribeTree(const std::string& root) {
  std::map<std::string, std::string> tree;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
       ++it) {
    std::string rel = it->path().lexically_relative(root).generic_string();
    struct stat st;
    Check(lstat(it->path().c_str(), &st) == 0, "lstat");
    if (S_ISLNK(st.st_mode)) {
      tree[rel] = "link -> " + fs::read_symlink(it->path()).string();
    } else if (S_ISDIR(st.st_mode)) {
      tree[rel] = absl::StrFormat("dir %04o", st.st_mode & 07777);
    } else if (S_ISREG(st.st_mode)) {
      tree[rel] =
          absl::StrFormat("file %04o %s", st.st_mode & 07777, Sha256Digest(ReadFile(it->path())));
    } else {
      tree[rel] = "other";
    }
  }
  return tree;
}

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

int RunProgram(const std::vector<std::string>& argv, std::string* output) {
  std::string out_path;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (output != nullptr) {
    char pattern[] = "/tmp/drover-archive-run-XXXXXX";
    int fd = mkstemp(pattern);
    Check(fd >= 0, "mkstemp");
    close(fd);
    out_path = pattern;
    posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_TRUNC, 0);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
  }
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return -1;
  int status = 0;
  waitpid(pid, &status, 0);
  if (output != nullptr) {
    *output = ReadFile(out_path);
    unlink(out_path.c_str());
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string RawTar::Header(const RawEntry& entry, bool gnu_magic) {
  char block[512] = {};
  auto put = [&block](size_t offset, size_t size, const std::string& value) {
    std::memcpy(block + offset, value.data(), std::min(size, value.size()));
  };
  auto octal = [&put](size_t offset, size_t size, uint64_t value) {
    put(offset, size, absl::StrFormat("%0*o", static_cast<int>(size - 1), value));
  };
  put(0, 100, entry.name);
  octal(100, 8, entry.mode);
  octal(108, 8, 0);
  octal(116, 8, 0);
  octal(124, 12,
        entry.size_override >= 0 ? static_cast<uint64_t>(entry.size_override) : entry.data.size());
  octal(136, 12, 0);
  block[156] = entry.type;
  put(157, 100, entry.linkname);
  if (gnu_magic) {
    put(257, 8, std::string("ustar  \0", 8));
  } else {
    put(257, 6, std::string("ustar\0", 6));
    put(263, 2, "00");
  }
  std::memset(block + 148, ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : block) sum += c;
  put(148, 8, absl::StrFormat("%06o", sum) + std::string("\0 ", 2));
  return std::string(block, sizeof(block));
}

RawTar& RawTar::Add(const RawEntry& entry) {
  bytes_ += Header(entry);
  bytes_ += entry.data;
  bytes_.append((512 - entry.data.size() % 512) % 512, '\0');
  return *this;
}

RawTar& RawTar::File(const std::string& name, const std::string& data, uint32_t mode) {
  return Add({.name = name, .type = '0', .data = data, .mode = mode});
}

RawTar& RawTar::Dir(const std::string& name, uint32_t mode) {
  return Add({.name = name, .type = '5', .mode = mode});
}

RawTar& RawTar::Symlink(const std::string& name, const std::string& target) {
  return Add({.name = name, .type = '2', .linkname = target, .mode = 0777});
}

RawTar& RawTar::HardLink(const std::string& name, const std::string& target) {
  return Add({.name = name, .type = '1', .linkname = target});
}

RawTar& RawTar::Pax(const std::vector<std::pair<std::string, std::string>>& records) {
  std::string data;
  for (const auto& [key, value] : records) {
    size_t rest = key.size() + value.size() + 3;
    size_t length = rest + 1;
    while (absl::StrCat(length).size() + rest != length) {
      length = absl::StrCat(length).size() + rest;
    }
    data += absl::StrCat(length, " ", key, "=", value, "\n");
  }
  return Add({.name = "PaxHeader", .type = 'x', .data = data});
}

RawTar& RawTar::GnuLongName(const std::string& name) {
  RawEntry entry{.name = "././@LongLink", .type = 'L', .data = name + std::string(1, '\0')};
  bytes_ += Header(entry, /*gnu_magic=*/true);
  bytes_ += entry.data;
  bytes_.append((512 - entry.data.size() % 512) % 512, '\0');
  return *this;
}

RawTar& RawTar::Bytes(const std::string& bytes) {
  bytes_ += bytes;
  return *this;
}

std::string RawTar::Finish(bool terminate) const {
  return terminate ? bytes_ + std::string(1024, '\0') : bytes_;
}

}  // namespace drover::archive::testing
