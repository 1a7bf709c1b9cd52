// Test hosts (network namespaces on a bridge, made by deploy/testhosts.sh through
// `testing::TestHosts`): hosts reach each other and the bridge by address, know their own
// and each other's names, lose and regain their link, leave nothing behind, and carry
// drover-agents that register with a droverd listening on the bridge. Root only.
#include "tests/testing/test_hosts.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "drover/v1/admin_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/cluster.h"
#include "tests/testing/local_cluster.h"
#include "tests/testing/subprocess.h"

namespace drover {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kBusybox[] = "/usr/bin/busybox";  // busybox-static, from deploy/install-deps.sh

// Whether `name` is one of the names testhosts.sh makes for `prefix`: P-<n>, P-v<n>, P-br.
bool MadeFor(const std::string& prefix, const std::string& name) {
  if (!absl::StartsWith(name, prefix + "-")) return false;
  std::string rest = name.substr(prefix.size() + 1);
  if (rest == "br") return true;
  if (absl::StartsWith(rest, "v")) rest = rest.substr(1);
  return !rest.empty() && rest.find_first_not_of("0123456789") == std::string::npos;
}

// Every namespace, link and /etc/netns folder of `prefix` that exists now.
std::vector<std::string> Leftovers(const std::string& prefix) {
  std::vector<std::string> found;
  auto namespaces = testing::RunCommand({"/usr/sbin/ip", "netns", "list"});
  EXPECT_TRUE(namespaces.ok()) << namespaces.status();
  if (namespaces.ok()) {
    for (absl::string_view line : absl::StrSplit(namespaces->out, '\n', absl::SkipEmpty())) {
      std::string name(line.substr(0, line.find(' ')));
      if (MadeFor(prefix, name)) found.push_back("namespace " + name);
    }
  }
  // "7: NAME@if2: <...>" per line.
  auto links = testing::RunCommand({"/usr/sbin/ip", "-o", "link", "show"});
  EXPECT_TRUE(links.ok()) << links.status();
  if (links.ok()) {
    for (absl::string_view line : absl::StrSplit(links->out, '\n', absl::SkipEmpty())) {
      std::vector<absl::string_view> fields = absl::StrSplit(line, ": ");
      if (fields.size() < 2) continue;
      std::string name(fields[1].substr(0, fields[1].find('@')));
      if (MadeFor(prefix, name)) found.push_back("link " + name);
    }
  }
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/etc/netns", error)) {
    if (MadeFor(prefix, entry.path().filename().string())) found.push_back(entry.path().string());
  }
  return found;
}

// The hosts alone (hosts_); the last test starts the local cluster on them.
class TestHostsTest : public testing::LocalClusterTest {
 protected:
  void SetUp() override {
    LocalClusterTest::SetUp();  // test hosts are network namespaces: root only
    if (IsSkipped()) return;
    ASSERT_TRUE(std::filesystem::exists(kBusybox))
        << kBusybox << " is missing: run deploy/install-deps.sh (busybox-static)";
    auto hosts = testing::TestHosts::Create(2);
    ASSERT_TRUE(hosts.ok()) << hosts.status();
    hosts_ = *std::move(hosts);
  }

  // Runs `argv` on host k.
  testing::CommandResult OnHost(int k, const std::vector<std::string>& argv) {
    std::vector<std::string> command = hosts_->ExecPrefix(k);
    command.insert(command.end(), argv.begin(), argv.end());
    auto result = testing::RunCommand(command);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : testing::CommandResult();
  }

  // Whether one ping from host k to `address` is answered within 2 s.
  bool Pings(int k, const std::string& address) {
    return OnHost(k, {kBusybox, "ping", "-c1", "-W2", address}).exit_code == 0;
  }

  // Whether a ping from host k to `address` is answered before `timeout`.
  bool PingsWithin(int k, const std::string& address, absl::Duration timeout) {
    absl::Time deadline = absl::Now() + timeout;
    do {
      if (Pings(k, address)) return true;
      absl::SleepFor(absl::Milliseconds(100));  // an instant refusal must not spin
    } while (absl::Now() < deadline);
    return false;
  }
};

TEST_F(TestHostsTest, HostsHaveDistinctAddressesAndReachEachOtherAndTheBridge) {
  ASSERT_EQ(hosts_->size(), 2);
  EXPECT_NE(hosts_->address(0), hosts_->address(1));
  EXPECT_NE(hosts_->name(0), hosts_->name(1));
  EXPECT_TRUE(Pings(0, hosts_->address(1)));
  EXPECT_TRUE(Pings(1, hosts_->address(0)));
  EXPECT_TRUE(Pings(1, hosts_->bridge_address()));
  // The host's own network: eth0 with its address, nothing of the machine's.
  std::string addresses = OnHost(0, {"/usr/sbin/ip", "-4", "-o", "addr", "show"}).out;
  EXPECT_THAT(addresses, HasSubstr(absl::StrCat("eth0    inet ", hosts_->address(0), "/24")));
  EXPECT_THAT(addresses, ::testing::Not(HasSubstr(hosts_->bridge_address() + "/")));
}

TEST_F(TestHostsTest, EachHostKnowsItsOwnNameAndTheOthers) {
  for (int k = 0; k < hosts_->size(); ++k) {
    // What `ip netns exec` users (and tools that follow its convention) see.
    auto hosts_file = testing::RunCommand(
        {"/usr/sbin/ip", "netns", "exec", hosts_->name(k), "/bin/cat", "/etc/hosts"});
    ASSERT_TRUE(hosts_file.ok()) << hosts_file.status();
    for (int other = 0; other < hosts_->size(); ++other) {
      EXPECT_THAT(hosts_file->out,
                  HasSubstr(absl::StrCat(hosts_->address(other), "\t", hosts_->name(other), "\n")));
    }
    // Through ExecPrefix the hostname is the host's own, and it and the others resolve.
    EXPECT_EQ(OnHost(k, {"/bin/hostname"}).out, hosts_->name(k) + "\n");
    int other = 1 - k;
    testing::CommandResult resolved = OnHost(k, {"/usr/bin/getent", "hosts", hosts_->name(other)});
    EXPECT_THAT(resolved.out, HasSubstr(hosts_->address(other)));
  }
  // This machine's own hostname and /etc/hosts are untouched.
  char name[256] = {};
  gethostname(name, sizeof name - 1);
  EXPECT_NE(std::string(name), hosts_->name(0));
  EXPECT_THAT(testing::ReadWholeFile("/etc/hosts"), ::testing::Not(HasSubstr(hosts_->name(0))));
}

TEST_F(TestHostsTest, PartitionedHostIsUnreachableUntilHealed) {
  ASSERT_TRUE(Pings(0, hosts_->address(1)));
  ASSERT_TRUE(hosts_->Partition(1).ok());
  EXPECT_FALSE(Pings(0, hosts_->address(1)));
  EXPECT_FALSE(Pings(1, hosts_->bridge_address()));
  EXPECT_TRUE(Pings(0, hosts_->bridge_address())) << "only host 1 is cut off";

  ASSERT_TRUE(hosts_->Heal(1).ok());
  // The bridge port forwards again at once (no STP), but a neighbour lookup that began
  // during the partition still ends FAILED (about 3 s of ARP probes) and drops what waited
  // on it: like a real network, reachability comes back within seconds, not at once.
  EXPECT_TRUE(PingsWithin(0, hosts_->address(1), absl::Seconds(20)));
  EXPECT_TRUE(PingsWithin(1, hosts_->bridge_address(), absl::Seconds(20)));
}

TEST_F(TestHostsTest, DestroyingLeavesNoNamespaceLinkOrHostsFileOfItsPrefix) {
  std::string prefix = hosts_->prefix();
  EXPECT_EQ(Leftovers(prefix).size(), 2u * 2 + 1 + 2);  // namespaces, veths, bridge, folders
  hosts_.reset();
  EXPECT_THAT(Leftovers(prefix), IsEmpty());
}

TEST_F(TestHostsTest, AgentsOnTestHostsRegisterWithDroverdOnTheBridge) {
  StartCluster({.agents = hosts_->size(),
                .test_hosts = true,
                .datastore_root = false,
                .wait_until_ready = false});
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_TRUE(absl::StartsWith(droverd_->address(), hosts_->bridge_address() + ":"));
  WaitForReadyNodes(hosts_->size(), absl::Seconds(60));
  ASSERT_FALSE(HasFatalFailure());
  grpc::ClientContext context;
  v1::ListNodesResponse nodes;
  ASSERT_TRUE(admin_->ListNodes(&context, v1::ListNodesRequest(), &nodes).ok());
  std::map<std::string, std::string> address_of;
  for (const v1::Node& node : nodes.nodes()) {
    address_of[node.name()] = node.addresses_size() > 0 ? node.addresses(0) : "";
  }
  for (int k = 0; k < hosts_->size(); ++k) {
    EXPECT_EQ(address_of[hosts_->name(k)], hosts_->address(k));
    // The agent itself runs in the host's network namespace (ExecPrefix keeps its pid).
    struct stat agent_net = {}, host_net = {};
    ASSERT_EQ(stat(absl::StrCat("/proc/", agent(k)->pid(), "/ns/net").c_str(), &agent_net), 0);
    ASSERT_EQ(stat(("/run/netns/" + hosts_->name(k)).c_str(), &host_net), 0);
    EXPECT_EQ(agent_net.st_ino, host_net.st_ino) << "agent " << k << " is not on its host";
  }
}

}  // namespace
}  // namespace drover
