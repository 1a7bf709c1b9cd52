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
  // URIs (a node certificate's "drover-node://NAME"): letters, digits and ":/.-_" only.
  std::vector<std::string> uris;
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
  std::vector<std::string> uris;
  absl::Time not_before;
  absl::Time not_after;
  bool is_ca = false;
  // SHA-256 of the certificate's DER bytes, lowercase hex: what names one certificate
  // (revocation lists, logs).
  std::string fingerprint;
};

// What a certificate signing request (PKCS#10) says, read back after its signature was
// checked.
struct CsrInfo {
  std::string common_name;
  std::vector<std::string> uris;
  // The public key: "EC" with `key_curve` ("prime256v1", ...), "RSA", or another type;
  // `key_bits` its strength in bits as OpenSSL counts it.
  std::string key_type;
  std::string key_curve;
  int key_bits = 0;
};

// The largest CSR (PEM) that ReadCsr reads.
inline constexpr size_t kMaxCsrBytes = 16 * 1024;

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

// A certificate signing request for the private key `key_pem`, naming `common_name` with
// the subject alternative `uris`. INVALID_ARGUMENT for a bad key or name.
absl::StatusOr<std::string> CreateCsr(absl::string_view key_pem, absl::string_view common_name,
                                      const std::vector<std::string>& uris);

// Reads a CSR and checks its signature (whoever sent it holds the key). INVALID_ARGUMENT
// for anything else: not PEM, larger than kMaxCsrBytes, a bad signature.
absl::StatusOr<CsrInfo> ReadCsr(absl::string_view csr_pem);

// A certificate for the public key of `csr_pem`, signed by `ca`, saying what `request` says
// (never what the CSR asks for: the caller decides the names). Errors as IssueCertificate's
// and ReadCsr's.
absl::StatusOr<std::string> IssueCertificateForCsr(const KeyAndCertificate& ca,
                                                   absl::string_view csr_pem,
                                                   const CertificateRequest& request,
                                                   absl::Time now);

// `bytes` random bytes from OpenSSL's generator, lowercase hex (2 * bytes characters).
absl::StatusOr<std::string> RandomHex(int bytes);

// SHA-256 of `data`, lowercase hex.
std::string Sha256Hex(absl::string_view data);

// Reads `certificate_pem` (the first certificate in it). INVALID_ARGUMENT when it is none.
absl::StatusOr<CertificateInfo> ReadCertificate(absl::string_view certificate_pem);

// OK when `certificate_pem` was signed by the CA certificate `ca_pem` and is valid at
// `now`; PERMISSION_DENIED otherwise (the message says why).
absl::Status VerifyCertificate(absl::string_view certificate_pem, absl::string_view ca_pem,
                               absl::Time now);

// Whether `key_pem` is the private key of `certificate_pem`.
bool KeyMatchesCertificate(absl::string_view key_pem, absl::string_view certificate_pem);

// The URI a node certificate names its node with: "drover-node://NAME".
inline constexpr char kNodeUriScheme[] = "drover-node://";

// The node a certificate names: the URI `drover-node://NAME` with NAME a valid node name
// (common/node_name.h) equal to the common name. UNAUTHENTICATED for a certificate that is
// no node certificate. The one reading of a node's identity, for droverd (its agents'
// streams) and for the agents (their peers).
absl::StatusOr<std::string> NodeNameOfCertificate(const CertificateInfo& certificate);

}  // namespace drover::pki

#endif  // DROVER_COMMON_PKI_PKI_H_
