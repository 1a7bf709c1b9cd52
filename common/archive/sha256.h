// SHA-256 content digests, written the way the Drover API names blobs: "sha256:" followed by
// 64 lowercase hex digits. `Sha256` hashes a stream piece by piece (OpenSSL EVP underneath);
// the free functions hash a byte string or a whole file.
//
// A `Sha256` object belongs to one thread at a time. The free functions are thread-safe.
#ifndef DROVER_COMMON_ARCHIVE_SHA256_H_
#define DROVER_COMMON_ARCHIVE_SHA256_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

// OpenSSL's context type, declared here so that users of this header need no OpenSSL headers.
typedef struct evp_md_ctx_st EVP_MD_CTX;

namespace drover::archive {

// The prefix of every digest Drover writes.
inline constexpr absl::string_view kSha256Prefix = "sha256:";

// Streaming SHA-256: `Update` any number of times, then `Finish` once.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(const void* data, size_t size);
  void Update(absl::string_view bytes) { Update(bytes.data(), bytes.size()); }

  // The digest of everything passed to `Update`, as "sha256:<64 lowercase hex>". Call once;
  // the object is spent afterwards (a second call returns the digest of nothing).
  std::string Finish();

 private:
  EVP_MD_CTX* ctx_;
};

// "sha256:<64 lowercase hex>" of `bytes`.
std::string Sha256Digest(absl::string_view bytes);

// The digest of the contents of the file at `path` (followed if it is a symbolic link).
// Errors: NOT_FOUND, PERMISSION_DENIED or INTERNAL from the file system, each naming `path`.
absl::StatusOr<std::string> Sha256File(const std::string& path);

// Whether `digest` is "sha256:" followed by exactly 64 lowercase hex digits.
bool IsValidDigest(absl::string_view digest);

}  // namespace drover::archive

#endif  // DROVER_COMMON_ARCHIVE_SHA256_H_
