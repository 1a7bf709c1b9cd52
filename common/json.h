// JSON for Drover's own documents and for documents others hand us: the OCI config the agent
// writes, what `runc state` / `runc list` print, image indexes, manifests and configs (from
// users' images), the agent's cache records, and the metric lines a job writes. Values are
// nlohmann-json's (`Json`, objects kept in a sorted map, so lookups and inserts stay
// logarithmic however many members a hostile document has). Untrusted text is read through
// `ParseJson` or `ReadJsonEvents` only, and values through the accessors below, none of
// which throws: no nlohmann exception leaves this file. Pure functions; any thread.
#ifndef DROVER_COMMON_JSON_H_
#define DROVER_COMMON_JSON_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace drover {

using Json = nlohmann::json;

// What `ParseJson` accepts at most.
struct JsonLimits {
  // Bytes of text; the value tree takes several times as much memory.
  size_t max_bytes = 16 << 20;
  // Arrays and objects nested inside one another (the document's outermost one is 1).
  int max_depth = 256;
};

// Parses one JSON document (RFC 8259; whitespace around it allowed). INVALID_ARGUMENT, with a
// message that names the problem and where it is but never quotes the text, for: a syntax
// error, a string that is not valid UTF-8 (raw bytes or lone surrogate escapes), a number
// beyond a double's range (`1e999`), text over `limits.max_bytes`, nesting deeper than
// `limits.max_depth`. NaN and infinity are not JSON and are refused too. Of a member named
// twice, the last value counts. Integers beyond int64 (and uint64) become doubles.
absl::StatusOr<Json> ParseJson(absl::string_view text, const JsonLimits& limits = {});

// Reads `text` as events into `reader` (nlohmann's SAX interface), for a reader that keeps
// only part of a document and so need not build the whole tree (the metric lines). The same
// limits and refusals as ParseJson; also INVALID_ARGUMENT when `reader` returns false from an
// event. Exceptions `reader` throws are caught here too.
absl::Status ReadJsonEvents(absl::string_view text, const JsonLimits& limits,
                            nlohmann::json_sax<Json>* reader);

// Serializes `value` with `indent` spaces per level, one line when `indent` is 0. Non-finite
// numbers are written `null`; bytes of strings that are not valid UTF-8 become U+FFFD. Never
// throws.
std::string DumpJson(const Json& value, int indent = 0);

// Accessors for values read from untrusted documents: each gives the zero value when the
// value has another type, and none throws.
//
// The member `key` of an object, or nullptr (not an object, or no such member).
const Json* JsonFind(const Json& object, absl::string_view key);
Json* JsonFind(Json& object, absl::string_view key);
// The string, or "".
const std::string& JsonString(const Json& value);
// The boolean, or false.
bool JsonBool(const Json& value);
// The number as an int64: doubles truncated toward zero and saturated at int64's limits (NaN
// gives 0), integers above int64's range saturated; 0 for anything else.
int64_t JsonInt(const Json& value);
// The number as a double, or 0.
double JsonDouble(const Json& value);
// The elements of an array, or an empty array.
const Json::array_t& JsonItems(const Json& value);
// The members of an object, or an empty object.
const Json::object_t& JsonMembers(const Json& value);

}  // namespace drover

#endif  // DROVER_COMMON_JSON_H_
