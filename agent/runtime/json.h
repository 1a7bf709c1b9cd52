// A small JSON value with a writer and a strict parser: enough for the OCI config the agent
// writes and for what `runc state` / `runc list` print. No JSON library is among Drover's
// dependencies, and this needs none. Values are plain data: any thread, no sharing.
#ifndef DROVER_AGENT_RUNTIME_JSON_H_
#define DROVER_AGENT_RUNTIME_JSON_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace drover::agent {

class Json {
 public:
  enum class Type { kNull, kBool, kInt, kDouble, kString, kArray, kObject };

  Json() = default;                                                  // null
  Json(bool value) : type_(Type::kBool), bool_(value) {}             // NOLINT: implicit on purpose
  Json(int value) : type_(Type::kInt), int_(value) {}                // NOLINT
  Json(int64_t value) : type_(Type::kInt), int_(value) {}            // NOLINT
  Json(uint32_t value) : type_(Type::kInt), int_(value) {}           // NOLINT
  Json(double value) : type_(Type::kDouble), double_(value) {}       // NOLINT
  Json(const char* value) : type_(Type::kString), string_(value) {}  // NOLINT
  Json(std::string value) : type_(Type::kString), string_(std::move(value)) {}  // NOLINT
  Json(absl::string_view value) : type_(Type::kString), string_(value) {}       // NOLINT

  static Json Array(std::vector<Json> items = {});
  static Json Object();
  // An array of strings.
  static Json Strings(const std::vector<std::string>& items);

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::kNull; }
  bool is_object() const { return type_ == Type::kObject; }
  bool is_array() const { return type_ == Type::kArray; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_number() const { return type_ == Type::kInt || type_ == Type::kDouble; }

  // Accessors return the zero value when the type differs. AsInt truncates a double,
  // saturating at int64's limits (NaN gives 0).
  bool AsBool() const { return type_ == Type::kBool && bool_; }
  int64_t AsInt() const;
  double AsDouble() const;
  const std::string& AsString() const;
  const std::vector<Json>& items() const { return items_; }
  const std::vector<std::pair<std::string, Json>>& members() const { return members_; }

  // Object: sets `key` (replacing an earlier value, keeping its position); returns the
  // stored value. Turns a null into an object.
  Json& Set(absl::string_view key, Json value);
  // Object: the value of `key`, or nullptr.
  const Json* Find(absl::string_view key) const;
  Json* Find(absl::string_view key);
  // Array: appends. Turns a null into an array.
  Json& Push(Json value);

  // Serializes with `indent` spaces per level (0: one line). Strings are escaped per RFC 8259
  // (control characters as \u00XX); bytes >= 0x80 are written as they are (UTF-8 in, UTF-8
  // out).
  std::string Dump(int indent = 0) const;

  // Parses one JSON document (trailing whitespace allowed). INVALID_ARGUMENT with the byte
  // offset of the problem otherwise. Nesting deeper than 256 levels is refused.
  static absl::StatusOr<Json> Parse(absl::string_view text);

 private:
  void DumpTo(std::string* out, int indent, int level) const;

  Type type_ = Type::kNull;
  bool bool_ = false;
  int64_t int_ = 0;
  double double_ = 0;
  std::string string_;
  std::vector<Json> items_;
  std::vector<std::pair<std::string, Json>> members_;
};

// Appends `text` as a quoted, escaped JSON string to `out`.
void AppendJsonString(absl::string_view text, std::string* out);

}  // namespace drover::agent

#endif  // DROVER_AGENT_RUNTIME_JSON_H_
