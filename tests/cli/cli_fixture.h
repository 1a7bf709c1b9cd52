// CliTest: runs the drover command table against FakeDroverClient with captured stdout and
// stderr, a fixed clock and recorded sleeps. Shared by the command tests.
#ifndef DROVER_TESTS_CLI_CLI_FIXTURE_H_
#define DROVER_TESTS_CLI_CLI_FIXTURE_H_

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cli/fake_drover_client.h"

namespace drover::cli {

// Writes `contents` to a fresh file under the test's temporary folder and returns its path.
inline std::string WriteTempFile(absl::string_view name, absl::string_view contents) {
  const ::testing::TestInfo* test = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string path = absl::StrCat(::testing::TempDir(), "/cli_test_", test->name(), "_", name);
  std::ofstream(path) << contents;
  return path;
}

class CliTest : public ::testing::Test {
 protected:
  CliTest() {
    ctx_.out = &out_;
    ctx_.err = &err_;
    ctx_.in = &in_;
    ctx_.getenv = [this](absl::string_view name) -> std::optional<std::string> {
      auto it = env_.find(std::string(name));
      if (it == env_.end()) return std::nullopt;
      return it->second;
    };
    ctx_.connect = [this](const ConnectOptions& options)
        -> absl::StatusOr<std::unique_ptr<DroverClient>> {
      server_.connects.push_back(options);
      return std::make_unique<FakeDroverClient>(&server_);
    };
    ctx_.now = [] { return absl::FromUnixSeconds(1'000'100); };
    ctx_.sleep = [this](absl::Duration d) { sleeps_.push_back(d); };
    ctx_.new_idempotency_key = [this]() -> absl::StatusOr<std::string> {
      return absl::StrCat("generated-", ++keys_);
    };
    ctx_.temp_dir = ::testing::TempDir();
  }

  int Run(std::vector<std::string> args) {
    out_.str("");
    err_.str("");
    return RunDrover(args, ctx_);
  }
  std::string out() const { return out_.str(); }
  std::string err() const { return err_.str(); }
  // Error output is one `drover: ...` line.
  void ExpectOneErrorLine(absl::string_view contains) {
    std::string text = err();
    EXPECT_THAT(text, ::testing::StartsWith("drover: "));
    EXPECT_THAT(text, ::testing::HasSubstr(std::string(contains)));
    EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
  }
  const v1::JobSpec& SubmittedSpec() {
    EXPECT_FALSE(server_.submits.empty());
    return server_.submits.back().spec();
  }

  FakeServer server_;
  std::map<std::string, std::string> env_;
  std::vector<absl::Duration> sleeps_;
  int keys_ = 0;
  std::ostringstream out_;
  std::ostringstream err_;
  std::istringstream in_;
  CliContext ctx_;
};

}  // namespace drover::cli

#endif  // DROVER_TESTS_CLI_CLI_FIXTURE_H_
