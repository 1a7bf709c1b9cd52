// Fuzz target: agent/runtime/json.h, the JSON reader the agent uses for runc's output and
// for image manifests and configs (which come from users' images). Invariants: what parses
// is written back (compact and indented) as text that parses to the same value, and the
// accessors are defined for every value.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "agent/runtime/json.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using drover::agent::Json;

// Calls every accessor on every value, as callers do on whatever they find.
void Touch(const Json& value) {
  (void)value.AsBool();
  (void)value.AsInt();
  (void)value.AsDouble();
  (void)value.AsString();
  for (const Json& item : value.items()) Touch(item);
  for (const auto& [key, member] : value.members()) {
    FUZZ_CHECK(value.Find(key) != nullptr, key);
    Touch(member);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::StatusOr<Json> parsed = Json::Parse(drover::fuzz::AsText(data, size));
  if (!parsed.ok()) return 0;
  Touch(*parsed);
  std::string compact = parsed->Dump();
  absl::StatusOr<Json> again = Json::Parse(compact);
  FUZZ_CHECK(again.ok(), std::string(again.status().message()) + " in " + compact);
  FUZZ_CHECK(again->Dump() == compact, compact + " became " + again->Dump());
  absl::StatusOr<Json> indented = Json::Parse(parsed->Dump(2));
  FUZZ_CHECK(indented.ok(), parsed->Dump(2));
  FUZZ_CHECK(indented->Dump() == compact, compact + " became " + indented->Dump());
  return 0;
}
