// `drover nodes`, `drover node ...` and `drover target ...` against FakeDroverClient.
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cli/cli_fixture.h"

namespace drover::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::Pair;
using ::testing::StartsWith;
using ::testing::UnorderedElementsAre;

v1::Node MakeNode(const std::string& name, v1::Node::State state) {
  v1::Node node;
  node.set_name(name);
  node.set_state(state);
  node.mutable_capacity()->set_cpus(8);
  node.mutable_capacity()->set_memory_mib(65536);
  node.mutable_allocated()->set_cpus(2);
  node.mutable_allocated()->set_memory_mib(4096);
  node.mutable_last_seen_time()->set_seconds(1'000'097);  // 3 s before the fixture's now
  return node;
}

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

// ---- nodes

TEST_F(CliTest, NodesOnAnEmptyClusterPrintsTheHeaderOnly) {
  ASSERT_EQ(Run({"nodes"}), 0) << err();
  EXPECT_EQ(out(), "NAME  STATE  CPUS  MEMORY  GPUS  JOBS  LABELS  LAST SEEN\n");
  ASSERT_EQ(Run({"nodes", "-o", "json"}), 0);
  EXPECT_EQ(out(), "[]\n");
}

TEST_F(CliTest, NodesShowsUsedAndTotalResourcesJobsAndLabels) {
  v1::Node& n1 = server_.nodes.emplace_back(MakeNode("n1", v1::Node::READY));
  n1.add_running_jobs("j-4");
  (*n1.mutable_labels())["pool"] = "cpu";
  server_.nodes.push_back(MakeNode("gpu-node-2", v1::Node::CORDONED));
  ASSERT_EQ(Run({"nodes"}), 0) << err();
  EXPECT_EQ(out(),
            "NAME        STATE     CPUS  MEMORY    GPUS  JOBS  LABELS    LAST SEEN\n"
            "n1          READY     2/8   4Gi/64Gi  -     j-4   pool=cpu  3s\n"
            "gpu-node-2  CORDONED  2/8   4Gi/64Gi  -     -     -         3s\n");
}

TEST_F(CliTest, NodesJsonIsAnArrayOfNodes) {
  server_.nodes.push_back(MakeNode("n1", v1::Node::DOWN));
  ASSERT_EQ(Run({"nodes", "--output", "json"}), 0) << err();
  std::vector<std::string> lines = Lines(out());
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], "[");
  EXPECT_THAT(lines[1], StartsWith("{\"name\":\"n1\",\"state\":\"DOWN\""));
  EXPECT_EQ(lines[2], "]");
}

TEST_F(CliTest, NodesTakesNoArguments) {
  EXPECT_EQ(Run({"nodes", "n1"}), 2);
  ExpectOneErrorLine("drover nodes takes no arguments");
}

// ---- node show

TEST_F(CliTest, NodeShowPrintsOneNodeWithItsGpus) {
  server_.nodes.push_back(MakeNode("n1", v1::Node::READY));
  v1::Node& gpu_node = server_.nodes.emplace_back(MakeNode("gpu-01", v1::Node::READY));
  gpu_node.mutable_capacity()->set_gpus(1);
  v1::Gpu* gpu = gpu_node.add_gpus();
  gpu->set_index(0);
  gpu->set_uuid("GPU-8f6c");
  gpu->set_name("NVIDIA H100 80GB HBM3");
  ASSERT_EQ(Run({"node", "show", "gpu-01"}), 0) << err();
  EXPECT_THAT(out(), StartsWith("name:              gpu-01\n"));
  EXPECT_THAT(out(), HasSubstr("container runtime: -\n"));  // not reported by this node
  EXPECT_THAT(out(), HasSubstr("  gpus:   0/1\n"));
  EXPECT_THAT(out(), HasSubstr("gpus:\n  0: GPU-8f6c  NVIDIA H100 80GB HBM3\n"));
  ASSERT_EQ(Run({"node", "show", "gpu-01", "-o", "json"}), 0) << err();
  EXPECT_THAT(out(), HasSubstr("\"uuid\": \"GPU-8f6c\""));
}

TEST_F(CliTest, NodeShowOfAnUnknownNodeExitsNotFound) {
  EXPECT_EQ(Run({"node", "show", "n9"}), 4);
  ExpectOneErrorLine("drover: node 'n9' is not known; see drover nodes");
  EXPECT_EQ(Run({"node", "show"}), 2);
}

// ---- node cordon | uncordon | drain

TEST_F(CliTest, NodeActionsPrintTheNewState) {
  server_.nodes.push_back(MakeNode("n1", v1::Node::READY));
  ASSERT_EQ(Run({"node", "cordon", "n1", "--reason", "disk check"}), 0) << err();
  EXPECT_EQ(out(), "n1 CORDONED\n");
  ASSERT_EQ(Run({"node", "drain", "n1"}), 0) << err();
  EXPECT_EQ(out(), "n1 DRAINING\n");
  ASSERT_EQ(Run({"node", "uncordon", "n1"}), 0) << err();
  EXPECT_EQ(out(), "n1 READY\n");
  ASSERT_EQ(server_.node_requests.size(), 3u);
  EXPECT_EQ(server_.node_requests[0].first, "cordon");
  EXPECT_EQ(server_.node_requests[0].second.reason(), "disk check");
  EXPECT_EQ(server_.node_requests[1].first, "drain");
  EXPECT_EQ(server_.node_requests[2].first, "uncordon");
}

TEST_F(CliTest, NodeLostDeclaresTheNodeLostWithItsReason) {
  server_.nodes.push_back(MakeNode("n1", v1::Node::READY));
  ASSERT_EQ(Run({"node", "lost", "n1", "--reason", "power supply"}), 0) << err();
  EXPECT_EQ(out(), "n1 DOWN\n");
  ASSERT_EQ(server_.node_requests.size(), 1u);
  EXPECT_EQ(server_.node_requests[0].first, "lost");
  EXPECT_EQ(server_.node_requests[0].second.name(), "n1");
  EXPECT_EQ(server_.node_requests[0].second.reason(), "power supply");
}

TEST_F(CliTest, NodesSaysWhileNodeLossHandlingIsPaused) {
  server_.nodes.push_back(MakeNode("n1", v1::Node::READY));
  ASSERT_EQ(Run({"nodes"}), 0) << err();
  EXPECT_THAT(out(), Not(HasSubstr("PAUSED")));
  server_.node_loss.set_paused(true);
  // 2 min before the fixture's now.
  server_.node_loss.mutable_paused_since()->set_seconds(1'000'100 - 120);
  server_.node_loss.set_silent_nodes(2);
  server_.node_loss.set_counted_nodes(3);
  server_.node_loss.add_waiting_nodes("n2");
  server_.node_loss.add_waiting_nodes("n3");
  server_.node_loss.set_pause_fraction(0.5);
  ASSERT_EQ(Run({"nodes"}), 0) << err();
  EXPECT_THAT(out(), HasSubstr("\nnode-loss handling PAUSED for 2m: 2 of 3 nodes silent (more "
                               "than 0.5); the jobs on n2, n3 are kept until enough nodes are "
                               "back ('drover node lost NODE' gives one up now)\n"));
}

TEST_F(CliTest, NodeActionOnAnUnknownNodeExits4) {
  EXPECT_EQ(Run({"node", "cordon", "n9"}), 4);
  ExpectOneErrorLine("node 'n9' is not known; see drover nodes");
}

TEST_F(CliTest, NodeActionUsageErrors) {
  EXPECT_EQ(Run({"node"}), 2);
  EXPECT_THAT(err(), HasSubstr("Actions:"));
  EXPECT_THAT(err(), HasSubstr("drover: missing ACTION after 'drover node'"));
  EXPECT_EQ(Run({"node", "reboot", "n1"}), 2);
  ExpectOneErrorLine(
      "unknown action 'reboot' for drover node; use show, cordon, uncordon, drain, lost, token or revoke-cert");
  EXPECT_EQ(Run({"node", "cordon"}), 2);
  ExpectOneErrorLine("missing NODE");
  EXPECT_EQ(Run({"node", "cordon", "n1", "n2"}), 2);
  EXPECT_EQ(Run({"node", "uncordon", "n1", "--reason", "x"}), 2);
  ExpectOneErrorLine("unknown flag --reason");
  EXPECT_THAT(server_.node_requests, IsEmpty());
}

TEST_F(CliTest, NodeActionTakesGlobalFlagsBeforeTheAction) {
  server_.nodes.push_back(MakeNode("n1", v1::Node::READY));
  ASSERT_EQ(Run({"node", "--server", "head:1", "cordon", "n1", "-o", "json"}), 0) << err();
  EXPECT_EQ(server_.connects.back().address, "head:1");
  EXPECT_THAT(out(), HasSubstr("\"state\": \"CORDONED\""));
}

// ---- target create | list | delete

TEST_F(CliTest, TargetCreateSendsSelectorAndLimit) {
  server_.AddTarget("default");
  ASSERT_EQ(Run({"target", "create", "gpu", "--selector", "acc=a100", "--selector", "zone=b",
                 "--max-nodes", "8"}),
            0)
      << err();
  EXPECT_EQ(out(), "gpu CREATED\n");
  ASSERT_EQ(server_.puts.size(), 1u);
  const v1::ComputeTarget& target = server_.puts[0].target();
  EXPECT_EQ(target.name(), "gpu");
  EXPECT_THAT(target.selector(), UnorderedElementsAre(Pair("acc", "a100"), Pair("zone", "b")));
  EXPECT_EQ(target.max_nodes(), 8);
}

TEST_F(CliTest, TargetCreateRefusesAnExistingTargetUnlessReplace) {
  v1::ComputeTarget& gpu = server_.AddTarget("gpu");
  (*gpu.mutable_selector())["acc"] = "a100";
  EXPECT_EQ(Run({"target", "create", "gpu", "--selector", "acc=h100"}), 5);
  ExpectOneErrorLine("compute target 'gpu' already exists (selector acc=a100); pass --replace");
  EXPECT_THAT(server_.puts, IsEmpty());
  ASSERT_EQ(Run({"target", "create", "gpu", "--selector", "acc=h100", "--replace"}), 0) << err();
  EXPECT_EQ(out(), "gpu REPLACED\n");
  EXPECT_EQ(server_.targets[0].selector().at("acc"), "h100");
}

TEST_F(CliTest, TargetCreateUsageErrors) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  } cases[] = {
      {{"target", "create"}, "missing NAME"},
      {{"target", "create", "gpu", "--selector", "acc"}, "'acc' is not KEY=VALUE"},
      {{"target", "create", "gpu", "--selector", "=a100"}, "'=a100' is not KEY=VALUE"},
      {{"target", "create", "gpu", "--selector", "a=1", "--selector", "a=2"}, "label 'a' given twice"},
      {{"target", "create", "gpu", "--max-nodes", "-1"}, "--max-nodes: -1 is out of range"},
      {{"target", "frobnicate"}, "unknown action 'frobnicate' for drover target; use create, list or delete"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.message);
    EXPECT_EQ(Run(c.args), 2);
    ExpectOneErrorLine(c.message);
  }
  EXPECT_THAT(server_.connects, IsEmpty());
}

TEST_F(CliTest, TargetListShowsSelectorsAndLimits) {
  server_.AddTarget("default");
  v1::ComputeTarget& gpu = server_.AddTarget("gpu");
  (*gpu.mutable_selector())["zone"] = "b";
  (*gpu.mutable_selector())["acc"] = "a100";
  gpu.set_max_nodes(8);
  ASSERT_EQ(Run({"target", "list"}), 0) << err();
  EXPECT_EQ(out(),
            "NAME     SELECTOR         MAX NODES\n"
            "default  (every node)     no limit\n"
            "gpu      acc=a100,zone=b  8\n");
  ASSERT_EQ(Run({"target", "list", "-o", "json"}), 0) << err();
  std::vector<std::string> lines = Lines(out());
  ASSERT_EQ(lines.size(), 4u) << out();
  EXPECT_EQ(lines[1], "{\"name\":\"default\"},");
  // Map entries come in no fixed order.
  EXPECT_THAT(lines[2], StartsWith("{\"name\":\"gpu\",\"selector\":{"));
  EXPECT_THAT(lines[2], HasSubstr("\"acc\":\"a100\""));
  EXPECT_THAT(lines[2], HasSubstr("\"max_nodes\":8}"));
}

TEST_F(CliTest, TargetDeleteExitsByWhatDroverdSays) {
  server_.AddTarget("default");
  server_.AddTarget("gpu");
  ASSERT_EQ(Run({"target", "delete", "gpu"}), 0) << err();
  EXPECT_EQ(out(), "gpu DELETED\n");
  EXPECT_EQ(Run({"target", "delete", "gpu"}), 4);
  ExpectOneErrorLine("compute target 'gpu' does not exist");
  EXPECT_EQ(Run({"target", "delete", "default"}), 5);
  ExpectOneErrorLine("the default target cannot be deleted");
}

}  // namespace
}  // namespace drover::cli
