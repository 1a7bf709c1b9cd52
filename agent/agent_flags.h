// The drover-agent command line: its flags and config file, checked and turned into the
// settings main() builds the agent from. Kept apart from main() so that every check of a
// value is testable without starting an agent.
#ifndef DROVER_AGENT_AGENT_FLAGS_H_
#define DROVER_AGENT_AGENT_FLAGS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/log.h"

namespace drover::agent {

struct AgentSettings {
  bool help = false;      // --help: print help_text and exit 0; nothing else is set
  std::string help_text;
  std::string scheduler;
  // The CA certificate (PEM) droverd's certificate is checked against, read from --ca.
  std::string ca_pem;
  std::string ca_file;  // --ca
  // The one-time join token (--join, or read from --join-file); empty: none.
  std::string join_token;
  // The node certificate and key: <work-dir>/node.crt and node.key (the agent's own, from a
  // join, renewed by it) unless --node-cert/--node-key name an administrator's.
  std::string node_cert_file;
  std::string node_key_file;
  bool node_cert_managed = true;
  std::string node_name;
  std::string work_dir;
  std::string address;                        // empty: the one facing droverd
  std::map<std::string, std::string> labels;  // --label KEY=VALUE
  double cpus = 0;                            // 0: all
  int64_t memory_mib = 0;                     // 0: all
  std::string runc;
  std::string init;
  std::string rsh;
  std::string python_dir;
  absl::Duration metrics_interval;
  std::string peer_listen;  // empty: --address with a port the kernel picks
  std::string metrics_listen;
  std::vector<std::string> gpu_inventory;  // --gpu, as written
  int64_t gpu_count = -1;                  // -1: all found
  std::string nvidia_smi;
  int64_t environment_cache_bytes = 0;
  bool stop_jobs_on_exit = false;
  // --datastore-root: the folders HOSTPATH datastores may be in (none: no HOSTPATH
  // datastore runs on this node); each checked with CheckDatastoreRoot.
  std::vector<std::string> datastore_roots;
  bool allow_unpatched_runc = false;  // --allow-unpatched-runc
  // --userns-range HOST_ID:SIZE: the host ids every job container's ids 0..SIZE-1 map to;
  // userns_size 0 (`--userns-range none`): no user namespace.
  uint32_t userns_host_id = 100000;
  uint32_t userns_size = 65536;
  int64_t pids_limit = 4096;  // --pids-limit; 0: none
  LogLevel log_level = LogLevel::kInfo;
};

// Parses the arguments (without the program name) and the --config file they name.
// INVALID_ARGUMENT names the flag (or the file and line) and what to write instead.
absl::StatusOr<AgentSettings> ParseAgentFlags(const std::vector<std::string>& args);

}  // namespace drover::agent

#endif  // DROVER_AGENT_AGENT_FLAGS_H_
