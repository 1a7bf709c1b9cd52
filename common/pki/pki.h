// The small public-key infrastructure of a Drover cluster: droverd's own certificate
// authority (the cluster CA), the certificates it issues (droverd's server certificate;
// later the nodes'), and what a daemon reads back from a certificate. EC P-256 keys,
// SHA-256 signatures, PEM text in and out. Built on OpenSSL's libcrypto; nothing here
// touches files or the network.
#ifndef DROVER_COMMON_PKI_PKI_H_
#define DROVER_COMMON_PKI_PKI_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace drover::pki {

// A certificate and its private key, PEM.
struct KeyAndCertificate {
  std::string key_pem;
  std::string certificate_pem;
};

// What a new certificate says.
struct CertificateRequest {
  std::string common_name;
  // Subject alternative names: host names and IP addresses (v4 or v6) it is valid for.
  std::vector<std::string> dns_names;
  std::vector<std::string> ip_addresses;
  // Extended key usage: a TLS server, a TLS client, or both.
  bool server = false;
  bool client = false;
  absl::Duration validity = absl::Hours(24 * 365);
};

// What a certificate says, read back.
struct CertificateInfo {
  std::string common_name;
  std::vector<std::string> dns_names;
  std::vector<std::string> ip_addresses;
  absl::Time not_before;
  absl::Time not_after;
  bool is_ca = false;
};

// A new EC P-256 private key, PEM (PKCS#8).
absl::StatusOr<std::string> GenerateKey();

// A new self-signed certificate authority named `common_name`, valid from `now` (less a
// minute for clocks that differ) for `validity`: a new key and its certificate.
absl::StatusOr<KeyAndCertificate> CreateCertificateAuthority(absl::string_view common_name,
                                                             absl::Duration validity,
                                                             absl::Time now);

// A certificate for the public half of `subject_key_pem` (a private key, PEM), signed by
// `ca`. INVALID_ARGUMENT for a bad key, CA or address.
absl::StatusOr<std::string> IssueCertificate(const KeyAndCertificate& ca,
                                             absl::string_view subject_key_pem,
                                             const CertificateRequest& request, absl::Time now);

// Reads `certificate_pem` (the first certificate in it). INVALID_ARGUMENT when it is none.
absl::StatusOr<CertificateInfo> ReadCertificate(absl::string_view certificate_pem);

// OK when `certificate_pem` was signed by the CA certificate `ca_pem` and is valid at
// `now`; PERMISSION_DENIED otherwise (the message says why).
absl::Status VerifyCertificate(absl::string_view certificate_pem, absl::string_view ca_pem,
                               absl::Time now);

// Whether `key_pem` is the private key of `certificate_pem`.
bool KeyMatchesCertificate(absl::string_view key_pem, absl::string_view certificate_pem);

}  // namespace drover::pki

#endif  // DROVER_COMMON_PKI_PKI_H_
