// Fuzz target: common/archive/tar_reader.h, which reads snapshots and outputs that users
// and jobs upload (ustar, pax, GNU and v7 headers). Invariants: an entry's data is exactly
// its stated size; names and link targets carry no NUL; and
// the digest of a fully read archive is the digest of its bytes.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/archive/archive_paths.h"
#include "common/archive/sha256.h"
#include "common/archive/tar_reader.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace drover;
  absl::string_view bytes = fuzz::AsText(data, size);
  const std::string path = fuzz::ScratchDir() + "/input.tar";
  fuzz::WriteFileOrDie(path, bytes);

  absl::StatusOr<std::unique_ptr<archive::TarReader>> reader = archive::TarReader::Open(path);
  FUZZ_CHECK(reader.ok(), reader.status().ToString());
  uint64_t last_offset = 0;
  for (int index = 0;; ++index) {
    absl::StatusOr<std::optional<archive::TarEntry>> entry = (*reader)->Next();
    if (!entry.ok()) return 0;
    if (!entry->has_value()) break;
    const archive::TarEntry& e = **entry;
    std::string name = archive::PrintableName(e.path);
    FUZZ_CHECK(e.path.find('\0') == std::string::npos, name);
    FUZZ_CHECK(e.linkname.find('\0') == std::string::npos, name);
    FUZZ_CHECK(e.header_offset % 512 == 0 && e.header_offset < size, name);
    FUZZ_CHECK(index == 0 || e.header_offset > last_offset, name);
    FUZZ_CHECK(e.mode <= 07777, name);
    FUZZ_CHECK(e.size <= size, absl::StrCat(name, " states ", e.size, " bytes"));
    last_offset = e.header_offset;
    // Read the data of every other entry; the reader skips what is left unread.
    if (index % 2 == 0) {
      uint64_t seen = 0;
      absl::Status read = (*reader)->ReadData([&](absl::string_view piece) {
        seen += piece.size();
        return absl::OkStatus();
      });
      if (!read.ok()) return 0;
      FUZZ_CHECK(seen == e.size, absl::StrCat(name, ": ", seen, " bytes, stated ", e.size));
    }
  }
  absl::StatusOr<std::string> digest = (*reader)->DrainAndDigest();
  FUZZ_CHECK(digest.ok(), digest.status().ToString());
  FUZZ_CHECK(*digest == archive::Sha256Digest(bytes), *digest);
  return 0;
}
