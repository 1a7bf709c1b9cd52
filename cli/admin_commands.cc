// The administrators' commands: `drover nodes`, `drover node show|cordon|uncordon|drain|lost|
// token|revoke-cert` and
// `drover target create|list|delete`, on droverd's AdminService.
#include <cstdint>
#include <map>
#include <string>
#include <vector>


#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "cli/format.h"
#include "cli/invocation.h"

namespace drover::cli {
namespace {

using NodeCall = absl::StatusOr<v1::Node> (DroverClient::*)(const v1::NodeRequest&);

// One node action: NAME [--reason TEXT], printing "NAME STATE".
int NodeChange(Invocation& inv, const std::vector<std::string>& args, absl::string_view action,
               absl::string_view summary, bool takes_reason, NodeCall call) {
  std::string reason;
  FlagSet flags(absl::StrCat("drover node ", action, " [flags] NODE"), std::string(summary));
  if (takes_reason) flags.String("reason", &reason, "Why, shown in the node's reason", "TEXT");
  AddGlobalFlags(&flags, &inv.global());
  std::vector<std::string> positional;
  std::string example = absl::StrCat("  drover node ", action, " n1",
                                     takes_reason ? " --reason 'disk replacement'" : "", "\n");
  if (auto done = inv.Parse(flags, args, &positional, /*interspersed=*/true, example)) {
    return *done;
  }
  v1::NodeRequest request;
  request.set_reason(reason);
  if (auto done = TakeName(inv, absl::StrCat("node ", action), "NODE", positional,
                           request.mutable_name())) {
    return *done;
  }
  int exit_code = kExitOk;
  std::unique_ptr<DroverClient> client = inv.Connect(&exit_code);
  if (client == nullptr) return exit_code;
  // Each action sets a state, so repeating it after UNAVAILABLE changes nothing more.
  absl::StatusOr<v1::Node> node = inv.WithRetry([&] { return ((*client).*call)(request); });
  if (!node.ok()) return inv.ServerError(node.status());
  inv.Print([&] { return MessageToJson(*node, /*pretty=*/true); },
            [&] { return absl::StrCat(node->name(), " ", NodeStateName(node->state()), "\n"); });
  return kExitOk;
}

int CordonAction(Invocation& inv, const std::vector<std::string>& args) {
  return NodeChange(inv, args, "cordon",
                    "Stops new work on a node; what runs there goes on. Prints the node's new\n"
                    "state (CORDONED). Undo with 'drover node uncordon'.",
                    /*takes_reason=*/true, &DroverClient::CordonNode);
}

int UncordonAction(Invocation& inv, const std::vector<std::string>& args) {
  return NodeChange(inv, args, "uncordon",
                    "Lets a cordoned or draining node take work again. Prints the node's new\n"
                    "state (READY, or DOWN when its agent is not connected).",
                    /*takes_reason=*/false, &DroverClient::UncordonNode);
}

int DrainAction(Invocation& inv, const std::vector<std::string>& args) {
  return NodeChange(inv, args, "drain",
                    "Stops new work on a node and lets what runs there finish: the node is\n"
                    "DRAINING until its last job ended, then CORDONED. Prints the new state.",
                    /*takes_reason=*/true, &DroverClient::DrainNode);
}

int LostAction(Invocation& inv, const std::vector<std::string>& args) {
  return NodeChange(inv, args, "lost",
                    "Declares a node lost now, without waiting for its lease or for a pause of\n"
                    "node-loss handling (mass loss) to end: it is DOWN and its jobs end NODE_LOST\n"
                    "(retried where max_retries allows). For a machine that is gone. If its\n"
                    "agent is alive after all, it reconnects and its old work there is stopped.",
                    /*takes_reason=*/true, &DroverClient::DeclareNodeLost);
}

int ShowNodeAction(Invocation& inv, const std::vector<std::string>& args) {
  FlagSet flags("drover node show [flags] NODE",
                "Prints one node: its state and reason, addresses, labels, jobs, agent\n"
                "version, container runtime, the resources jobs hold over what it offers,\n"
                "and its GPUs (index, UUID, name, memory). With --output json: the node.");
  AddGlobalFlags(&flags, &inv.global());
  std::vector<std::string> positional;
  if (auto done = inv.Parse(flags, args, &positional, /*interspersed=*/true,
                            "  drover node show gpu-01\n")) {
    return *done;
  }
  std::string name;
  if (auto done = TakeName(inv, "node show", "NODE", positional, &name)) return *done;
  int exit_code = kExitOk;
  std::unique_ptr<DroverClient> client = inv.Connect(&exit_code);
  if (client == nullptr) return exit_code;
  absl::StatusOr<v1::ListNodesResponse> list =
      inv.WithRetry([&] { return client->ListNodes(v1::ListNodesRequest()); });
  if (!list.ok()) return inv.ServerError(list.status());
  for (const v1::Node& node : list->nodes()) {
    if (node.name() != name) continue;
    inv.Print([&] { return MessageToJson(node, /*pretty=*/true); },
              [&] { return FormatNodeDetails(node, inv.ctx().now(), inv.ctx().zone); });
    return kExitOk;
  }
  return inv.Fail(kExitNotFound,
                  absl::StrCat("node '", name, "' is not known; see drover nodes"));
}

// "selector pool=cpu, max 8 nodes".
std::string DescribeTarget(const v1::ComputeTarget& target) {
  std::map<std::string, std::string> sorted(target.selector().begin(), target.selector().end());
  std::string text = sorted.empty() ? "every node"
                                    : absl::StrCat("selector ", absl::StrJoin(sorted, ",", absl::PairFormatter("=")));
  if (target.max_nodes() > 0) absl::StrAppend(&text, ", max ", target.max_nodes(), " nodes");
  return text;
}

// "KEY=VALUE" pairs of --selector.
absl::Status ParseSelector(const std::vector<std::string>& values,
                           std::map<std::string, std::string>* selector) {
  for (const std::string& value : values) {
    size_t eq = value.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--selector: '", value, "' is not KEY=VALUE; for example --selector pool=gpu"));
    }
    std::string key = value.substr(0, eq);
    std::string label = value.substr(eq + 1);
    auto [it, inserted] = selector->emplace(key, label);
    if (!inserted && it->second != label) {
      return absl::InvalidArgumentError(absl::StrCat("--selector: label '", key,
                                                     "' given twice, as '", it->second, "' and '",
                                                     label, "'; a node has one value per label"));
    }
  }
  return absl::OkStatus();
}

int TargetCreateAction(Invocation& inv, const std::vector<std::string>& args) {
  std::vector<std::string> selector_values;
  int64_t max_nodes = 0;
  bool replace = false;
  FlagSet flags("drover target create [flags] NAME",
                "Creates a compute target: the nodes whose labels contain every --selector\n"
                "pair. Jobs name it with 'drover submit --target NAME'. A target that exists is\n"
                "refused (exit code 5) unless --replace is given.");
  flags.Repeated("selector", &selector_values,
                 "Nodes must have this label; none: every node", "KEY=VALUE");
  flags.Int("max-nodes", &max_nodes, "Most nodes one job of this target may use; 0: no limit");
  flags.Bool("replace", &replace, "Replace the target of this name if it exists");
  AddGlobalFlags(&flags, &inv.global());
  std::vector<std::string> positional;
  if (auto done = inv.Parse(flags, args, &positional, /*interspersed=*/true,
                            "  drover target create gpu --selector accelerator=a100 --max-nodes 8\n"
                            "  drover target create cpu --selector pool=cpu --selector zone=b\n"
                            "  drover target create gpu --selector accelerator=h100 --replace\n")) {
    return *done;
  }
  v1::PutComputeTargetRequest request;
  v1::ComputeTarget* target = request.mutable_target();
  if (auto done = TakeName(inv, "target create", "NAME", positional, target->mutable_name())) {
    return *done;
  }
  std::map<std::string, std::string> selector;
  if (absl::Status s = ParseSelector(selector_values, &selector); !s.ok()) return inv.Usage(s);
  if (max_nodes < 0 || max_nodes > INT32_MAX) {
    return inv.Fail(kExitUsage, absl::StrCat("--max-nodes: ", max_nodes,
                                             " is out of range; use 0 (no limit) or more"));
  }
  target->mutable_selector()->insert(selector.begin(), selector.end());
  target->set_max_nodes(static_cast<int32_t>(max_nodes));
  int exit_code = kExitOk;
  std::unique_ptr<DroverClient> client = inv.Connect(&exit_code);
  if (client == nullptr) return exit_code;
  // droverd's PutComputeTarget creates or replaces; look first so that a typo in `create`
  // does not silently change the nodes of a target jobs already use. The default target is
  // left to droverd, which explains why it cannot change.
  bool exists = false;
  if (target->name() != "default") {
    absl::StatusOr<v1::ListComputeTargetsResponse> list =
        inv.WithRetry([&] { return client->ListComputeTargets(v1::ListComputeTargetsRequest()); });
    if (!list.ok()) return inv.ServerError(list.status());
    for (const v1::ComputeTarget& existing : list->targets()) {
      if (existing.name() != target->name()) continue;
      exists = true;
      if (!replace) {
        return inv.Fail(kExitConflict,
                        absl::StrCat("compute target '", target->name(), "' already exists (",
                                     DescribeTarget(existing), "); pass --replace to change it"));
      }
    }
  }
  absl::StatusOr<v1::ComputeTarget> stored =
      inv.WithRetry([&] { return client->PutComputeTarget(request); });
  if (!stored.ok()) return inv.ServerError(stored.status());
  inv.Print([&] { return MessageToJson(*stored, /*pretty=*/true); },
            [&] { return absl::StrCat(stored->name(), exists ? " REPLACED\n" : " CREATED\n"); });
  return kExitOk;
}

int TargetListAction(Invocation& inv, const std::vector<std::string>& args) {
  FlagSet flags("drover target list [flags]",
                "Lists the compute targets: NAME, SELECTOR (the labels a node needs) and MAX\n"
                "NODES (per job). With --output json: a JSON array of targets.");
  return inv.RunRead(
      flags, args, "target list",
      "  drover target list\n"
      "  drover target list --output json | jq -r '.[].name'\n",
      [](DroverClient& client) {
        return client.ListComputeTargets(v1::ListComputeTargetsRequest());
      },
      [&](const v1::ListComputeTargetsResponse& list) {
        std::vector<v1::ComputeTarget> targets(list.targets().begin(), list.targets().end());
        inv.PrintList(targets, [&] { return FormatTargetTable(targets); });
      });
}

int TargetDeleteAction(Invocation& inv, const std::vector<std::string>& args) {
  FlagSet flags("drover target delete [flags] NAME",
                "Deletes a compute target. Jobs already placed keep running; queued jobs of the\n"
                "target wait until it exists again. The default target cannot be deleted\n"
                "(exit code 5); an unknown name gives exit code 4.");
  // Retried: deleting a target sets a state, so a repeat changes nothing.
  return inv.RunDeleteByName(flags, args, "target delete", "  drover target delete gpu\n",
                             /*retry=*/true,
                             [](DroverClient& client, const std::string& name) {
                               v1::DeleteComputeTargetRequest request;
                               request.set_name(name);
                               return client.DeleteComputeTarget(request).status();
                             });
}

}  // namespace

int NodesCommand(Invocation& inv, const std::vector<std::string>& args) {
  FlagSet flags("drover nodes [flags]",
                "Lists the nodes droverd knows, by name: NAME, STATE (READY, CORDONED,\n"
                "DRAINING, DOWN), CPUS, MEMORY and GPUS (held by jobs / offered), JOBS (jobs\n"
                "running there), LABELS and LAST SEEN (time since its agent was last heard).\n"
                "With --output json: a JSON array of nodes.");
  return inv.RunRead(
      flags, args, "nodes",
      "  drover nodes\n"
      "  drover nodes --output json | jq -r '.[] | select(.state == \"DOWN\") | .name'\n",
      [](DroverClient& client) { return client.ListNodes(v1::ListNodesRequest()); },
      [&](const v1::ListNodesResponse& list) {
        std::vector<v1::Node> nodes(list.nodes().begin(), list.nodes().end());
        inv.PrintList(nodes, [&] {
          return FormatNodeTable(nodes, inv.ctx().now()) +
                 FormatNodeLoss(list.node_loss(), inv.ctx().now());
        });
      });
}

std::string Time(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0) return "-";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(t.seconds()),
                          absl::UTCTimeZone());
}

int TokenCreateAction(Invocation& inv, const std::vector<std::string>& args) {
  std::string ttl_text = "1h";
  std::string name;
  FlagSet flags("drover node token create [flags]",
                "Creates a one-time join token and prints it (only now: droverd keeps its hash).\n"
                "A new node joins with it once: drover-agent --join-file FILE (or --join TOKEN).");
  flags.String("ttl", &ttl_text, "How long the token may be used (at most 168h)", "DURATION");
  flags.String("name", &name, "Only a node of this name may join with it", "NODE");
  AddGlobalFlags(&flags, &inv.global());
  std::vector<std::string> positional;
  if (auto done = inv.Parse(flags, args, &positional, /*interspersed=*/true,
                            "  drover node token create --ttl 1h --name gpu-01 > token\n")) {
    return *done;
  }
  if (!positional.empty()) {
    return inv.Usage(absl::InvalidArgumentError(
        absl::StrCat("unexpected argument '", positional[0], "'; see drover node token create --help")));
  }
  absl::Duration ttl;
  if (!absl::ParseDuration(ttl_text, &ttl) || ttl <= absl::ZeroDuration()) {
    return inv.Usage(absl::InvalidArgumentError(
        absl::StrCat("--ttl: '", ttl_text, "' is not a duration such as 30m or 1h")));
  }
  v1::CreateJoinTokenRequest request;
  request.mutable_ttl()->set_seconds(absl::ToInt64Seconds(ttl));
  request.set_node_name(name);
  int exit_code = kExitOk;
  std::unique_ptr<DroverClient> client = inv.Connect(&exit_code);
  if (client == nullptr) return exit_code;
  // Not retried: a retry after a lost answer would make a second token.
  absl::StatusOr<v1::CreateJoinTokenResponse> made = client->CreateJoinToken(request);
  if (!made.ok()) return inv.ServerError(made.status());
  inv.Print([&] { return MessageToJson(*made, /*pretty=*/true); },
            [&] {
              inv.err() << "join token " << made->info().id() << " valid until "
                        << Time(made->info().expire_time())
                        << (name.empty() ? "" : absl::StrCat(" for node ", name)) << "\n";
              return absl::StrCat(made->token(), "\n");
            });
  return kExitOk;
}

int TokenListAction(Invocation& inv, const std::vector<std::string>& args) {
  FlagSet flags("drover node token list [flags]",
                "Lists the join tokens droverd keeps (never the tokens themselves).");
  AddGlobalFlags(&flags, &inv.global());
  std::vector<std::string> positional;
  if (auto done = inv.Parse(flags, args, &positional, true, "  drover node token list\n")) {
    return *done;
  }
  int exit_code = kExitOk;
  std::unique_ptr<DroverClient> client = inv.Connect(&exit_code);
  if (client == nullptr) return exit_code;
  absl::StatusOr<v1::ListJoinTokensResponse> list =
      inv.WithRetry([&] { return client->ListJoinTokens(v1::ListJoinTokensRequest()); });
  if (!list.ok()) return inv.ServerError(list.status());
  inv.Print([&] { return MessageToJson(*list, /*pretty=*/true); },
            [&] {
              std::string out = "ID            NODE          EXPIRES               STATE\n";
              for (const v1::JoinTokenInfo& t : list->tokens()) {
                std::string state = t.revoked()          ? "revoked"
                                    : !t.used_by().empty() ? absl::StrCat("used by ", t.used_by())
                                    : absl::FromUnixSeconds(t.expire_time().seconds()) < absl::Now()
                                        ? "expired"
                                        : "unused";
                absl::StrAppend(&out, absl::StrFormat("%-13s %-13s %-21s %s\n", t.id(),
                                                      t.node_name().empty() ? "*" : t.node_name(),
                                                      Time(t.expire_time()), state));
              }
              return out;
            });
  return kExitOk;
}

int TokenRevokeAction(Invocation& inv, const std::vector<std::string>& args) {
  FlagSet flags("drover node token revoke [flags] ID",
                "Revokes an unused join token (its ID from 'drover node token list').");
  AddGlobalFlags(&flags, &inv.global());
  std::vector<std::string> positional;
  if (auto done = inv.Parse(flags, args, &positional, true,
                            "  drover node token revoke 3f2a9c01b7d4\n")) {
    return *done;
  }
  v1::RevokeJoinTokenRequest request;
  if (auto done = TakeName(inv, "node token revoke", "ID", positional, request.mutable_id())) {
    return *done;
  }
  int exit_code = kExitOk;
  std::unique_ptr<DroverClient> client = inv.Connect(&exit_code);
  if (client == nullptr) return exit_code;
  absl::StatusOr<v1::RevokeJoinTokenResponse> revoked =
      inv.WithRetry([&] { return client->RevokeJoinToken(request); });
  if (!revoked.ok()) return inv.ServerError(revoked.status());
  inv.Print([&] { return std::string("{\"revoked\": true}\n"); },
            [&] { return absl::StrCat(request.id(), " REVOKED\n"); });
  return kExitOk;
}

int TokenCommand(Invocation& inv, const std::vector<std::string>& args) {
  return RunActions(inv, "node token",
                    "One-time join tokens with which new nodes get their node certificate\n"
                    "(for administrators; docs/security.md).",
                    {{"create", "Create a join token and print it", TokenCreateAction},
                     {"list", "List join tokens", TokenListAction},
                     {"revoke", "Revoke an unused join token", TokenRevokeAction}},
                    "  drover node token create --ttl 1h > /tmp/token\n"
                    "  drover node token list\n"
                    "  drover node token revoke 3f2a9c01b7d4\n",
                    args);
}

int RevokeCertAction(Invocation& inv, const std::vector<std::string>& args) {
  FlagSet flags("drover node revoke-cert [flags] NODE",
                "Revokes every node certificate of NODE: its agent is disconnected at once and\n"
                "refused until it joins again with a new token (delete node.crt and node.key\n"
                "in its --work-dir first).");
  AddGlobalFlags(&flags, &inv.global());
  std::vector<std::string> positional;
  if (auto done = inv.Parse(flags, args, &positional, true, "  drover node revoke-cert n3\n")) {
    return *done;
  }
  v1::RevokeNodeCertificatesRequest request;
  if (auto done = TakeName(inv, "node revoke-cert", "NODE", positional,
                           request.mutable_node_name())) {
    return *done;
  }
  int exit_code = kExitOk;
  std::unique_ptr<DroverClient> client = inv.Connect(&exit_code);
  if (client == nullptr) return exit_code;
  absl::StatusOr<v1::RevokeNodeCertificatesResponse> revoked =
      inv.WithRetry([&] { return client->RevokeNodeCertificates(request); });
  if (!revoked.ok()) return inv.ServerError(revoked.status());
  inv.Print([&] { return std::string("{\"revoked\": true}\n"); },
            [&] { return absl::StrCat(request.node_name(), " CERTIFICATES REVOKED\n"); });
  return kExitOk;
}

int NodeCommand(Invocation& inv, const std::vector<std::string>& args) {
  return RunActions(inv, "node",
                    "Shows a node, or changes whether it takes new work (for administrators).",
                    {{"show", "Show a node with its resources and GPUs", ShowNodeAction},
                     {"cordon", "Stop new work on a node; running work goes on", CordonAction},
                     {"uncordon", "Let a cordoned or draining node take work again", UncordonAction},
                     {"drain", "Stop new work and let running work finish", DrainAction},
                     {"lost", "Declare a node lost: its jobs end NODE_LOST now", LostAction},
                     {"token", "Create, list or revoke join tokens for new nodes", TokenCommand},
                     {"revoke-cert", "Revoke a node's certificates and disconnect it",
                      RevokeCertAction}},
                    "  drover node show n1\n"
                    "  drover node cordon n1 --reason 'disk replacement'\n"
                    "  drover node drain n1 && drover nodes\n"
                    "  drover node uncordon n1\n"
                    "  drover node lost n3 --reason 'power supply failed'\n"
                    "  drover node token create --ttl 1h\n"
                    "  drover node revoke-cert n3\n",
                    args);
}

int TargetCommand(Invocation& inv, const std::vector<std::string>& args) {
  return RunActions(inv, "target",
                    "Manages compute targets: named pools of nodes, selected by node labels,\n"
                    "that jobs are submitted to (for administrators). 'default' always exists\n"
                    "and selects every node.",
                    {{"create", "Create a target from node labels", TargetCreateAction},
                     {"list", "List the targets", TargetListAction},
                     {"delete", "Delete a target", TargetDeleteAction}},
                    "  drover target create gpu --selector accelerator=a100 --max-nodes 8\n"
                    "  drover target list\n"
                    "  drover target delete gpu\n",
                    args);
}

}  // namespace drover::cli
