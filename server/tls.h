// droverd's TLS material: every client, agent and admin reaches droverd over TLS. By
// default droverd keeps its own cluster CA in `<state-dir>/tls/` (created at first start,
// its key 0600) and issues itself a server certificate for the names it is reached by;
// an administrator may give their own certificate, key and CA instead. Clients trust the
// CA certificate (`<state-dir>/tls/ca.crt`, safe to copy anywhere).
#ifndef DROVER_SERVER_TLS_H_
#define DROVER_SERVER_TLS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/pki/pki.h"

namespace drover::server {

struct TlsOptions {
  // The administrator's own server certificate, its key and the CA clients trust (PEM
  // files): all three, or none for droverd's own CA.
  std::string certificate_file;
  std::string key_file;
  std::string ca_file;
  // More names (host names or IP addresses) droverd's own server certificate is valid for,
  // beyond localhost, this host's name and the address it listens on (every local address
  // when it listens on all of them).
  std::vector<std::string> extra_names;
};

struct ServerTls {
  std::string ca_pem;           // what clients trust
  std::string certificate_pem;  // droverd's server certificate (chain)
  std::string key_pem;
  // droverd's own CA (empty with an administrator's certificate): what node certificates
  // will be issued with.
  pki::KeyAndCertificate ca;
};

// Loads or creates the TLS material for a droverd listening on `listen_host` (an address
// or a name; "0.0.0.0", "::" or "" for every local address). The server certificate is
// issued again when it is missing, not from this CA, lacks a name it needs, or ends within
// 30 days. Files under `<state_dir>/tls/`, 0600 like everything in the state folder (the
// certificates are not secret: an administrator copies ca.crt to nodes and clients), each
// replaced atomically. INVALID_ARGUMENT for incomplete or unreadable
// administrator files (the message names the flag); UNAVAILABLE when files cannot be
// written.
absl::StatusOr<ServerTls> LoadServerTls(const std::string& state_dir, const TlsOptions& options,
                                        const std::string& listen_host, absl::Time now);

// The names droverd's own certificate is issued for (see LoadServerTls), split into host
// names and IP addresses.
void ServerNames(const std::string& listen_host, const std::vector<std::string>& extra,
                 std::vector<std::string>* dns_names, std::vector<std::string>* ip_addresses);

}  // namespace drover::server

#endif  // DROVER_SERVER_TLS_H_
