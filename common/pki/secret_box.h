// SecretBox: seals short secrets that droverd keeps at rest (datastore credentials, job
// environment values marked secret) with AES-256-GCM under a key kept apart from the
// database (`droverd --secrets-key FILE`, by default `<state>/secrets.key`), so that a copy
// of drover.db alone reveals none of them.
//
// A sealed value is text: "drover-sealed:v1:KEYID:BASE64(nonce | ciphertext | tag)", where
// KEYID names the key (the first 8 hex digits of its SHA-256) so that a value sealed under
// another key is refused by name, and the associated data binds the value to what it is
// (for example "datastore NAME option KEY"): a value moved to another field does not open.
// Thread-safe; immutable after construction.
#ifndef DROVER_COMMON_PKI_SECRET_BOX_H_
#define DROVER_COMMON_PKI_SECRET_BOX_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace drover {

class SecretBox {
 public:
  // The key in `path`: 64 hex digits (256 bits) on one line. When there is no file, a new
  // random key is written there (0600, atomically). The file must be a regular file (a link
  // is followed: an administrator names it) that neither group nor others may read or write;
  // FAILED_PRECONDITION saying what to do otherwise, INVALID_ARGUMENT for a malformed key,
  // UNAVAILABLE when it cannot be read or written.
  static absl::StatusOr<SecretBox> LoadOrCreate(const std::string& path);
  // From 32 raw key bytes (tests).
  static absl::StatusOr<SecretBox> FromKey(absl::string_view key);

  // Whether `value` is a sealed value (of any key).
  static bool IsSealed(absl::string_view value);

  // `plaintext` sealed with a fresh random nonce, bound to `context`.
  std::string Seal(absl::string_view plaintext, absl::string_view context) const;
  // The plaintext of `sealed`. FAILED_PRECONDITION when it was sealed under another key
  // (naming both key ids), DATA_LOSS when it is malformed, was changed or belongs to
  // another context.
  absl::StatusOr<std::string> Open(absl::string_view sealed, absl::string_view context) const;

  // The key's id (8 hex digits), for messages.
  const std::string& key_id() const { return key_id_; }

 private:
  SecretBox(std::string key, std::string key_id)
      : key_(std::move(key)), key_id_(std::move(key_id)) {}
  std::string key_;  // 32 bytes
  std::string key_id_;
};

}  // namespace drover

#endif  // DROVER_COMMON_PKI_SECRET_BOX_H_
