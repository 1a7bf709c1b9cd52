// TLS for tests: every droverd a test starts serves TLS with a server certificate from one
// CA per test process (made on first use in a temporary folder, removed at exit), so that
// every client and agent of the test trusts the same CA file. Tests of droverd's own
// cluster CA start droverd without these files instead. The same goes for the admin token
// every test droverd knows and every test channel carries.
#ifndef DROVER_TESTS_TESTING_TEST_TLS_H_
#define DROVER_TESTS_TESTING_TEST_TLS_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/pki/pki.h"

namespace drover::testing {

// The test CA's certificate: its file (PEM) and its text.
const std::string& TestCaFile();
const std::string& TestCaPem();

// The admin token of every droverd a test starts (DroverdProcess passes
// --bootstrap-admin-token-file TestAdminTokenFile(); in-process droverds get it in
// DroverdOptions::bootstrap_admin_token), and that TlsChannel sends by default. Its first
// use also sets DROVER_TOKEN in this process's environment, so that the drover CLIs a test
// runs are admin too.
const std::string& TestAdminToken();
const std::string& TestAdminTokenFile();

struct ServerTlsFiles {
  std::string certificate_file;
  std::string key_file;
  std::string ca_file;
};

// A new server certificate and key from the test CA for `host` (an address or a name;
// localhost and 127.0.0.1 are always in it), written next to the CA.
absl::StatusOr<ServerTlsFiles> IssueTestServerTls(const std::string& host);

// A node certificate and key for node `name` from the test CA (CN NAME, URI SAN
// drover-node://NAME, client use), as droverd issues them, written next to the CA: what
// AgentProcess gives its agents (--node-cert/--node-key).
struct NodeTlsFiles {
  std::string certificate_file;
  std::string key_file;
};
absl::StatusOr<NodeTlsFiles> IssueTestNodeTls(const std::string& name);

// The same from another CA (`ca`, for example an in-process droverd's own), PEM.
absl::StatusOr<pki::KeyAndCertificate> IssueNodeCertificate(const pki::KeyAndCertificate& ca,
                                                            const std::string& name,
                                                            absl::Duration validity = absl::Hours(24));

// The test CA itself, with its key.
const pki::KeyAndCertificate& TestCaKeyAndCertificate();

}  // namespace drover::testing

#endif  // DROVER_TESTS_TESTING_TEST_TLS_H_
