#include "bench/token_check_bench.h"

#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "server/auth.h"
#include "storage/sqlite_store.h"

namespace drover::bench {
namespace {

using SteadyClock = std::chrono::steady_clock;

absl::Duration Since(SteadyClock::time_point start) {
  return absl::FromChrono(SteadyClock::now() - start);
}

}  // namespace

absl::StatusOr<TokenCheckResult> RunTokenCheckBench(const TokenCheckOptions& options) {
  if (options.dir.empty()) return absl::InvalidArgumentError("--dir: required");
  if (options.users < 1 || options.count < 1 || options.threads < 1 || options.threads > 64) {
    return absl::InvalidArgumentError(
        "--users and --count must be at least 1, --threads 1 to 64");
  }
  std::string scratch = absl::StrCat(options.dir, "/token-check-XXXXXX");
  if (mkdtemp(scratch.data()) == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot create a folder in ", options.dir));
  }
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code ignored;
      std::filesystem::remove_all(dir, ignored);
    }
  } cleanup{scratch};

  absl::StatusOr<std::unique_ptr<storage::SqliteStore>> store =
      storage::SqliteStore::Open({.path = scratch + "/drover.db"});
  if (!store.ok()) return absl::UnavailableError(store.status().message());
  std::vector<std::string> tokens;
  for (int64_t i = 0; i < options.users; ++i) {
    absl::StatusOr<std::string> token = server::NewUserToken();
    if (!token.ok()) return token.status();
    tokens.push_back(*token);
    storage::UserRecord record;
    record.user.set_name(absl::StrCat("user-", i));
    record.user.set_role(v1::User::USER);
    record.token_sha256 = server::HashUserToken(*token);
    std::promise<absl::Status> created;
    (*store)->CreateUser(std::move(record),
                         [&created](absl::Status s) { created.set_value(std::move(s)); });
    if (absl::Status s = created.get_future().get(); !s.ok()) {
      return absl::UnavailableError(absl::StrCat("cannot create the users: ", s.message()));
    }
  }

  absl::Mutex mu;
  std::vector<absl::Duration> hashes;
  std::vector<absl::Duration> checks;
  absl::Status failure;
  auto work = [&](int64_t thread) {
    std::vector<absl::Duration> my_hashes;
    std::vector<absl::Duration> my_checks;
    my_hashes.reserve(options.count);
    my_checks.reserve(options.count);
    absl::Status my_failure;
    for (int64_t i = 0; i < options.count; ++i) {
      const std::string& token = tokens[(i * 7919 + thread) % tokens.size()];
      SteadyClock::time_point start = SteadyClock::now();
      std::string hash = server::HashUserToken(token);
      my_hashes.push_back(Since(start));
      absl::StatusOr<v1::User> user = (*store)->FindUserByToken(hash);
      my_checks.push_back(Since(start));
      if (!user.ok() && my_failure.ok()) my_failure = absl::InternalError(user.status().message());
    }
    absl::MutexLock lock(&mu);
    hashes.insert(hashes.end(), my_hashes.begin(), my_hashes.end());
    checks.insert(checks.end(), my_checks.begin(), my_checks.end());
    if (failure.ok()) failure = my_failure;
  };
  SteadyClock::time_point start = SteadyClock::now();
  std::vector<std::thread> threads;
  for (int64_t t = 0; t < options.threads; ++t) threads.emplace_back(work, t);
  for (std::thread& t : threads) t.join();
  absl::Duration elapsed = Since(start);
  if (!failure.ok()) return failure;

  TokenCheckResult result;
  result.checks_per_second =
      static_cast<double>(options.count * options.threads) / absl::ToDoubleSeconds(elapsed);
  result.hash = Summarize(std::move(hashes));
  result.check = Summarize(std::move(checks));
  return result;
}

}  // namespace drover::bench
