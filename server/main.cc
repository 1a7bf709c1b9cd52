// droverd: the Drover scheduler daemon. Reads its settings (droverd_flags.h), secures the
// state folder, starts Droverd and runs it until SIGTERM or SIGINT.
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/log.h"
#include "common/safe_open.h"
#include "server/droverd.h"
#include "server/droverd_flags.h"
#include "server/state_dir.h"

namespace {

// Every job's logs, every client's connection and the database take descriptors: use all the
// hard limit allows (systemd's default soft limit is 1024).
void RaiseOpenFileLimit() {
  struct rlimit limit {};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
  rlim_t was = limit.rlim_cur;
  limit.rlim_cur = limit.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &limit) == 0) {
    drover::Log(drover::LogLevel::kDebug, "open_file_limit_raised",
                {{"from", static_cast<int64_t>(was)}, {"to", static_cast<int64_t>(limit.rlim_max)}});
  }
}

int Fail(const absl::Status& status) {
  drover::Log(drover::LogLevel::kError, "droverd_failed", {{"error", status.message()}});
  std::fprintf(stderr, "droverd: %s\n", std::string(status.message()).c_str());
  return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

}  // namespace

int main(int argc, char** argv) {
#ifdef NDEBUG
  // Debian builds Abseil without NDEBUG, which turns on Mutex's deadlock detection: a lock
  // graph updated on every lock taken (gRPC's included), about 2 % of droverd's CPU per job
  // (docs/benchmarks.md, "Per-job CPU on the node"). Debug builds, which the tests run,
  // keep it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
#endif
  absl::StatusOr<drover::server::DroverdSettings> settings =
      drover::server::ParseDroverdFlags(std::vector<std::string>(argv + 1, argv + argc));
  if (!settings.ok()) {
    if (!drover::server::IsDroverdUsageError(settings.status())) return Fail(settings.status());
    std::fprintf(stderr, "droverd: %s\n", std::string(settings.status().message()).c_str());
    return 2;
  }
  if (settings->help) {
    std::fputs(settings->help_text.c_str(), stdout);
    return 0;
  }
  drover::SetLogLevel(settings->log_level);
  drover::server::DroverdOptions& options = settings->options;
  RaiseOpenFileLimit();

  // Everything droverd creates is its user's alone (datastore credentials, exec tokens, the
  // jobs' logs), whatever umask it was started with.
  umask(077);
  if (!options.state_dir.empty()) {
    if (absl::Status s = drover::server::SecureStateDir(options.state_dir); !s.ok()) return Fail(s);
  }
  // The shared data folder is as private as the state folder: it holds every job's logs
  // and outputs and the exec token key.
  if (!options.data_dir.empty()) {
    if (absl::Status s = drover::server::SecureStateDir(options.data_dir); !s.ok()) return Fail(s);
  }
  for (const std::string* dir : {&options.state_dir, &options.data_dir}) {
    if (dir->empty()) continue;
    std::error_code error;
    std::filesystem::path real = std::filesystem::canonical(*dir, error);
    if (!error) options.core.datastore_roots.refused.push_back(real.string());
  }

  // Block the stop signals in every thread; this one waits for them below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // The stop signals are waited for on a thread of their own: a standby droverd stands by
  // inside Droverd::Start until it leads (options.stop ends that).
  absl::Notification stop;
  int received = 0;
  std::thread signal_waiter([&] {
    sigwait(&stop_signals, &received);
    stop.Notify();
  });
  options.stop = &stop;
  const std::string& address_file = settings->address_file;
  options.standing_by = [&address_file](const std::string& address, const std::string& leader) {
    // A standby listens too (it names the leader): tests and scripts find it by this file.
    if (!address_file.empty()) (void)drover::ReplaceFile(address_file, address + "\n", 0644);
    sd_notifyf(0, "READY=1\nSTATUS=standing by on %s, leader %s\nMAINPID=%d", address.c_str(),
               leader.empty() ? "unknown" : leader.c_str(), static_cast<int>(getpid()));
  };

  absl::StatusOr<std::unique_ptr<drover::server::Droverd>> droverd =
      drover::server::Droverd::Start(options);
  if (!droverd.ok()) {
    if (absl::IsCancelled(droverd.status()) && stop.HasBeenNotified()) {
      signal_waiter.join();
      drover::Log(drover::LogLevel::kInfo, "droverd_stopped", {{"signal", strsignal(received)}});
      return 0;
    }
    signal_waiter.detach();
    return Fail(droverd.status());
  }

  drover::Log(drover::LogLevel::kInfo, "droverd_started",
              {{"address", (*droverd)->address()},
               {"metrics_address", (*droverd)->metrics_address()},
               {"web_url", (*droverd)->http_url()},
               {"state_dir", options.state_dir},
               {"data_dir", options.data_dir.empty() ? options.state_dir : options.data_dir},
               {"resumed_jobs", (*droverd)->resumed_jobs()},
               {"pid", getpid()}});
  if (!address_file.empty()) {
    // Replaced whole (a new file renamed over it): readers never see half an address.
    if (absl::Status s = drover::ReplaceFile(address_file, (*droverd)->address() + "\n", 0644);
        !s.ok()) {
      drover::Log(drover::LogLevel::kWarning, "address_file_failed",
                  {{"path", address_file}, {"error", s.message()}});
    }
  }
  sd_notifyf(0, "READY=1\nSTATUS=serving on %s\nMAINPID=%d", (*droverd)->address().c_str(),
             static_cast<int>(getpid()));

  stop.WaitForNotification();
  signal_waiter.join();
  drover::Log(drover::LogLevel::kInfo, "droverd_stopping", {{"signal", strsignal(received)}});
  sd_notify(0, "STOPPING=1\nSTATUS=stopping");
  (*droverd)->Shutdown();
  drover::Log(drover::LogLevel::kInfo, "droverd_stopped");
  return 0;
}
