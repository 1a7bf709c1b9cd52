#include "tests/testing/temp_dir.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"

namespace drover::testing {

TempDir::TempDir() {
  const char* base = getenv("TMPDIR");
  std::string pattern = absl::StrCat(base != nullptr ? base : "/tmp", "/drover-test-XXXXXX");
  char* made = mkdtemp(pattern.data());
  if (made == nullptr) abort();  // a test machine without a writable /tmp cannot test
  path_ = made;
  // Searchable (not readable) by others: the root of a job container with a user namespace
  // is an unprivileged host uid, which must reach the bundles and job folders below.
  chmod(made, 0711);
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

}  // namespace drover::testing
