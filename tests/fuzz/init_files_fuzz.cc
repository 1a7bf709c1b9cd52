// Fuzz target: drover-init's status files (agent/launcher/init_files.h), which sit in folders
// the job can write. Invariants: whatever parses prints back as text that parses to the
// same values, and the printed text is exactly what drover-init writes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "agent/launcher/init_files.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace drover::agent;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  if (std::optional<ExitRecord> r = ParseExitRecord(text); r.has_value()) {
    std::string printed = FormatExitRecord(*r);
    std::optional<ExitRecord> again = ParseExitRecord(printed);
    FUZZ_CHECK(again.has_value(), printed);
    FUZZ_CHECK(again->exit_code == r->exit_code && again->signal == r->signal &&
                   again->end_time_ns == r->end_time_ns,
               printed);
    FUZZ_CHECK(r->exit_code >= -1 && r->exit_code <= 255 && r->signal >= 0 && r->signal <= 64,
               printed);
  }
  if (std::optional<InitResult> r = ParseInitResult(text); r.has_value()) {
    std::string printed = FormatInitResult(*r);
    std::optional<InitResult> again = ParseInitResult(printed);
    FUZZ_CHECK(again.has_value(), printed);
    FUZZ_CHECK(again->first_failed_rank == r->first_failed_rank &&
                   again->exit_code == r->exit_code && again->signal == r->signal,
               printed);
    FUZZ_CHECK(r->first_failed_rank >= -1, printed);
  }
  return 0;
}
