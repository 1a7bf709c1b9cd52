// A temporary folder for tests, apart from subprocess.h so that tests of a library (the
// stores) need not build droverd to get one. Used from one test thread.
#ifndef DROVER_TESTS_TESTING_TEMP_DIR_H_
#define DROVER_TESTS_TESTING_TEMP_DIR_H_

#include <string>

namespace drover::testing {

// A fresh folder under $TMPDIR (or /tmp), removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace drover::testing

#endif  // DROVER_TESTS_TESTING_TEMP_DIR_H_
