// Test hosts for end-to-end tests: several "machines" on this one, each a network namespace
// with its own address on a private bridge (deploy/testhosts.sh makes and removes them).
// droverd listens on the bridge's address in the test's own namespace; agents and jobs run
// inside the hosts; a host can be cut off and reconnected. Needs root. Names and subnet are
// unique to this process and object, so test binaries can run in parallel (ctest -j).
// Used from one test thread.
#ifndef DROVER_TESTS_TESTING_TEST_HOSTS_H_
#define DROVER_TESTS_TESTING_TEST_HOSTS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace drover::testing {

class TestHosts {
 public:
  // Makes `count` hosts (1 to 99) named "dt<pid>-1" ... (a second live object in the same
  // process gets "dt<pid>-<n>-1" ...), on a /24 of 10.128.0.0/9 derived from the pid that
  // no address or route of this machine overlaps. Removes a leftover of a crashed earlier
  // process with the same pid first. INVALID_ARGUMENT for a bad `count`; INTERNAL when the
  // script fails (its message included), RESOURCE_EXHAUSTED when no candidate subnet is
  // free. Tests that are not root should skip before calling this.
  static absl::StatusOr<std::unique_ptr<TestHosts>> Create(int count);
  // Removes the namespaces, links, bridge and hosts files, also after a failed test.
  // Processes still running inside a host are not killed (the test owns them: destroy them
  // first); they lose their network.
  ~TestHosts();
  TestHosts(const TestHosts&) = delete;
  TestHosts& operator=(const TestHosts&) = delete;

  int size() const { return static_cast<int>(names_.size()); }
  // Host k (0-based): its name (also its hostname and the network namespace's name under
  // /run/netns) and its address on the bridge.
  const std::string& name(int k) const { return names_[k]; }
  const std::string& address(int k) const { return addresses_[k]; }
  // The bridge's address in this (the test's) namespace, reachable from every host: where
  // droverd listens so that agents in the hosts reach it.
  std::string bridge_address() const { return subnet_ + ".1"; }
  // The prefix of names (for `deploy/testhosts.sh --prefix`).
  const std::string& prefix() const { return prefix_; }

  // argv to put before a command to run it on host k: its network namespace, hostname
  // name(k), /etc/hosts naming every host, in a mount namespace of its own that still sees
  // this machine's mounts (/sys/fs/cgroup included) but whose own mounts this process does
  // not see. The command keeps the pid of the process started with this prefix.
  std::vector<std::string> ExecPrefix(int k) const;

  // Takes host k's link down at the bridge: its packets are lost (not refused), as with a
  // pulled cable, and it sees no carrier. Heal brings it back. INTERNAL when `ip` fails.
  absl::Status Partition(int k);
  absl::Status Heal(int k);

 private:
  TestHosts(std::string script, std::string prefix, std::string subnet)
      : script_(std::move(script)), prefix_(std::move(prefix)), subnet_(std::move(subnet)) {}
  absl::Status RunScript(const std::vector<std::string>& args) const;

  std::string script_;
  std::string prefix_;
  std::string subnet_;  // "10.A.B"
  std::vector<std::string> names_;
  std::vector<std::string> addresses_;
};

}  // namespace drover::testing

#endif  // DROVER_TESTS_TESTING_TEST_HOSTS_H_
