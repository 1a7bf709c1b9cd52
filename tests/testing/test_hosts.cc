#include "tests/testing/test_hosts.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "tests/testing/subprocess.h"

namespace drover::testing {
namespace {

// deploy/testhosts.sh's exit code for "the subnet overlaps one of this machine's".
constexpr int kSubnetInUse = 3;
constexpr int kSubnetTries = 16;

// Objects made so far by this process: the second live one must not share the first's
// names (Create removes a leftover with its own prefix).
std::atomic<int> instances{0};

std::string ScriptPath() { return ProgramPath("DROVER_TESTHOSTS", DROVER_TESTHOSTS_PATH); }

// The `try_index`-th candidate /24 for this process, inside 10.128.0.0/9: derived from the
// pid so that parallel test binaries start on different subnets, stepping by a prime so
// that retries of two colliding pids part ways.
std::string CandidateSubnet(pid_t pid, int try_index) {
  int v = static_cast<int>((static_cast<long>(pid) + 2039L * try_index) % 32768);
  return absl::StrCat("10.", 128 + v / 256, ".", v % 256);
}

std::string Describe(const std::vector<std::string>& argv, const CommandResult& result) {
  return absl::StrCat("'", absl::StrJoin(argv, " "), "' exited with ", result.exit_code, ": ",
                      result.err, result.out);
}

}  // namespace

absl::StatusOr<std::unique_ptr<TestHosts>> TestHosts::Create(int count) {
  if (count < 1 || count > 99) {
    return absl::InvalidArgumentError(absl::StrCat("test hosts: count ", count, " must be 1 to 99"));
  }
  pid_t pid = getpid();
  int instance = instances.fetch_add(1);
  std::string prefix = absl::StrCat("dt", pid);
  if (instance > 0) absl::StrAppend(&prefix, "-", instance);
  std::unique_ptr<TestHosts> hosts(new TestHosts(ScriptPath(), prefix, ""));

  // A process that crashed with this pid left its hosts behind: nobody else can own them.
  if (absl::Status removed = hosts->RunScript({"destroy"}); !removed.ok()) return removed;

  for (int i = 0; i < kSubnetTries; ++i) {
    std::string subnet = CandidateSubnet(pid, i);
    std::vector<std::string> argv = {hosts->script_, "create",  absl::StrCat(count),
                                     "--prefix",     prefix,    "--subnet",
                                     subnet};
    absl::StatusOr<CommandResult> result = RunCommand(argv);
    if (!result.ok()) return result.status();
    if (result->exit_code == kSubnetInUse) continue;
    if (result->exit_code != 0) return absl::InternalError(Describe(argv, *result));
    hosts->subnet_ = subnet;
    for (absl::string_view line : absl::StrSplit(result->out, '\n', absl::SkipEmpty())) {
      std::vector<std::string> fields = absl::StrSplit(line, ' ');
      if (fields.size() != 2) {
        return absl::InternalError(absl::StrCat("testhosts.sh create printed '", line,
                                                "', expected 'NAME ADDRESS'"));
      }
      hosts->names_.push_back(fields[0]);
      hosts->addresses_.push_back(fields[1]);
    }
    if (hosts->size() != count) {
      return absl::InternalError(absl::StrCat("testhosts.sh create printed ", hosts->size(),
                                              " hosts, expected ", count, ":\n", result->out));
    }
    return hosts;
  }
  return absl::ResourceExhaustedError(
      absl::StrCat("test hosts: ", kSubnetTries,
                   " candidate subnets in 10.128.0.0/9 all overlap this machine's addresses or "
                   "routes; see 'ip -4 addr' and 'deploy/testhosts.sh list --prefix dt...'"));
}

TestHosts::~TestHosts() {
  absl::Status removed = RunScript({"destroy"});
  // A destructor cannot fail the test; say what is left so that someone can remove it.
  if (!removed.ok()) {
    std::fprintf(stderr, "test hosts '%s' not removed: %s; run 'deploy/testhosts.sh destroy --prefix %s'\n",
                 prefix_.c_str(), std::string(removed.message()).c_str(), prefix_.c_str());
  }
}

std::vector<std::string> TestHosts::ExecPrefix(int k) const {
  return {script_, "exec", "--prefix", prefix_, absl::StrCat(k + 1)};
}

absl::Status TestHosts::Partition(int k) { return RunScript({"partition", absl::StrCat(k + 1)}); }

absl::Status TestHosts::Heal(int k) { return RunScript({"heal", absl::StrCat(k + 1)}); }

absl::Status TestHosts::RunScript(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {script_};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.insert(argv.end(), {"--prefix", prefix_});
  absl::StatusOr<CommandResult> result = RunCommand(argv);
  if (!result.ok()) return result.status();
  if (result->exit_code != 0) return absl::InternalError(Describe(argv, *result));
  return absl::OkStatus();
}

}  // namespace drover::testing
