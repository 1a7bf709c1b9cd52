// Crash safety of droverd's submit path, end to end: concurrent clients submit jobs under
// unique idempotency keys while droverd is killed (SIGKILL) at a random moment, then
// droverd restarts on the same state folder and the test checks what a user would notice:
// every acknowledged job is there under its id, resubmitting any key yields exactly one
// job, listing shows no job twice, and the SQLite file is intact. A graceful stop
// (SIGTERM) during submits must exit 0 and must not acknowledge what it did not store.
//
// The kill moments come from a seeded PRNG; the seed is printed, and DROVER_CRASH_SEED=N
// replays a run.
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "drover/v1/job_service.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/testing/cluster.h"
#include "tests/testing/local_cluster.h"
#include "tests/testing/subprocess.h"

namespace drover {
namespace {

using drover::testing::DroverdProcess;
// With DROVER_TEST_STORE=postgres droverd keeps its state in PostgreSQL: there is no
// drover.db to check.
using drover::testing::StateOnPostgres;

constexpr int kClients = 16;
constexpr int kRounds = 5;
// Generous: the machine is shared and noisy. Deadlines only bound a hung droverd.
constexpr absl::Duration kRpcDeadline = absl::Seconds(20);
constexpr absl::Duration kProgressDeadline = absl::Seconds(30);
const std::vector<std::string> kDroverdArgs = {"--log-level", "warning"};

std::shared_ptr<grpc::Channel> Connect(const std::string& address, int distinct) {
  // Distinct channel arguments give each client its own connection, as separate processes
  // would have.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt("drover.test.channel", distinct);
  return grpc::CreateCustomChannel(address, testing::TlsCredentials(), args);
}

void SetDeadline(grpc::ClientContext& context, absl::Duration timeout) {
  context.set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout));
}

v1::SubmitJobRequest SubmitRequest(const std::string& key) {
  v1::SubmitJobRequest request;
  request.mutable_spec()->set_entry_script("train.py");
  request.mutable_spec()->set_idempotency_key(key);
  return request;
}

// Waits until `done()` holds, polling; false after `timeout`.
template <typename Fn>
bool PollUntil(Fn done, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

// What one submit of the load got back.
struct Outcome {
  std::string key;
  bool acked = false;
  std::string job_id;  // when acked
  bool created = false;
  grpc::StatusCode code = grpc::StatusCode::OK;
  std::string message;  // when not acked
};

// `kClients` threads, each with its own connection, each submitting new keys back-to-back
// until Stop() or until its first failed submit (after which droverd is gone or stopping).
class SubmitLoad {
 public:
  SubmitLoad(std::string address, std::string key_prefix)
      : address_(std::move(address)), key_prefix_(std::move(key_prefix)), outcomes_(kClients) {}
  ~SubmitLoad() { Stop(); }

  // Connects every client, then lets them all go at once. False when they could not
  // connect within the progress deadline.
  bool Start() {
    for (int i = 0; i < kClients; ++i) threads_.emplace_back([this, i] { RunClient(i); });
    bool connected = PollUntil([this] { return ready_.load() == kClients; }, kProgressDeadline);
    go_.store(true);
    return connected;
  }

  int64_t acked() const { return acked_.load(); }

  // Asks the clients to stop after their current submit and waits for them.
  void Stop() {
    stop_.store(true);
    go_.store(true);
    for (std::thread& t : threads_) t.join();
    threads_.clear();
  }

  // After Stop(): every submit made, in no particular order.
  std::vector<Outcome> outcomes() const {
    std::vector<Outcome> all;
    for (const auto& per_client : outcomes_) all.insert(all.end(), per_client.begin(), per_client.end());
    return all;
  }

 private:
  void RunClient(int index) {
    std::shared_ptr<grpc::Channel> channel = Connect(address_, index);
    channel->WaitForConnected(std::chrono::system_clock::now() +
                              absl::ToChronoMilliseconds(kProgressDeadline));
    auto stub = v1::JobService::NewStub(channel);
    ready_.fetch_add(1);
    while (!go_.load()) absl::SleepFor(absl::Microseconds(100));
    std::vector<Outcome>& mine = outcomes_[index];
    for (int n = 0; !stop_.load(); ++n) {
      Outcome outcome{.key = absl::StrCat(key_prefix_, "-c", index, "-", n)};
      v1::SubmitJobRequest request = SubmitRequest(outcome.key);
      v1::SubmitJobResponse response;
      grpc::ClientContext context;
      SetDeadline(context, kRpcDeadline);
      grpc::Status status = stub->SubmitJob(&context, request, &response);
      if (status.ok()) {
        outcome.acked = true;
        outcome.job_id = response.job().id();
        outcome.created = response.created();
        acked_.fetch_add(1);
      } else {
        outcome.code = status.error_code();
        outcome.message = status.error_message();
      }
      mine.push_back(std::move(outcome));
      if (!status.ok()) break;
    }
  }

  const std::string address_;
  const std::string key_prefix_;
  std::vector<std::thread> threads_;
  std::vector<std::vector<Outcome>> outcomes_;  // [client], each written by its thread only
  std::atomic<int> ready_{0};
  std::atomic<bool> go_{false};
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> acked_{0};
};

// Runs `fn(i)` for i in [0, n) on `threads` threads.
template <typename Fn>
void ParallelFor(size_t n, int threads, Fn fn) {
  std::atomic<size_t> next{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      for (size_t i = next.fetch_add(1); i < n; i = next.fetch_add(1)) fn(i);
    });
  }
  for (std::thread& w : workers) w.join();
}

// SQLite's own consistency check of the database file at `path`: "ok" when intact,
// otherwise the problems it lists (or why it could not run).
std::string IntegrityCheck(const std::string& path, bool read_only) {
  sqlite3* db = nullptr;
  int flags = read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
  if (sqlite3_open_v2(path.c_str(), &db, flags, nullptr) != SQLITE_OK) {
    std::string error = absl::StrCat("cannot open ", path, ": ", sqlite3_errmsg(db));
    sqlite3_close(db);
    return error;
  }
  sqlite3_busy_timeout(db, 10000);
  std::string result;
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &stmt, nullptr) != SQLITE_OK) {
    result = absl::StrCat("cannot prepare integrity_check: ", sqlite3_errmsg(db));
  } else {
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      if (!result.empty()) result += "\n";
      result += reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
    if (rc != SQLITE_DONE) result += absl::StrCat("\nstep failed: ", sqlite3_errmsg(db));
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return result;
}

// Copies the database as the crash left it (main file and WAL) to `dir`, so that it can be
// checked without touching what the restarted droverd will open.
std::string CopyCrashImage(const std::string& state_dir, const std::string& dir) {
  std::filesystem::create_directories(dir);
  for (const char* suffix : {"", "-wal"}) {
    std::string from = absl::StrCat(state_dir, "/drover.db", suffix);
    if (std::filesystem::exists(from)) {
      std::filesystem::copy_file(from, absl::StrCat(dir, "/drover.db", suffix),
                                 std::filesystem::copy_options::overwrite_existing);
    }
  }
  return dir + "/drover.db";
}

std::string Describe(const Outcome& o) {
  return o.acked ? absl::StrCat(o.key, " -> ", o.job_id)
                 : absl::StrCat(o.key, " -> code ", static_cast<int>(o.code), ": ", o.message);
}

// The first `n` of `lines`, one per line, and how many were left out.
std::string FirstLines(const std::vector<std::string>& lines, size_t n) {
  std::string out;
  for (size_t i = 0; i < std::min(n, lines.size()); ++i) absl::StrAppend(&out, "  ", lines[i], "\n");
  if (lines.size() > n) absl::StrAppend(&out, "  ... and ", lines.size() - n, " more\n");
  return out;
}

// droverd alone (no root needed), killed and restarted on its state folder by the tests.
class CrashTest : public testing::LocalClusterTest {
 protected:
  CrashTest()
      : LocalClusterTest({.agents = 0, .droverd_flags = kDroverdArgs, .datastore_root = false},
                         /*needs_root=*/false) {}

  void SetUp() override {
    LocalClusterTest::SetUp();
    state_dir_ = dir_.path() + "/state";
  }

  // Checks a freshly (re)started droverd against what the clients saw in `outcomes`, and
  // records the job every key resolved to in `ledger_`:
  // - every acknowledged job is there, under its id and key;
  // - resubmitting every key (acknowledged or not) yields one job: the acknowledged one for
  //   acknowledged keys (created=false), and the same job again on a second resubmit;
  // - listing every page shows each key and id once, and exactly the jobs of the ledger;
  // - SQLite's integrity_check of the live database is ok.
  // Returns how many failed submits turned out to be stored (acknowledgements lost on the
  // way back, which the client must resolve by resubmitting).
  int64_t VerifyAfterRestart(const DroverdProcess& droverd, const std::vector<Outcome>& outcomes) {
    std::shared_ptr<grpc::Channel> channel = Connect(droverd.address(), 0);
    auto stub = v1::JobService::NewStub(channel);

    std::vector<std::string> missing;
    for (const Outcome& o : outcomes) {
      if (!o.acked) continue;
      v1::GetJobRequest request;
      request.set_job_id(o.job_id);
      v1::Job job;
      grpc::ClientContext context;
      SetDeadline(context, kRpcDeadline);
      grpc::Status status = stub->GetJob(&context, request, &job);
      if (!status.ok()) {
        missing.push_back(absl::StrCat(Describe(o), ": GetJob failed: ", status.error_message()));
      } else if (job.spec().idempotency_key() != o.key) {
        missing.push_back(absl::StrCat(Describe(o), ": GetJob returned key '",
                                       job.spec().idempotency_key(), "'"));
      }
    }
    EXPECT_TRUE(missing.empty()) << missing.size() << " acknowledged jobs lost after restart; "
                                 << "first ones:\n" << FirstLines(missing, 10);

    // Resubmit twice: the first resolves keys whose fate was unknown, the second must then
    // find every key already taken.
    std::atomic<int64_t> stored_unacked{0};
    for (int pass = 0; pass < 2; ++pass) {
      std::vector<std::string> wrong(outcomes.size());
      std::vector<std::string> resolved(outcomes.size());
      ParallelFor(outcomes.size(), kClients, [&](size_t i) {
        const Outcome& o = outcomes[i];
        v1::SubmitJobResponse response;
        grpc::ClientContext context;
        SetDeadline(context, kRpcDeadline);
        grpc::Status status = stub->SubmitJob(&context, SubmitRequest(o.key), &response);
        if (!status.ok()) {
          wrong[i] = absl::StrCat(Describe(o), ": resubmit failed: ", status.error_message());
          return;
        }
        resolved[i] = response.job().id();
        if (pass == 0 && !o.acked && !response.created()) stored_unacked.fetch_add(1);
        bool must_exist = o.acked || pass == 1;
        if (must_exist && response.created()) {
          wrong[i] = absl::StrCat(Describe(o), ": resubmit created a second job ",
                                  response.job().id());
        } else if (o.acked && response.job().id() != o.job_id) {
          wrong[i] = absl::StrCat(Describe(o), ": resubmit returned job ", response.job().id());
        }
      });
      std::vector<std::string> failures;
      for (size_t i = 0; i < outcomes.size(); ++i) {
        if (!wrong[i].empty()) failures.push_back(wrong[i]);
        if (resolved[i].empty()) continue;  // the resubmit itself failed
        auto [it, inserted] = ledger_.emplace(outcomes[i].key, resolved[i]);
        EXPECT_EQ(it->second, resolved[i]) << "key " << outcomes[i].key << " resolved to "
                                           << it->second << " before, now " << resolved[i];
      }
      EXPECT_TRUE(failures.empty()) << failures.size() << " keys did not resolve to exactly one "
                                    << "job on resubmit pass " << pass << "; first ones:\n"
                                    << FirstLines(failures, 10);
    }

    // Every page of the full listing.
    std::map<std::string, std::string> listed;  // key -> id
    std::set<std::string> ids;
    std::vector<std::string> wrong;
    v1::ListJobsRequest request;
    request.set_page_size(250);
    size_t max_pages = ledger_.size() / 250 + 10;
    for (size_t page = 0;; ++page) {
      if (page >= max_pages) {
        ADD_FAILURE() << "ListJobs keeps returning next_page_token after " << page << " pages";
        break;
      }
      v1::ListJobsResponse response;
      grpc::ClientContext context;
      SetDeadline(context, kRpcDeadline);
      grpc::Status status = stub->ListJobs(&context, request, &response);
      if (!status.ok()) {
        ADD_FAILURE() << "ListJobs: " << status.error_message();
        break;
      }
      for (const v1::Job& job : response.jobs()) {
        const std::string& key = job.spec().idempotency_key();
        if (!ids.insert(job.id()).second) {
          wrong.push_back(absl::StrCat("job ", job.id(), " listed twice"));
        }
        if (auto [it, inserted] = listed.emplace(key, job.id()); !inserted) {
          wrong.push_back(absl::StrCat("key '", key, "' listed for jobs ", it->second, " and ",
                                       job.id()));
        }
        auto known = ledger_.find(key);
        if (known == ledger_.end()) {
          wrong.push_back(absl::StrCat("job ", job.id(), " with key '", key,
                                       "' exists but no resubmit resolved that key to it"));
        } else if (known->second != job.id()) {
          wrong.push_back(absl::StrCat("job ", job.id(), " has key '", key,
                                       "', which resubmits resolved to ", known->second));
        }
      }
      if (response.next_page_token().empty()) break;
      request.set_page_token(response.next_page_token());
    }
    EXPECT_TRUE(wrong.empty()) << wrong.size() << " problems in the listing; first ones:\n"
                               << FirstLines(wrong, 10);
    EXPECT_EQ(listed.size(), ledger_.size()) << "jobs listed vs distinct keys submitted";

    if (!StateOnPostgres()) {
      EXPECT_EQ(IntegrityCheck(state_dir_ + "/drover.db", /*read_only=*/true), "ok");
    }
    return stored_unacked.load();
  }

  std::string state_dir_;
  std::map<std::string, std::string> ledger_;  // every key submitted -> the job it resolved to
};

uint64_t SeedFromEnvironmentOrRandom() {
  uint64_t seed = 0;
  const char* text = getenv("DROVER_CRASH_SEED");
  if (text != nullptr && absl::SimpleAtoi(text, &seed)) return seed;
  std::random_device random;
  return (static_cast<uint64_t>(random()) << 32) | random();
}

TEST_F(CrashTest, SigkillDuringSubmitsLosesAndDuplicatesNoJob) {
  uint64_t seed = SeedFromEnvironmentOrRandom();
  std::printf("crash test seed=%llu (replay with DROVER_CRASH_SEED=%llu)\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
  std::fflush(stdout);
  RecordProperty("seed", std::to_string(seed));
  std::mt19937_64 random(seed);

  ASSERT_FALSE(HasFatalFailure());

  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round, ", seed ", seed));
    // The kill comes after this many acknowledgements plus a random pause of up to 5 ms (a
    // random point within a commit). Round 0 kills as soon as the clients start, round 1
    // within the first few commits.
    int64_t kill_after_acks =
        round == 0 ? 0
                   : std::uniform_int_distribution<int64_t>(round == 1 ? 1 : 50,
                                                            round == 1 ? 50 : 2500)(random);
    absl::Duration pause =
        absl::Microseconds(std::uniform_int_distribution<int>(0, round == 0 ? 200 : 5000)(random));

    SubmitLoad load(droverd_->address(), absl::StrCat("r", round));
    ASSERT_TRUE(load.Start()) << "clients could not connect to droverd";
    ASSERT_TRUE(PollUntil([&] { return load.acked() >= kill_after_acks; }, kProgressDeadline))
        << "only " << load.acked() << " of " << kill_after_acks << " submits acknowledged";
    absl::SleepFor(pause);
    droverd_->Signal(SIGKILL);
    absl::StatusOr<int> status = droverd_->Wait(absl::Seconds(10));
    ASSERT_TRUE(status.ok()) << status.status();
    EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL) << "wait status " << *status;
    load.Stop();
    std::vector<Outcome> outcomes = load.outcomes();

    int64_t acked = 0;
    for (const Outcome& o : outcomes) {
      if (!o.acked) continue;
      ++acked;
      EXPECT_TRUE(o.created) << Describe(o) << ": a new key was acknowledged as an old job";
    }
    std::printf("round %d: killed after %lld acks (+%lld us); %lld acknowledged, %lld unknown\n",
                round, static_cast<long long>(kill_after_acks),
                static_cast<long long>(absl::ToInt64Microseconds(pause)),
                static_cast<long long>(acked), static_cast<long long>(outcomes.size() - acked));
    std::fflush(stdout);

    // The database exactly as the crash left it, before droverd touches it again (on
    // PostgreSQL the server did not crash: what droverd committed is all there is).
    if (!StateOnPostgres()) {
      std::string image = CopyCrashImage(state_dir_, absl::StrCat(dir_.path(), "/crash-", round));
      EXPECT_EQ(IntegrityCheck(image, /*read_only=*/false), "ok") << "crash image " << image;
    }

    StartDroverd();  // after SIGKILL
    ASSERT_FALSE(HasFatalFailure());
    int64_t stored_unacked = VerifyAfterRestart(*droverd_, outcomes);
    std::printf("round %d: %lld of the unknown submits turned out stored\n", round,
                static_cast<long long>(stored_unacked));
    if (HasFatalFailure()) return;
  }
  std::printf("%zu jobs after %d crashes\n", ledger_.size(), kRounds);
}

TEST_F(CrashTest, SigtermDuringSubmitsStopsCleanlyAndAcknowledgesOnlyStoredJobs) {
  ASSERT_FALSE(HasFatalFailure());
  std::string address = droverd_->address();

  SubmitLoad load(address, "term");
  ASSERT_TRUE(load.Start()) << "clients could not connect to droverd";
  ASSERT_TRUE(PollUntil([&] { return load.acked() >= 200; }, kProgressDeadline))
      << "only " << load.acked() << " submits acknowledged";
  absl::Time signalled = absl::Now();
  droverd_->Signal(SIGTERM);
  absl::StatusOr<int> status = droverd_->Wait(absl::Seconds(10));
  ASSERT_TRUE(status.ok()) << "droverd did not stop on SIGTERM: " << status.status() << "\nlog:\n"
                           << droverd_->ReadLog();
  absl::Duration took = absl::Now() - signalled;
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
      << "wait status " << *status << "\nlog:\n" << droverd_->ReadLog();
  std::printf("droverd stopped %s after SIGTERM\n", absl::FormatDuration(took).c_str());

  // The clients end on their first failure, which a stopping droverd gives at once. A
  // submit droverd refuses gets UNAVAILABLE; one that reaches gRPC after the server began
  // its shutdown is reset by gRPC's transport (RST_STREAM), which the client sees as
  // CANCELLED. Both are connection-level "not done, retry"; anything else is a bug.
  load.Stop();
  std::vector<Outcome> outcomes = load.outcomes();
  int64_t acked = 0;
  std::map<grpc::StatusCode, int64_t> refused;
  for (const Outcome& o : outcomes) {
    if (o.acked) {
      ++acked;
      continue;
    }
    ++refused[o.code];
    EXPECT_TRUE(o.code == grpc::StatusCode::UNAVAILABLE || o.code == grpc::StatusCode::CANCELLED)
        << Describe(o) << ": a submit during the stop should fail with UNAVAILABLE (retry)";
  }
  std::printf("%lld acknowledged; refused during the stop: %lld UNAVAILABLE, %lld CANCELLED\n",
              static_cast<long long>(acked),
              static_cast<long long>(refused[grpc::StatusCode::UNAVAILABLE]),
              static_cast<long long>(refused[grpc::StatusCode::CANCELLED]));

  // Nothing listens any more: a new submit fails and acknowledges nothing.
  {
    std::shared_ptr<grpc::Channel> channel = Connect(address, 0);
    auto stub = v1::JobService::NewStub(channel);
    v1::SubmitJobResponse response;
    grpc::ClientContext context;
    SetDeadline(context, absl::Seconds(5));
    grpc::Status after = stub->SubmitJob(&context, SubmitRequest("term-after-stop"), &response);
    EXPECT_EQ(after.error_code(), grpc::StatusCode::UNAVAILABLE) << after.error_message();
  }

  if (!StateOnPostgres()) {
    std::string image = CopyCrashImage(state_dir_, dir_.path() + "/stopped");
    EXPECT_EQ(IntegrityCheck(image, /*read_only=*/false), "ok");
  }
  StartDroverd();  // after SIGTERM
  ASSERT_FALSE(HasFatalFailure());
  int64_t stored_unacked = VerifyAfterRestart(*droverd_, outcomes);
  std::printf("%lld refused submits turned out stored\n", static_cast<long long>(stored_unacked));
  // "term-after-stop" was never acknowledged, so it must not exist: the ledger (only the
  // load's keys) must equal the listing, which VerifyAfterRestart checked.
}

}  // namespace
}  // namespace drover
