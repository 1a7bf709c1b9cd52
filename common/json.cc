#include "common/json.h"

#include <cmath>
#include <exception>
#include <limits>
#include <new>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace drover {
namespace {

// nlohmann's messages quote the token they stopped at ("; last read: '...'", "number
// overflow parsing '...'"), which in a hostile document can be megabytes of anything: keep
// the description, drop the quote.
std::string Describe(const nlohmann::json::exception& e) {
  std::string what = e.what();
  if (!what.empty() && what.front() == '[') {
    size_t close = what.find("] ");
    if (close != std::string::npos) what.erase(0, close + 2);
  }
  for (const char* quote : {"; last read:", " parsing '"}) {
    size_t at = what.find(quote);
    if (at != std::string::npos) what.resize(at);
  }
  if (what.size() > 200) what.resize(200);
  return what;
}

// Forwards events to a reader, refusing nesting past the limit before the reader sees (and
// allocates) it, and keeps nlohmann's error. nlohmann's parser keeps its own state on the
// heap, but its serializer and a value's copy recurse, so an unbounded depth would still
// reach the stack.
class DepthGuard : public nlohmann::json_sax<Json> {
 public:
  DepthGuard(int max_depth, nlohmann::json_sax<Json>* reader)
      : max_depth_(max_depth), reader_(reader) {}

  bool null() override { return reader_->null(); }
  bool boolean(bool value) override { return reader_->boolean(value); }
  bool number_integer(number_integer_t value) override { return reader_->number_integer(value); }
  bool number_unsigned(number_unsigned_t value) override {
    return reader_->number_unsigned(value);
  }
  bool number_float(number_float_t value, const string_t& text) override {
    return reader_->number_float(value, text);  // the lexer already refused what overflows
  }
  bool string(string_t& value) override { return reader_->string(value); }
  bool binary(binary_t& /*value*/) override { return false; }  // not in JSON text
  bool start_object(std::size_t elements) override {
    return Deeper() && reader_->start_object(elements);
  }
  bool key(string_t& value) override { return reader_->key(value); }
  bool end_object() override {
    --depth_;
    return reader_->end_object();
  }
  bool start_array(std::size_t elements) override {
    return Deeper() && reader_->start_array(elements);
  }
  bool end_array() override {
    --depth_;
    return reader_->end_array();
  }
  bool parse_error(std::size_t position, const std::string& /*last_token*/,
                   const nlohmann::json::exception& e) override {
    error_ = absl::StrCat("json: ", Describe(e), " (byte ", position, ")");
    return false;
  }

  // Why the reading stopped early.
  std::string Problem() const {
    if (too_deep_) return absl::StrCat("json: nesting deeper than ", max_depth_, " levels");
    if (!error_.empty()) return error_;
    return "json: the document does not have the expected shape";
  }

 private:
  bool Deeper() {
    if (depth_ >= max_depth_) {
      too_deep_ = true;
      return false;
    }
    ++depth_;
    return true;
  }

  const int max_depth_;
  nlohmann::json_sax<Json>* const reader_;
  int depth_ = 0;
  bool too_deep_ = false;
  std::string error_;
};

// Builds the value tree from the events.
class TreeBuilder : public nlohmann::json_sax<Json> {
 public:
  bool null() override { return Put(nullptr); }
  bool boolean(bool value) override { return Put(value); }
  bool number_integer(number_integer_t value) override { return Put(value); }
  bool number_unsigned(number_unsigned_t value) override { return Put(value); }
  bool number_float(number_float_t value, const string_t& /*text*/) override {
    return Put(value);
  }
  bool string(string_t& value) override { return Put(std::move(value)); }
  bool binary(binary_t& /*value*/) override { return false; }
  bool start_object(std::size_t /*elements*/) override { return Open(Json::object()); }
  bool key(string_t& value) override {
    key_ = std::move(value);
    return true;
  }
  bool end_object() override { return Close(); }
  bool start_array(std::size_t /*elements*/) override { return Open(Json::array()); }
  bool end_array() override { return Close(); }
  bool parse_error(std::size_t /*position*/, const std::string& /*last_token*/,
                   const nlohmann::json::exception& /*e*/) override {
    return false;
  }

  Json& root() { return root_; }

 private:
  // Stores `value` where the document is: the root, the next element of the open array or
  // the member just named (replacing an earlier one of that name).
  Json* Place(Json value) {
    if (open_.empty()) {
      root_ = std::move(value);
      return &root_;
    }
    Json& parent = *open_.back();
    if (parent.is_array()) {
      parent.get_ref<Json::array_t&>().push_back(std::move(value));
      return &parent.get_ref<Json::array_t&>().back();
    }
    Json& slot = parent.get_ref<Json::object_t&>()[key_];
    slot = std::move(value);
    return &slot;
  }
  bool Put(Json value) {
    Place(std::move(value));
    return true;
  }
  bool Open(Json empty) {
    open_.push_back(Place(std::move(empty)));
    return true;
  }
  bool Close() {
    open_.pop_back();
    return true;
  }

  Json root_;
  // The arrays and objects being filled, outermost first. Their addresses stay put: only the
  // innermost one grows.
  std::vector<Json*> open_;
  std::string key_;
};

}  // namespace

absl::Status ReadJsonEvents(absl::string_view text, const JsonLimits& limits,
                           nlohmann::json_sax<Json>* reader) {
  if (text.size() > limits.max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("json: document of ", text.size(),
                                                   " bytes exceeds the cap of ",
                                                   limits.max_bytes, " bytes"));
  }
  DepthGuard guard(limits.max_depth, reader);
  bool complete = false;
  // The one place exceptions are caught: errors in the text come to parse_error, so this is
  // for memory running out on a large document, and for a reader that throws.
  try {
    complete = Json::sax_parse(text.begin(), text.end(), &guard);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        absl::StrCat("json: out of memory reading a document of ", text.size(), " bytes"));
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("json: ", Describe(e)));
  } catch (...) {
    return absl::InvalidArgumentError("json: the document could not be read");
  }
  return complete ? absl::OkStatus() : absl::InvalidArgumentError(guard.Problem());
}

absl::StatusOr<Json> ParseJson(absl::string_view text, const JsonLimits& limits) {
  TreeBuilder builder;
  if (absl::Status status = ReadJsonEvents(text, limits, &builder); !status.ok()) return status;
  return std::move(builder.root());
}

std::string DumpJson(const Json& value, int indent) {
  return value.dump(indent > 0 ? indent : -1, ' ', false, Json::error_handler_t::replace);
}

const Json* JsonFind(const Json& object, absl::string_view key) {
  if (!object.is_object()) return nullptr;
  const Json::object_t& members = object.get_ref<const Json::object_t&>();
  auto it = members.find(std::string_view(key.data(), key.size()));
  return it == members.end() ? nullptr : &it->second;
}

Json* JsonFind(Json& object, absl::string_view key) {
  if (!object.is_object()) return nullptr;
  Json::object_t& members = object.get_ref<Json::object_t&>();
  auto it = members.find(std::string_view(key.data(), key.size()));
  return it == members.end() ? nullptr : &it->second;
}

const std::string& JsonString(const Json& value) {
  static const std::string* const kEmpty = new std::string;
  return value.is_string() ? value.get_ref<const std::string&>() : *kEmpty;
}

bool JsonBool(const Json& value) { return value.is_boolean() && value.get<bool>(); }

int64_t JsonInt(const Json& value) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  switch (value.type()) {
    case Json::value_t::number_integer:
      return value.get<int64_t>();
    case Json::value_t::number_unsigned: {
      uint64_t u = value.get<uint64_t>();
      return u > static_cast<uint64_t>(kMax) ? kMax : static_cast<int64_t>(u);
    }
    case Json::value_t::number_float: {
      // Converting a double outside int64's range (or NaN) is undefined behaviour: saturate.
      double d = value.get<double>();
      if (std::isnan(d)) return 0;
      if (d >= 9223372036854775807.0) return kMax;
      if (d <= -9223372036854775808.0) return kMin;
      return static_cast<int64_t>(d);
    }
    default:
      return 0;
  }
}

double JsonDouble(const Json& value) { return value.is_number() ? value.get<double>() : 0; }

const Json::array_t& JsonItems(const Json& value) {
  static const Json::array_t* const kEmpty = new Json::array_t;
  return value.is_array() ? value.get_ref<const Json::array_t&>() : *kEmpty;
}

const Json::object_t& JsonMembers(const Json& value) {
  static const Json::object_t* const kEmpty = new Json::object_t;
  return value.is_object() ? value.get_ref<const Json::object_t&>() : *kEmpty;
}

}  // namespace drover
