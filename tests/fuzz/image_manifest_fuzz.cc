// Fuzz target: the OCI layout files the agent reads from a user's image (index.json, the
// image manifest, the image config) in agent/images/image_cache.h. Invariants: every digest
// returned is a well-formed "sha256:<64 hex>" (it becomes a path under blobs/), and the
// index written for umoci is one the same reader accepts again.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/images/image_cache.h"
#include "common/archive/sha256.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace drover;
  absl::string_view text = fuzz::AsText(data, size);

  absl::StatusOr<agent::ManifestChoice> choice = agent::ChooseManifest(text);
  if (choice.ok()) {
    FUZZ_CHECK(archive::IsValidDigest(choice->manifest_digest), choice->manifest_digest);
    absl::StatusOr<agent::ManifestChoice> again = agent::ChooseManifest(choice->index_for_umoci);
    FUZZ_CHECK(again.ok(), choice->index_for_umoci);
    FUZZ_CHECK(again->manifest_digest == choice->manifest_digest, choice->index_for_umoci);
  }

  absl::StatusOr<std::string> config = agent::ManifestConfigDigest(text);
  if (config.ok()) FUZZ_CHECK(archive::IsValidDigest(*config), *config);

  absl::StatusOr<std::vector<std::string>> env = agent::ImageConfigEnv(text);
  (void)env;
  return 0;
}
