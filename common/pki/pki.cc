#include "common/pki/pki.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <ctime>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/node_name.h"

namespace drover::pki {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free_all(b); }
};
struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct CertFree {
  void operator()(X509* x) const { X509_free(x); }
};
struct StoreFree {
  void operator()(X509_STORE* s) const { X509_STORE_free(s); }
};
struct StoreCtxFree {
  void operator()(X509_STORE_CTX* c) const { X509_STORE_CTX_free(c); }
};
struct ReqFree {
  void operator()(X509_REQ* r) const { X509_REQ_free(r); }
};
struct BnFree {
  void operator()(BIGNUM* b) const { BN_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyFree>;
using CertPtr = std::unique_ptr<X509, CertFree>;

// OpenSSL's last error, for a message; clears its queue.
std::string OpenSslError() {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown error";
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  return text;
}

absl::Status Failed(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", OpenSslError()));
}

BioPtr ReadBio(absl::string_view pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

std::string Drain(BIO* bio) {
  char* data = nullptr;
  long size = BIO_get_mem_data(bio, &data);
  return size > 0 ? std::string(data, static_cast<size_t>(size)) : std::string();
}

absl::StatusOr<KeyPtr> KeyFromPem(absl::string_view pem) {
  BioPtr bio = ReadBio(pem);
  KeyPtr key(bio == nullptr ? nullptr : PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (key == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError("not a PEM private key");
  }
  return key;
}

absl::StatusOr<CertPtr> CertFromPem(absl::string_view pem) {
  BioPtr bio = ReadBio(pem);
  CertPtr cert(bio == nullptr ? nullptr : PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError("not a PEM certificate");
  }
  return cert;
}

absl::StatusOr<std::string> KeyToPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return Failed("writing a private key");
  }
  return Drain(bio.get());
}

absl::StatusOr<std::string> CertToPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr || PEM_write_bio_X509(bio.get(), cert) != 1) {
    return Failed("writing a certificate");
  }
  return Drain(bio.get());
}

absl::StatusOr<KeyPtr> NewKey() {
  KeyPtr key(EVP_EC_gen("P-256"));
  if (key == nullptr) return Failed("generating an EC P-256 key");
  return key;
}

// Serial number (127 random bits), validity, version 3 and the subject's name.
absl::Status Prepare(X509* cert, absl::string_view common_name, absl::Time now,
                     absl::Duration validity) {
  if (common_name.empty() || common_name.size() > 64) {
    return absl::InvalidArgumentError("a certificate's common name has 1 to 64 characters");
  }
  std::unique_ptr<BIGNUM, BnFree> serial(BN_new());
  if (serial == nullptr || BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert)) == nullptr) {
    return Failed("making a serial number");
  }
  // A minute back: clocks of the nodes differ a little.
  const time_t start = static_cast<time_t>(absl::ToUnixSeconds(now) - 60);
  const time_t end = static_cast<time_t>(absl::ToUnixSeconds(now + validity));
  if (X509_set_version(cert, 2) != 1 || ASN1_TIME_set(X509_getm_notBefore(cert), start) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert), end) == nullptr) {
    return Failed("setting validity");
  }
  X509_NAME* name = X509_get_subject_name(cert);
  if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(common_name.data()),
                                 static_cast<int>(common_name.size()), -1, 0) != 1) {
    return Failed("setting the common name");
  }
  return absl::OkStatus();
}

absl::Status AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX context;
  X509V3_set_ctx_nodb(&context);
  X509V3_set_ctx(&context, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &context, nid, value.c_str());
  if (extension == nullptr) return Failed(absl::StrCat("extension ", OBJ_nid2sn(nid), "=", value));
  int added = X509_add_ext(cert, extension, -1);
  X509_EXTENSION_free(extension);
  if (added != 1) return Failed(absl::StrCat("adding extension ", OBJ_nid2sn(nid)));
  return absl::OkStatus();
}

// Host names as certificates carry them: letters, digits, '-', '.', a leading "*." at most.
// Anything else (a comma above all) could smuggle other names into the extension's text.
bool IsHostName(absl::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  if (absl::StartsWith(name, "*.")) name.remove_prefix(2);
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.') return false;
  }
  return !name.empty();
}

// URIs as node certificates carry them: no comma or other character of the extension
// syntax.
bool IsUri(absl::string_view uri) {
  if (uri.empty() || uri.size() > 253) return false;
  for (char c : uri) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != ':' && c != '/' && c != '.' &&
        c != '-' && c != '_') {
      return false;
    }
  }
  return true;
}

absl::Time FromAsn1(const ASN1_TIME* time) {
  struct tm parts = {};
  if (time == nullptr || ASN1_TIME_to_tm(time, &parts) != 1) return absl::InfinitePast();
  return absl::FromTimeT(timegm(&parts));
}

}  // namespace

absl::StatusOr<std::string> GenerateKey() {
  absl::StatusOr<KeyPtr> key = NewKey();
  if (!key.ok()) return key.status();
  return KeyToPem(key->get());
}

absl::StatusOr<KeyAndCertificate> CreateCertificateAuthority(absl::string_view common_name,
                                                             absl::Duration validity,
                                                             absl::Time now) {
  absl::StatusOr<KeyPtr> key = NewKey();
  if (!key.ok()) return key.status();
  CertPtr cert(X509_new());
  if (cert == nullptr) return Failed("making a certificate");
  if (absl::Status s = Prepare(cert.get(), common_name, now, validity); !s.ok()) return s;
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get())) != 1 ||
      X509_set_pubkey(cert.get(), key->get()) != 1) {
    return Failed("setting the CA's name and key");
  }
  for (auto [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
                            std::pair{NID_key_usage, "critical,keyCertSign,cRLSign"},
                            std::pair{NID_subject_key_identifier, "hash"}}) {
    if (absl::Status s = AddExtension(cert.get(), cert.get(), nid, value); !s.ok()) return s;
  }
  if (X509_sign(cert.get(), key->get(), EVP_sha256()) <= 0) return Failed("signing the CA");
  KeyAndCertificate ca;
  absl::StatusOr<std::string> key_pem = KeyToPem(key->get());
  absl::StatusOr<std::string> cert_pem = CertToPem(cert.get());
  if (!key_pem.ok()) return key_pem.status();
  if (!cert_pem.ok()) return cert_pem.status();
  ca.key_pem = *std::move(key_pem);
  ca.certificate_pem = *std::move(cert_pem);
  return ca;
}

namespace {

absl::StatusOr<std::string> Issue(const KeyAndCertificate& ca, EVP_PKEY* subject,
                                  const CertificateRequest& request, absl::Time now) {
  absl::StatusOr<KeyPtr> ca_key = KeyFromPem(ca.key_pem);
  absl::StatusOr<CertPtr> ca_cert = CertFromPem(ca.certificate_pem);
  if (!ca_key.ok() || !ca_cert.ok()) {
    return absl::InvalidArgumentError("the CA's key or certificate cannot be read");
  }
  std::vector<std::string> names;
  for (const std::string& dns : request.dns_names) {
    if (!IsHostName(dns)) {
      return absl::InvalidArgumentError(absl::StrCat("'", dns, "' is not a host name"));
    }
    names.push_back("DNS:" + dns);
  }
  for (const std::string& ip : request.ip_addresses) {
    unsigned char bytes[16];
    if (inet_pton(AF_INET, ip.c_str(), bytes) != 1 && inet_pton(AF_INET6, ip.c_str(), bytes) != 1) {
      return absl::InvalidArgumentError(absl::StrCat("'", ip, "' is not an IP address"));
    }
    names.push_back("IP:" + ip);
  }
  for (const std::string& uri : request.uris) {
    if (!IsUri(uri)) return absl::InvalidArgumentError(absl::StrCat("'", uri, "' is not a URI"));
    names.push_back("URI:" + uri);
  }
  CertPtr cert(X509_new());
  if (cert == nullptr) return Failed("making a certificate");
  if (absl::Status s = Prepare(cert.get(), request.common_name, now, request.validity); !s.ok()) {
    return s;
  }
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_cert->get())) != 1 ||
      X509_set_pubkey(cert.get(), subject) != 1) {
    return Failed("setting the issuer and key");
  }
  std::vector<std::string> usages;
  if (request.server) usages.push_back("serverAuth");
  if (request.client) usages.push_back("clientAuth");
  std::vector<std::pair<int, std::string>> extensions = {
      {NID_basic_constraints, "critical,CA:FALSE"},
      {NID_key_usage, "critical,digitalSignature,keyAgreement"},
      {NID_subject_key_identifier, "hash"},
      {NID_authority_key_identifier, "keyid:always"}};
  if (!usages.empty()) extensions.push_back({NID_ext_key_usage, absl::StrJoin(usages, ",")});
  if (!names.empty()) extensions.push_back({NID_subject_alt_name, absl::StrJoin(names, ",")});
  for (const auto& [nid, value] : extensions) {
    if (absl::Status s = AddExtension(cert.get(), ca_cert->get(), nid, value); !s.ok()) return s;
  }
  if (X509_sign(cert.get(), ca_key->get(), EVP_sha256()) <= 0) return Failed("signing");
  return CertToPem(cert.get());
}

absl::StatusOr<std::unique_ptr<X509_REQ, ReqFree>> CsrFromPem(absl::string_view pem) {
  if (pem.size() > kMaxCsrBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("a CSR of ", pem.size(), " bytes is too large (at most ", kMaxCsrBytes, ")"));
  }
  BioPtr bio = ReadBio(pem);
  std::unique_ptr<X509_REQ, ReqFree> csr(
      bio == nullptr ? nullptr : PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr));
  if (csr == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError("not a PEM certificate signing request");
  }
  EVP_PKEY* key = X509_REQ_get0_pubkey(csr.get());
  if (key == nullptr || X509_REQ_verify(csr.get(), key) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError("the CSR's signature does not verify with its own key");
  }
  return csr;
}

// The names of a GENERAL_NAMES list by type.
void ReadNames(const GENERAL_NAMES* names, std::vector<std::string>* dns,
               std::vector<std::string>* ips, std::vector<std::string>* uris) {
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* entry = sk_GENERAL_NAME_value(names, i);
    auto text = [](const ASN1_STRING* s) {
      return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                         static_cast<size_t>(ASN1_STRING_length(s)));
    };
    if (entry->type == GEN_DNS && dns != nullptr) {
      dns->push_back(text(entry->d.dNSName));
    } else if (entry->type == GEN_URI && uris != nullptr) {
      uris->push_back(text(entry->d.uniformResourceIdentifier));
    } else if (entry->type == GEN_IPADD && ips != nullptr) {
      const ASN1_OCTET_STRING* ip = entry->d.iPAddress;
      char address[INET6_ADDRSTRLEN] = {};
      int size = ASN1_STRING_length(ip);
      if ((size == 4 || size == 16) &&
          inet_ntop(size == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(ip), address,
                    sizeof address)) {
        ips->emplace_back(address);
      }
    }
  }
}

std::string CommonName(X509_NAME* subject) {
  char name[256];
  int length = X509_NAME_get_text_by_NID(subject, NID_commonName, name, sizeof name);
  ERR_clear_error();
  return length > 0 ? std::string(name, static_cast<size_t>(length)) : std::string();
}

std::string Hex(const unsigned char* bytes, size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (size_t i = 0; i < size; ++i) {
    out.push_back(kDigits[bytes[i] >> 4]);
    out.push_back(kDigits[bytes[i] & 15]);
  }
  return out;
}

}  // namespace

absl::StatusOr<std::string> IssueCertificate(const KeyAndCertificate& ca,
                                             absl::string_view subject_key_pem,
                                             const CertificateRequest& request, absl::Time now) {
  absl::StatusOr<KeyPtr> subject = KeyFromPem(subject_key_pem);
  if (!subject.ok()) return absl::InvalidArgumentError("the subject's key cannot be read");
  return Issue(ca, subject->get(), request, now);
}

absl::StatusOr<std::string> CreateCsr(absl::string_view key_pem, absl::string_view common_name,
                                      const std::vector<std::string>& uris) {
  absl::StatusOr<KeyPtr> key = KeyFromPem(key_pem);
  if (!key.ok()) return key.status();
  if (common_name.empty() || common_name.size() > 64) {
    return absl::InvalidArgumentError("a CSR's common name has 1 to 64 characters");
  }
  std::unique_ptr<X509_REQ, ReqFree> csr(X509_REQ_new());
  if (csr == nullptr || X509_REQ_set_version(csr.get(), 0) != 1 ||
      X509_REQ_set_pubkey(csr.get(), key->get()) != 1) {
    return Failed("making a CSR");
  }
  X509_NAME* name = X509_REQ_get_subject_name(csr.get());
  if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(common_name.data()),
                                 static_cast<int>(common_name.size()), -1, 0) != 1) {
    return Failed("setting the CSR's common name");
  }
  if (!uris.empty()) {
    std::vector<std::string> names;
    for (const std::string& uri : uris) {
      if (!IsUri(uri)) return absl::InvalidArgumentError(absl::StrCat("'", uri, "' is not a URI"));
      names.push_back("URI:" + uri);
    }
    X509V3_CTX context;
    X509V3_set_ctx_nodb(&context);
    X509V3_set_ctx(&context, nullptr, nullptr, csr.get(), nullptr, 0);
    X509_EXTENSION* alt = X509V3_EXT_conf_nid(nullptr, &context, NID_subject_alt_name,
                                              absl::StrJoin(names, ",").c_str());
    if (alt == nullptr) return Failed("the CSR's names");
    STACK_OF(X509_EXTENSION)* extensions = sk_X509_EXTENSION_new_null();
    sk_X509_EXTENSION_push(extensions, alt);
    int added = X509_REQ_add_extensions(csr.get(), extensions);
    sk_X509_EXTENSION_pop_free(extensions, X509_EXTENSION_free);
    if (added != 1) return Failed("adding the CSR's names");
  }
  if (X509_REQ_sign(csr.get(), key->get(), EVP_sha256()) <= 0) return Failed("signing the CSR");
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr || PEM_write_bio_X509_REQ(bio.get(), csr.get()) != 1) {
    return Failed("writing the CSR");
  }
  return Drain(bio.get());
}

absl::StatusOr<CsrInfo> ReadCsr(absl::string_view csr_pem) {
  auto csr = CsrFromPem(csr_pem);
  if (!csr.ok()) return csr.status();
  CsrInfo info;
  info.common_name = CommonName(X509_REQ_get_subject_name(csr->get()));
  STACK_OF(X509_EXTENSION)* extensions = X509_REQ_get_extensions(csr->get());
  if (extensions != nullptr) {
    auto* alt = static_cast<GENERAL_NAMES*>(
        X509V3_get_d2i(extensions, NID_subject_alt_name, nullptr, nullptr));
    ReadNames(alt, nullptr, nullptr, &info.uris);
    GENERAL_NAMES_free(alt);
    sk_X509_EXTENSION_pop_free(extensions, X509_EXTENSION_free);
  }
  EVP_PKEY* key = X509_REQ_get0_pubkey(csr->get());
  info.key_bits = EVP_PKEY_get_bits(key);
  if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC) {
    info.key_type = "EC";
    char curve[64] = {};
    size_t length = 0;
    if (EVP_PKEY_get_utf8_string_param(key, "group", curve, sizeof curve, &length) == 1) {
      info.key_curve.assign(curve, length);
    }
  } else if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA) {
    info.key_type = "RSA";
  } else {
    const char* type = OBJ_nid2sn(EVP_PKEY_get_base_id(key));
    info.key_type = type != nullptr ? type : "unknown";
  }
  ERR_clear_error();
  return info;
}

absl::StatusOr<std::string> IssueCertificateForCsr(const KeyAndCertificate& ca,
                                                   absl::string_view csr_pem,
                                                   const CertificateRequest& request,
                                                   absl::Time now) {
  auto csr = CsrFromPem(csr_pem);
  if (!csr.ok()) return csr.status();
  return Issue(ca, X509_REQ_get0_pubkey(csr->get()), request, now);
}

absl::StatusOr<std::string> RandomHex(int bytes) {
  std::string raw(static_cast<size_t>(bytes), '\0');
  if (bytes <= 0 ||
      RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), bytes) != 1) {
    return Failed("drawing random bytes");
  }
  return Hex(reinterpret_cast<const unsigned char*>(raw.data()), raw.size());
}

std::string Sha256Hex(absl::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return Hex(digest, sizeof digest);
}

absl::StatusOr<CertificateInfo> ReadCertificate(absl::string_view certificate_pem) {
  absl::StatusOr<CertPtr> cert = CertFromPem(certificate_pem);
  if (!cert.ok()) return cert.status();
  CertificateInfo info;
  info.common_name = CommonName(X509_get_subject_name(cert->get()));
  auto* alt = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert->get(), NID_subject_alt_name, nullptr, nullptr));
  ReadNames(alt, &info.dns_names, &info.ip_addresses, &info.uris);
  GENERAL_NAMES_free(alt);
  info.not_before = FromAsn1(X509_get0_notBefore(cert->get()));
  info.not_after = FromAsn1(X509_get0_notAfter(cert->get()));
  info.is_ca = X509_check_ca(cert->get()) > 0;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (X509_digest(cert->get(), EVP_sha256(), digest, &size) == 1) info.fingerprint = Hex(digest, size);
  ERR_clear_error();
  return info;
}

absl::Status VerifyCertificate(absl::string_view certificate_pem, absl::string_view ca_pem,
                               absl::Time now) {
  absl::StatusOr<CertPtr> cert = CertFromPem(certificate_pem);
  absl::StatusOr<CertPtr> ca = CertFromPem(ca_pem);
  if (!cert.ok()) return absl::PermissionDeniedError("not a certificate");
  if (!ca.ok()) return absl::PermissionDeniedError("the CA certificate cannot be read");
  std::unique_ptr<X509_STORE, StoreFree> store(X509_STORE_new());
  std::unique_ptr<X509_STORE_CTX, StoreCtxFree> context(X509_STORE_CTX_new());
  if (store == nullptr || context == nullptr || X509_STORE_add_cert(store.get(), ca->get()) != 1 ||
      X509_STORE_CTX_init(context.get(), store.get(), cert->get(), nullptr) != 1) {
    return Failed("verifying a certificate");
  }
  X509_STORE_CTX_set_time(context.get(), 0, absl::ToTimeT(now));
  if (X509_verify_cert(context.get()) != 1) {
    int error = X509_STORE_CTX_get_error(context.get());
    ERR_clear_error();
    return absl::PermissionDeniedError(
        absl::StrCat("certificate refused: ", X509_verify_cert_error_string(error)));
  }
  return absl::OkStatus();
}

bool KeyMatchesCertificate(absl::string_view key_pem, absl::string_view certificate_pem) {
  absl::StatusOr<KeyPtr> key = KeyFromPem(key_pem);
  absl::StatusOr<CertPtr> cert = CertFromPem(certificate_pem);
  if (!key.ok() || !cert.ok()) return false;
  bool matches = X509_check_private_key(cert->get(), key->get()) == 1;
  ERR_clear_error();
  return matches;
}

absl::StatusOr<std::string> NodeNameOfCertificate(const CertificateInfo& certificate) {
  std::string name;
  for (const std::string& uri : certificate.uris) {
    if (!absl::StartsWith(uri, kNodeUriScheme)) continue;
    if (!name.empty()) {
      return absl::UnauthenticatedError("the certificate names more than one node");
    }
    name = uri.substr(sizeof kNodeUriScheme - 1);
  }
  if (name.empty()) {
    return absl::UnauthenticatedError(absl::StrCat(
        "the certificate is no node certificate (it has no ", kNodeUriScheme,
        "NAME name); join the node with 'drover-agent --join TOKEN'"));
  }
  if (!CheckNodeName(name).ok() || certificate.common_name != name) {
    return absl::UnauthenticatedError(
        "the node certificate's name is not a valid node name or differs from its common name");
  }
  return name;
}

}  // namespace drover::pki
