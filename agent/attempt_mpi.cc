// Attempt, its MPI part: mpirun's command line on node rank 0, the files mpirun reads (the
// hostfile) and the relay of MPI's remote launches (exec_relay.h) with its folder. The MPI
// variables and mounts of the container are in BuildContainer (attempt_container.cc). See
// attempt.h and docs/containers.md.
#include "agent/attempt.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace drover::agent {
namespace {

namespace fs = std::filesystem;

// The network (a.b.c.d/len) of the local interface that has `address`; empty when none has.
std::string NetworkOf(const std::string& address) {
  in_addr wanted{};
  if (inet_pton(AF_INET, address.c_str(), &wanted) != 1) return "";
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return "";
  std::string network;
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_netmask == nullptr || i->ifa_addr->sa_family != AF_INET) {
      continue;
    }
    in_addr own = reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr;
    if (own.s_addr != wanted.s_addr) continue;
    uint32_t mask = ntohl(reinterpret_cast<sockaddr_in*>(i->ifa_netmask)->sin_addr.s_addr);
    in_addr base{};
    base.s_addr = htonl(ntohl(own.s_addr) & mask);
    char text[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &base, text, sizeof text);
    network = absl::StrCat(text, "/", __builtin_popcount(mask));
    break;
  }
  freeifaddrs(list);
  return network;
}

}  // namespace

absl::Status Attempt::WriteMpiFiles() {
  const v1::AssignAttempt& a = assignment_;
  // The hostfile mpirun reads, nodes in node rank order (ranks fill node 0 first).
  std::string hostfile;
  for (int k = 0; k < a.node_addresses_size(); ++k) {
    absl::StrAppend(&hostfile, a.node_addresses(k), " slots=", a.spec().process_count_per_node(),
                    "\n");
  }
  DROVER_RETURN_IF_ERROR(WriteTextFile(dir_ + "/job/hostfile", hostfile));
  std::error_code error;
  fs::create_directories(dir_ + "/relay", error);
  if (error) return absl::UnavailableError(absl::StrCat("cannot create ", dir_, "/relay: ", error.message()));
  if (a.node_rank() != 0) return absl::OkStatus();
  return StartRelay();
}

std::vector<std::string> Attempt::MpiCommand(const InitCommand& init) const {
  const v1::AssignAttempt& a = assignment_;
  std::vector<std::string> command = {
      "mpirun",
      "--hostfile", "/job/hostfile",
      "-np", absl::StrCat(a.world_size()),
      "--map-by", absl::StrCat("ppr:", a.spec().process_count_per_node(), ":node"),
      // Containers have their own cpu limits; binding to cores would fight them.
      "--bind-to", "none",
      "--mca", "plm_rsh_agent", kRshPath,
      // Node rank 0 starts every daemon itself: each remote launch is one request through
      // the agents, never a chain through the other nodes.
      "--mca", "plm_rsh_no_tree_spawn", "1"};
  if (!mpi_network_.empty()) {
    // Only the network the nodes registered on, not docker bridges or other links.
    command.insert(command.end(), {"--mca", "oob_tcp_if_include", mpi_network_, "--mca",
                                   "btl_tcp_if_include", mpi_network_});
  }
  std::vector<std::string> wrapper =
      init.RankWrapperArgs("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK");
  command.insert(command.end(), wrapper.begin(), wrapper.end());
  return command;
}

absl::Status Attempt::StartRelay() {
  const v1::AssignAttempt& a = assignment_;
  mpi_network_ = NetworkOf(a.node_addresses_size() > 0 ? a.node_addresses(0) : "");
  std::map<std::string, ExecPeer> peers;
  for (int k = 0; k < a.node_addresses_size() && k < a.node_peer_endpoints_size() &&
                  k < a.node_names_size();
       ++k) {
    // A node without a name cannot be verified (its certificate must name it): unreachable.
    if (a.node_peer_endpoints(k).empty() || a.node_names(k).empty()) continue;
    const ExecPeer peer{.node = a.node_names(k), .endpoint = a.node_peer_endpoints(k)};
    peers[a.node_addresses(k)] = peer;
    peers[a.node_names(k)] = peer;
  }
  // Each remote node holds one connection while its MPI daemon runs; room for a few
  // mpiruns at once in jobs of more nodes than kMaxRelayConnections allows for.
  relay_ = std::make_unique<ExecRelay>(a.attempt(), a.exec_token(), std::move(peers),
                                       env_.connect_peer,
                                       std::max(kMaxRelayConnections, 4 * a.node_count()),
                                       *env_.clock);
  const std::string socket = dir_ + "/relay/exec.sock";
  DROVER_RETURN_IF_ERROR(relay_->Listen(socket));
  // The container's root (an unprivileged host uid with a user namespace) connects to it;
  // also when a taken-over attempt listens again on a running container. lchown: the
  // folder is the job's, and a link it put there is not followed.
  if (env_.userns.size > 0 &&
      lchown(socket.c_str(), env_.userns.host_id, env_.userns.host_id) != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot give exec relay socket ", socket, " to the job: ", strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace drover::agent
