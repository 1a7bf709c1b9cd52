// FailFileWrites: while one is alive, every write of this process to a regular file fails
// with EFBIG (RLIMIT_FSIZE 0, SIGXFSZ ignored), as when the disk refuses writes; reads go
// on. For in-process tests of droverd's stores. Create and destroy on the test thread.
#ifndef DROVER_TESTS_TESTING_FAIL_FILE_WRITES_H_
#define DROVER_TESTS_TESTING_FAIL_FILE_WRITES_H_

#include <signal.h>
#include <sys/resource.h>

namespace drover::testing {

class FailFileWrites {
 public:
  FailFileWrites() {
    getrlimit(RLIMIT_FSIZE, &saved_);
    saved_handler_ = signal(SIGXFSZ, SIG_IGN);
    rlimit none = saved_;
    none.rlim_cur = 0;
    setrlimit(RLIMIT_FSIZE, &none);
  }
  ~FailFileWrites() {
    setrlimit(RLIMIT_FSIZE, &saved_);
    signal(SIGXFSZ, saved_handler_);
  }
  FailFileWrites(const FailFileWrites&) = delete;
  FailFileWrites& operator=(const FailFileWrites&) = delete;

 private:
  rlimit saved_{};
  sighandler_t saved_handler_;
};

}  // namespace drover::testing

#endif  // DROVER_TESTS_TESTING_FAIL_FILE_WRITES_H_
