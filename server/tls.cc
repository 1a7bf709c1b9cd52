#include "server/tls.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "common/safe_open.h"

namespace drover::server {
namespace {

namespace fs = std::filesystem;

constexpr absl::Duration kCaValidity = absl::Hours(24 * 365 * 10);
constexpr absl::Duration kServerValidity = absl::Hours(24 * 365);
constexpr absl::Duration kRenewBefore = absl::Hours(24 * 30);

absl::StatusOr<std::string> ReadPem(const std::string& path, absl::string_view flag) {
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": cannot read '", path, "'"));
  }
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

bool Exists(const std::string& path) {
  std::error_code error;
  return fs::exists(path, error);
}

bool IsIp(const std::string& text) {
  unsigned char bytes[16];
  return inet_pton(AF_INET, text.c_str(), bytes) == 1 ||
         inet_pton(AF_INET6, text.c_str(), bytes) == 1;
}

void AddOnce(std::vector<std::string>* list, const std::string& item) {
  if (!item.empty() && std::find(list->begin(), list->end(), item) == list->end()) {
    list->push_back(item);
  }
}

absl::StatusOr<pki::KeyAndCertificate> LoadOrCreateCa(const std::string& dir, absl::Time now) {
  const std::string key_path = dir + "/ca.key";
  const std::string cert_path = dir + "/ca.crt";
  if (Exists(key_path) && Exists(cert_path)) {
    absl::StatusOr<std::string> key = ReadPem(key_path, "cluster CA");
    absl::StatusOr<std::string> cert = ReadPem(cert_path, "cluster CA");
    if (!key.ok()) return key.status();
    if (!cert.ok()) return cert.status();
    if (!pki::KeyMatchesCertificate(*key, *cert)) {
      return absl::FailedPreconditionError(absl::StrCat(
          key_path, " is not the key of ", cert_path,
          "; restore the pair from a backup (a new CA would lock out every node and client)"));
    }
    return pki::KeyAndCertificate{.key_pem = *std::move(key), .certificate_pem = *std::move(cert)};
  }
  if (Exists(key_path) || Exists(cert_path)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "half of the cluster CA is in ", dir, " (ca.key and ca.crt go together); restore both"));
  }
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  absl::StatusOr<pki::KeyAndCertificate> ca =
      pki::CreateCertificateAuthority(absl::StrCat("drover cluster CA ", host).substr(0, 64),
                                      kCaValidity, now);
  if (!ca.ok()) return ca.status();
  // The key first: a certificate without its key would be a half CA.
  if (absl::Status s = ReplaceFile(key_path, ca->key_pem, 0600); !s.ok()) return s;
  if (absl::Status s = ReplaceFile(cert_path, ca->certificate_pem, 0600); !s.ok()) return s;
  Log(LogLevel::kInfo, "cluster_ca_created", {{"certificate", cert_path}});
  return ca;
}

}  // namespace

void ServerNames(const std::string& listen_host, const std::vector<std::string>& extra,
                 std::vector<std::string>* dns_names, std::vector<std::string>* ip_addresses) {
  AddOnce(dns_names, "localhost");
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) == 0) AddOnce(dns_names, host);
  AddOnce(ip_addresses, "127.0.0.1");
  AddOnce(ip_addresses, "::1");
  std::string bare = listen_host;
  if (bare.size() >= 2 && bare.front() == '[' && bare.back() == ']') bare = bare.substr(1, bare.size() - 2);
  const bool everywhere = bare.empty() || bare == "0.0.0.0" || bare == "::";
  if (everywhere) {
    ifaddrs* list = nullptr;
    if (::getifaddrs(&list) == 0) {
      for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
        if (i->ifa_addr == nullptr) continue;
        char text[INET6_ADDRSTRLEN] = {};
        if (i->ifa_addr->sa_family == AF_INET) {
          inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, text, sizeof text);
        } else if (i->ifa_addr->sa_family == AF_INET6) {
          const in6_addr& address = reinterpret_cast<sockaddr_in6*>(i->ifa_addr)->sin6_addr;
          if (IN6_IS_ADDR_LINKLOCAL(&address)) continue;
          inet_ntop(AF_INET6, &address, text, sizeof text);
        } else {
          continue;
        }
        AddOnce(ip_addresses, text);
      }
      ::freeifaddrs(list);
    }
  } else {
    AddOnce(IsIp(bare) ? ip_addresses : dns_names, bare);
  }
  for (const std::string& name : extra) AddOnce(IsIp(name) ? ip_addresses : dns_names, name);
}

absl::StatusOr<ServerTls> LoadServerTls(const std::string& state_dir, const TlsOptions& options,
                                        const std::string& listen_host, absl::Time now) {
  const int given = !options.certificate_file.empty() + !options.key_file.empty() +
                    !options.ca_file.empty();
  if (given != 0) {
    if (given != 3) {
      return absl::InvalidArgumentError(
          "--tls-cert, --tls-key and --tls-ca go together: give all three, or none for "
          "droverd's own cluster CA");
    }
    ServerTls tls;
    absl::StatusOr<std::string> cert = ReadPem(options.certificate_file, "--tls-cert");
    absl::StatusOr<std::string> key = ReadPem(options.key_file, "--tls-key");
    absl::StatusOr<std::string> ca = ReadPem(options.ca_file, "--tls-ca");
    if (!cert.ok()) return cert.status();
    if (!key.ok()) return key.status();
    if (!ca.ok()) return ca.status();
    if (!pki::KeyMatchesCertificate(*key, *cert)) {
      return absl::InvalidArgumentError(absl::StrCat("--tls-key: '", options.key_file,
                                                     "' is not the key of --tls-cert '",
                                                     options.certificate_file, "'"));
    }
    if (absl::Status s = pki::VerifyCertificate(*cert, *ca, now); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--tls-cert: '", options.certificate_file, "' does not verify against --tls-ca '",
          options.ca_file, "': ", s.message()));
    }
    tls.certificate_pem = *std::move(cert);
    tls.key_pem = *std::move(key);
    tls.ca_pem = *std::move(ca);
    return tls;
  }

  const std::string dir = state_dir + "/tls";
  std::error_code error;
  fs::create_directories(dir, error);
  if (error) {
    return absl::UnavailableError(absl::StrCat("cannot create ", dir, ": ", error.message()));
  }
  ServerTls tls;
  absl::StatusOr<pki::KeyAndCertificate> ca = LoadOrCreateCa(dir, now);
  if (!ca.ok()) return ca.status();
  tls.ca = *std::move(ca);
  tls.ca_pem = tls.ca.certificate_pem;

  std::vector<std::string> dns_names, ip_addresses;
  ServerNames(listen_host, options.extra_names, &dns_names, &ip_addresses);
  const std::string key_path = dir + "/server.key";
  const std::string cert_path = dir + "/server.crt";
  if (Exists(key_path) && Exists(cert_path)) {
    absl::StatusOr<std::string> key = ReadPem(key_path, "server key");
    absl::StatusOr<std::string> cert = ReadPem(cert_path, "server certificate");
    if (key.ok() && cert.ok() && pki::KeyMatchesCertificate(*key, *cert) &&
        pki::VerifyCertificate(*cert, tls.ca_pem, now + kRenewBefore).ok()) {
      absl::StatusOr<pki::CertificateInfo> info = pki::ReadCertificate(*cert);
      auto covers = [](const std::vector<std::string>& have, const std::vector<std::string>& want) {
        return std::all_of(want.begin(), want.end(), [&](const std::string& name) {
          return std::find(have.begin(), have.end(), name) != have.end();
        });
      };
      if (info.ok() && covers(info->dns_names, dns_names) &&
          covers(info->ip_addresses, ip_addresses)) {
        tls.key_pem = *std::move(key);
        tls.certificate_pem = *std::move(cert);
        return tls;
      }
    }
  }
  absl::StatusOr<std::string> key = pki::GenerateKey();
  if (!key.ok()) return key.status();
  absl::StatusOr<std::string> cert =
      pki::IssueCertificate(tls.ca, *key,
                            {.common_name = "droverd",
                             .dns_names = dns_names,
                             .ip_addresses = ip_addresses,
                             .server = true,
                             .validity = kServerValidity},
                            now);
  if (!cert.ok()) return cert.status();
  if (absl::Status s = ReplaceFile(key_path, *key, 0600); !s.ok()) return s;
  if (absl::Status s = ReplaceFile(cert_path, *cert, 0600); !s.ok()) return s;
  Log(LogLevel::kInfo, "server_certificate_issued",
      {{"names", absl::StrJoin(dns_names, ",")}, {"addresses", absl::StrJoin(ip_addresses, ",")}});
  tls.key_pem = *std::move(key);
  tls.certificate_pem = *std::move(cert);
  return tls;
}

}  // namespace drover::server
