// Fuzz target: common/json.h, the JSON reader for runc's output, image manifests and configs
// (which come from users' images) and the agent's cache records. Invariants: nothing throws
// or crashes; what parses is written back (compact and indented) as text that parses to the
// same value; the accessors are defined for every value; the event reader agrees with the
// tree reader.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "common/json.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using drover::Json;

// Calls every accessor on every value, as callers do on whatever they find.
void Touch(const Json& value) {
  (void)drover::JsonBool(value);
  (void)drover::JsonInt(value);
  (void)drover::JsonDouble(value);
  (void)drover::JsonString(value);
  for (const Json& item : drover::JsonItems(value)) Touch(item);
  for (const auto& [key, member] : drover::JsonMembers(value)) {
    FUZZ_CHECK(drover::JsonFind(value, key) == &member, key);
    Touch(member);
  }
}

// Takes every event and keeps nothing.
class Ignore : public nlohmann::json_sax<Json> {
 public:
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return true; }
  bool key(string_t&) override { return true; }
  bool end_object() override { return true; }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::json::exception&) override {
    return false;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view text = drover::fuzz::AsText(data, size);
  absl::StatusOr<Json> parsed = drover::ParseJson(text);
  Ignore ignore;
  FUZZ_CHECK(drover::ReadJsonEvents(text, {}, &ignore).ok() == parsed.ok(),
             parsed.status().ToString());
  if (!parsed.ok()) {
    FUZZ_CHECK(parsed.status().message().size() < 400, parsed.status().ToString());
    return 0;
  }
  Touch(*parsed);
  std::string compact = drover::DumpJson(*parsed);
  absl::StatusOr<Json> again = drover::ParseJson(compact);
  FUZZ_CHECK(again.ok(), std::string(again.status().message()) + " in " + compact);
  FUZZ_CHECK(drover::DumpJson(*again) == compact, compact + " became " + drover::DumpJson(*again));
  absl::StatusOr<Json> indented = drover::ParseJson(drover::DumpJson(*parsed, 2));
  FUZZ_CHECK(indented.ok(), drover::DumpJson(*parsed, 2));
  FUZZ_CHECK(drover::DumpJson(*indented) == compact,
             compact + " became " + drover::DumpJson(*indented));
  return 0;
}
