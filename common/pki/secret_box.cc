#include "common/pki/secret_box.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/safe_open.h"
#include "common/status_macros.h"

namespace drover {
namespace {

constexpr absl::string_view kPrefix = "drover-sealed:v1:";
constexpr size_t kKeyBytes = 32;
constexpr size_t kNonceBytes = 12;
constexpr size_t kTagBytes = 16;

std::string KeyId(absl::string_view key) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(key.data()), key.size(), digest);
  return absl::BytesToHexString(
             absl::string_view(reinterpret_cast<const char*>(digest), sizeof digest))
      .substr(0, 8);
}

struct CipherContext {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  ~CipherContext() { EVP_CIPHER_CTX_free(ctx); }
};

const unsigned char* Bytes(absl::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

}  // namespace

absl::StatusOr<SecretBox> SecretBox::FromKey(absl::string_view key) {
  if (key.size() != kKeyBytes) {
    return absl::InvalidArgumentError(absl::StrCat("a secrets key is ", kKeyBytes, " bytes"));
  }
  return SecretBox(std::string(key), KeyId(key));
}

absl::StatusOr<SecretBox> SecretBox::LoadOrCreate(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) {
      return absl::UnavailableError(absl::StrCat("--secrets-key: cannot stat ", path, ": ",
                                                 strerror(errno)));
    }
    unsigned char key[kKeyBytes];
    if (RAND_bytes(key, sizeof key) != 1) {
      return absl::InternalError("cannot make a secrets key: no randomness from OpenSSL");
    }
    std::string raw(reinterpret_cast<const char*>(key), sizeof key);
    DROVER_RETURN_IF_ERROR(ReplaceFile(path, absl::BytesToHexString(raw) + "\n", 0600));
    return FromKey(raw);
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("--secrets-key: ", path, " is not a regular file"));
  }
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
    return absl::FailedPreconditionError(
        absl::StrCat("--secrets-key: ", path, " may be read or written by others than its owner (mode ",
                     mode, "); chmod 600 ", path));
  }
  DROVER_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(path, 4096));
  absl::string_view hex = absl::StripAsciiWhitespace(text);
  std::string raw = absl::HexStringToBytes(hex);
  if (hex.size() != 2 * kKeyBytes || absl::BytesToHexString(raw) != absl::AsciiStrToLower(hex)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--secrets-key: ", path, " does not hold a key (64 hex digits on one line); restore "
        "the file droverd made, or move it away to have droverd make a new one (values "
        "sealed with the old key then cannot be read)"));
  }
  return FromKey(raw);
}

bool SecretBox::IsSealed(absl::string_view value) { return absl::StartsWith(value, kPrefix); }

std::string SecretBox::Seal(absl::string_view plaintext, absl::string_view context) const {
  unsigned char nonce[kNonceBytes];
  RAND_bytes(nonce, sizeof nonce);
  std::string out(kNonceBytes + plaintext.size() + kTagBytes, '\0');
  memcpy(out.data(), nonce, kNonceBytes);
  CipherContext c;
  int n = 0;
  unsigned char* cipher = reinterpret_cast<unsigned char*>(out.data()) + kNonceBytes;
  EVP_EncryptInit_ex(c.ctx, EVP_aes_256_gcm(), nullptr, Bytes(key_), nonce);
  EVP_EncryptUpdate(c.ctx, nullptr, &n, Bytes(context), static_cast<int>(context.size()));
  EVP_EncryptUpdate(c.ctx, cipher, &n, Bytes(plaintext), static_cast<int>(plaintext.size()));
  EVP_EncryptFinal_ex(c.ctx, cipher + n, &n);
  EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_GCM_GET_TAG, kTagBytes,
                      reinterpret_cast<unsigned char*>(out.data()) + kNonceBytes +
                          plaintext.size());
  return absl::StrCat(kPrefix, key_id_, ":", absl::Base64Escape(out));
}

absl::StatusOr<std::string> SecretBox::Open(absl::string_view sealed,
                                            absl::string_view context) const {
  if (!absl::ConsumePrefix(&sealed, kPrefix)) {
    return absl::DataLossError("not a sealed value");
  }
  std::pair<absl::string_view, absl::string_view> parts = absl::StrSplit(sealed, ':');
  if (parts.first != key_id_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "sealed with secrets key ", parts.first, ", but droverd has key ", key_id_,
        "; restore the key file (--secrets-key) it was sealed with"));
  }
  std::string raw;
  if (!absl::Base64Unescape(parts.second, &raw) || raw.size() < kNonceBytes + kTagBytes) {
    return absl::DataLossError("a sealed value is malformed");
  }
  const size_t length = raw.size() - kNonceBytes - kTagBytes;
  std::string plain(length, '\0');
  CipherContext c;
  int n = 0;
  const unsigned char* nonce = Bytes(raw);
  EVP_DecryptInit_ex(c.ctx, EVP_aes_256_gcm(), nullptr, Bytes(key_), nonce);
  EVP_DecryptUpdate(c.ctx, nullptr, &n, Bytes(context), static_cast<int>(context.size()));
  unsigned char* out = reinterpret_cast<unsigned char*>(plain.data());
  EVP_DecryptUpdate(c.ctx, out, &n, nonce + kNonceBytes, static_cast<int>(length));
  std::string tag = raw.substr(kNonceBytes + length);
  EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_GCM_SET_TAG, kTagBytes, tag.data());
  if (EVP_DecryptFinal_ex(c.ctx, out + n, &n) != 1) {
    return absl::DataLossError("a sealed value was changed or belongs elsewhere");
  }
  return plain;
}

}  // namespace drover
