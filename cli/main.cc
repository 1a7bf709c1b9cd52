// drover: the command-line client. Everything but the process lives in drover_cli
// (cli/commands.h); this file wires it to the real streams, environment, clock and gRPC.
#include <grpc/grpc.h>
#include <malloc.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "cli/commands.h"
#include "cli/grpc_drover_client.h"
#include "cli/keeper.h"

int main(int argc, char** argv) {
  // Debian builds Abseil without NDEBUG, which turns on Mutex's deadlock detection: a lock
  // graph updated on every lock gRPC takes. The CLI is one short thread of work; droverd and
  // the agent are checked by their tests, not by this.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // One malloc arena: each of gRPC's threads would otherwise map (and fault in) an arena of
  // its own for the few allocations it makes in a command's life (22 fewer mmap/mprotect/
  // munmap calls per submit).
  mallopt(M_ARENA_MAX, 1);
  // The connection keeper (cli/keeper.h), which the CLI starts itself; not a command.
  if (argc >= 2 && std::string(argv[1]) == "__keeper") {
    grpc_init();
    absl::StatusOr<drover::cli::KeeperOptions> options =
        drover::cli::ParseKeeperArgs(std::vector<std::string>(argv + 2, argv + argc));
    absl::Status run = options.ok() ? drover::cli::RunKeeper(*options) : options.status();
    if (!run.ok()) std::cerr << "drover __keeper: " << run.message() << "\n";
    _exit(run.ok() ? 0 : 1);
  }
  drover::cli::CliContext ctx;
  ctx.out = &std::cout;
  ctx.err = &std::cerr;
  ctx.in = &std::cin;
  ctx.getenv = [](absl::string_view name) -> std::optional<std::string> {
    const char* value = std::getenv(std::string(name).c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
  ctx.connect = [](const drover::cli::ConnectOptions& options) {
    // gRPC starts only for a command that makes a call (its threads cost a command that
    // makes none more than the rest of it), and stays initialised for the whole process, so
    // that the channel going away does not start gRPC's shutdown, which waits for its
    // threads to wind down (a few ms); the process ends with _exit below instead.
    grpc_init();
    return drover::cli::ConnectGrpc(options);
  };
  ctx.now = [] { return absl::Now(); };
  ctx.sleep = [](absl::Duration d) { absl::SleepFor(d); };
  ctx.new_idempotency_key = drover::cli::RandomIdempotencyKey;
  ctx.zone = absl::LocalTimeZone();
  std::vector<std::string> args(argv + 1, argv + argc);
  int exit_code = drover::cli::RunDrover(args, ctx);
  // Everything the command wrote is out; nothing else is left to do but gRPC's teardown.
  std::cout.flush();
  std::cerr.flush();
  bool flushed = std::fflush(nullptr) == 0 && !std::cout.fail();
  _exit(flushed ? exit_code : (exit_code == 0 ? 1 : exit_code));
}
