#include "tests/testing/test_tls.h"

#include <arpa/inet.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/pki/pki.h"
#include "tests/testing/subprocess.h"

namespace drover::testing {
namespace {

struct TestCa {
  TempDir dir;
  pki::KeyAndCertificate ca;
  std::string ca_file;
  std::string admin_token;
  std::string admin_token_file;
};

void WriteOrDie(const std::string& path, const std::string& text, mode_t mode) {
  std::ofstream(path, std::ios::trunc) << text;
  ::chmod(path.c_str(), mode);
}

TestCa& Ca() {
  // Destroyed at exit with its folder.
  static TestCa* ca = [] {
    auto* made = new TestCa();
    absl::StatusOr<pki::KeyAndCertificate> created =
        pki::CreateCertificateAuthority("drover test CA", absl::Hours(24 * 30), absl::Now());
    if (!created.ok()) std::abort();
    made->ca = *std::move(created);
    made->ca_file = made->dir.path() + "/ca.crt";
    WriteOrDie(made->ca_file, made->ca.certificate_pem, 0644);
    // A token per test process, like the CA: random, so that no test relies on its value.
    std::random_device random;
    made->admin_token = "drv_test";
    for (int i = 0; i < 8; ++i) {
      absl::StrAppend(&made->admin_token, absl::Hex(random(), absl::kZeroPad8));
    }
    made->admin_token_file = made->dir.path() + "/admin.token";
    WriteOrDie(made->admin_token_file, made->admin_token + "\n", 0600);
    // Every drover CLI the test runs (it inherits this environment) is the test admin,
    // unless the test sets DROVER_TOKEN (or --token) itself.
    ::setenv("DROVER_TOKEN", made->admin_token.c_str(), /*overwrite=*/1);
    // Their connection keepers (cli/keeper.h) live in this process's own folder, and end
    // within a second of its removal at exit: no test leaves one running.
    std::string runtime_dir = made->dir.path() + "/run";
    if (mkdir(runtime_dir.c_str(), 0700) != 0) std::abort();
    ::setenv("XDG_RUNTIME_DIR", runtime_dir.c_str(), /*overwrite=*/1);
    std::atexit([] { delete ca; });
    return made;
  }();
  return *ca;
}

bool IsIp(const std::string& text) {
  unsigned char bytes[16];
  return inet_pton(AF_INET, text.c_str(), bytes) == 1 ||
         inet_pton(AF_INET6, text.c_str(), bytes) == 1;
}

}  // namespace

const std::string& TestCaFile() { return Ca().ca_file; }
const std::string& TestCaPem() { return Ca().ca.certificate_pem; }
const std::string& TestAdminToken() { return Ca().admin_token; }
const std::string& TestAdminTokenFile() { return Ca().admin_token_file; }

const pki::KeyAndCertificate& TestCaKeyAndCertificate() { return Ca().ca; }

absl::StatusOr<pki::KeyAndCertificate> IssueNodeCertificate(const pki::KeyAndCertificate& ca,
                                                            const std::string& name,
                                                            absl::Duration validity) {
  absl::StatusOr<std::string> key = pki::GenerateKey();
  if (!key.ok()) return key.status();
  absl::StatusOr<std::string> cert = pki::IssueCertificate(
      ca, *key,
      {.common_name = name, .uris = {"drover-node://" + name}, .client = true, .validity = validity},
      absl::Now());
  if (!cert.ok()) return cert.status();
  return pki::KeyAndCertificate{.key_pem = *std::move(key), .certificate_pem = *std::move(cert)};
}

absl::StatusOr<NodeTlsFiles> IssueTestNodeTls(const std::string& name) {
  static std::atomic<int> issued{0};
  TestCa& ca = Ca();
  absl::StatusOr<pki::KeyAndCertificate> made = IssueNodeCertificate(ca.ca, name);
  if (!made.ok()) return made.status();
  int n = ++issued;
  NodeTlsFiles files{.certificate_file = absl::StrCat(ca.dir.path(), "/node-", n, ".crt"),
                     .key_file = absl::StrCat(ca.dir.path(), "/node-", n, ".key")};
  WriteOrDie(files.certificate_file, made->certificate_pem, 0600);
  WriteOrDie(files.key_file, made->key_pem, 0600);
  return files;
}

absl::StatusOr<ServerTlsFiles> IssueTestServerTls(const std::string& host) {
  static std::atomic<int> issued{0};
  TestCa& ca = Ca();
  pki::CertificateRequest request{.common_name = "droverd",
                                  .dns_names = {"localhost"},
                                  .ip_addresses = {"127.0.0.1"},
                                  .server = true,
                                  .validity = absl::Hours(24 * 7)};
  if (!host.empty() && host != "localhost" && host != "127.0.0.1") {
    (IsIp(host) ? request.ip_addresses : request.dns_names).push_back(host);
  }
  absl::StatusOr<std::string> key = pki::GenerateKey();
  if (!key.ok()) return key.status();
  absl::StatusOr<std::string> cert = pki::IssueCertificate(ca.ca, *key, request, absl::Now());
  if (!cert.ok()) return cert.status();
  int n = ++issued;
  ServerTlsFiles files{.certificate_file = absl::StrCat(ca.dir.path(), "/server-", n, ".crt"),
                       .key_file = absl::StrCat(ca.dir.path(), "/server-", n, ".key"),
                       .ca_file = ca.ca_file};
  WriteOrDie(files.certificate_file, *cert, 0644);
  WriteOrDie(files.key_file, *key, 0600);
  return files;
}

}  // namespace drover::testing
