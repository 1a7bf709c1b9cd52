#include "agent/runtime/json.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace drover::agent {
namespace {

const std::string& EmptyString() {
  static const std::string* empty = new std::string;
  return *empty;
}

void AppendUtf8(uint32_t code, std::string* out) {
  if (code < 0x80) {
    out->push_back(static_cast<char>(code));
  } else if (code < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (code >> 6)));
    out->push_back(static_cast<char>(0x80 | (code & 0x3F)));
  } else if (code < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (code >> 12)));
    out->push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (code & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (code >> 18)));
    out->push_back(static_cast<char>(0x80 | ((code >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (code & 0x3F)));
  }
}

class Parser {
 public:
  explicit Parser(absl::string_view text) : text_(text) {}

  absl::StatusOr<Json> ParseDocument() {
    Json value;
    if (!ParseValue(&value, 0)) return Error();
    SkipSpace();
    if (pos_ != text_.size()) {
      problem_ = "unexpected text after the value";
      return Error();
    }
    return value;
  }

 private:
  absl::Status Error() const {
    return absl::InvalidArgumentError(absl::StrCat("json: ", problem_, " at byte ", pos_));
  }

  void SkipSpace() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }

  bool Literal(absl::string_view word) {
    if (text_.substr(pos_, word.size()) != word) {
      problem_ = "unknown literal";
      return false;
    }
    pos_ += word.size();
    return true;
  }

  bool ParseValue(Json* out, int depth) {
    if (depth > 256) {
      problem_ = "nesting too deep";
      return false;
    }
    SkipSpace();
    if (pos_ >= text_.size()) {
      problem_ = "unexpected end";
      return false;
    }
    char c = text_[pos_];
    switch (c) {
      case 'n':
        *out = Json();
        return Literal("null");
      case 't':
        *out = Json(true);
        return Literal("true");
      case 'f':
        *out = Json(false);
        return Literal("false");
      case '"': {
        std::string s;
        if (!ParseString(&s)) return false;
        *out = Json(std::move(s));
        return true;
      }
      case '[':
        return ParseArray(out, depth);
      case '{':
        return ParseObject(out, depth);
      default:
        if (c == '-' || (c >= '0' && c <= '9')) return ParseNumber(out);
        problem_ = "unexpected character";
        return false;
    }
  }

  bool ParseNumber(Json* out) {
    size_t start = pos_;
    if (text_[pos_] == '-') ++pos_;
    auto digits = [&] {
      size_t from = pos_;
      while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') ++pos_;
      return pos_ > from;
    };
    if (!digits()) {
      problem_ = "bad number";
      return false;
    }
    bool integral = true;
    if (pos_ < text_.size() && text_[pos_] == '.') {
      integral = false;
      ++pos_;
      if (!digits()) {
        problem_ = "bad number";
        return false;
      }
    }
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      integral = false;
      ++pos_;
      if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
      if (!digits()) {
        problem_ = "bad number";
        return false;
      }
    }
    std::string number(text_.substr(start, pos_ - start));
    if (integral) {
      errno = 0;
      char* end = nullptr;
      long long value = std::strtoll(number.c_str(), &end, 10);
      if (errno == 0) {
        *out = Json(static_cast<int64_t>(value));
        return true;
      }
    }
    *out = Json(std::strtod(number.c_str(), nullptr));
    return true;
  }

  bool ParseHex4(uint32_t* code) {
    if (pos_ + 4 > text_.size()) {
      problem_ = "short \\u escape";
      return false;
    }
    uint32_t value = 0;
    for (int i = 0; i < 4; ++i) {
      char h = text_[pos_++];
      value <<= 4;
      if (h >= '0' && h <= '9') {
        value |= static_cast<uint32_t>(h - '0');
      } else if (h >= 'a' && h <= 'f') {
        value |= static_cast<uint32_t>(h - 'a' + 10);
      } else if (h >= 'A' && h <= 'F') {
        value |= static_cast<uint32_t>(h - 'A' + 10);
      } else {
        problem_ = "bad \\u escape";
        return false;
      }
    }
    *code = value;
    return true;
  }

  bool ParseString(std::string* out) {
    ++pos_;  // opening quote
    while (true) {
      if (pos_ >= text_.size()) {
        problem_ = "unterminated string";
        return false;
      }
      char c = text_[pos_++];
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) {
        problem_ = "control character in string";
        return false;
      }
      if (c != '\\') {
        out->push_back(c);
        continue;
      }
      if (pos_ >= text_.size()) {
        problem_ = "unterminated string";
        return false;
      }
      char e = text_[pos_++];
      switch (e) {
        case '"':
          out->push_back('"');
          break;
        case '\\':
          out->push_back('\\');
          break;
        case '/':
          out->push_back('/');
          break;
        case 'b':
          out->push_back('\b');
          break;
        case 'f':
          out->push_back('\f');
          break;
        case 'n':
          out->push_back('\n');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 't':
          out->push_back('\t');
          break;
        case 'u': {
          uint32_t code = 0;
          if (!ParseHex4(&code)) return false;
          if (code >= 0xD800 && code <= 0xDBFF) {
            uint32_t low = 0;
            if (text_.substr(pos_, 2) != "\\u") {
              problem_ = "lone surrogate";
              return false;
            }
            pos_ += 2;
            if (!ParseHex4(&low) || low < 0xDC00 || low > 0xDFFF) {
              problem_ = "bad surrogate pair";
              return false;
            }
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
          } else if (code >= 0xDC00 && code <= 0xDFFF) {
            problem_ = "lone surrogate";
            return false;
          }
          AppendUtf8(code, out);
          break;
        }
        default:
          problem_ = "bad escape";
          return false;
      }
    }
  }

  bool ParseArray(Json* out, int depth) {
    ++pos_;
    *out = Json::Array();
    SkipSpace();
    if (pos_ < text_.size() && text_[pos_] == ']') {
      ++pos_;
      return true;
    }
    while (true) {
      Json item;
      if (!ParseValue(&item, depth + 1)) return false;
      out->Push(std::move(item));
      SkipSpace();
      if (pos_ >= text_.size()) {
        problem_ = "unterminated array";
        return false;
      }
      char c = text_[pos_++];
      if (c == ']') return true;
      if (c != ',') {
        problem_ = "expected ',' or ']'";
        return false;
      }
    }
  }

  bool ParseObject(Json* out, int depth) {
    ++pos_;
    *out = Json::Object();
    SkipSpace();
    if (pos_ < text_.size() && text_[pos_] == '}') {
      ++pos_;
      return true;
    }
    while (true) {
      SkipSpace();
      if (pos_ >= text_.size() || text_[pos_] != '"') {
        problem_ = "expected a member name";
        return false;
      }
      std::string key;
      if (!ParseString(&key)) return false;
      SkipSpace();
      if (pos_ >= text_.size() || text_[pos_] != ':') {
        problem_ = "expected ':'";
        return false;
      }
      ++pos_;
      Json value;
      if (!ParseValue(&value, depth + 1)) return false;
      out->Set(key, std::move(value));
      SkipSpace();
      if (pos_ >= text_.size()) {
        problem_ = "unterminated object";
        return false;
      }
      char c = text_[pos_++];
      if (c == '}') return true;
      if (c != ',') {
        problem_ = "expected ',' or '}'";
        return false;
      }
    }
  }

  absl::string_view text_;
  size_t pos_ = 0;
  std::string problem_;
};

void Newline(std::string* out, int indent, int level) {
  if (indent <= 0) return;
  out->push_back('\n');
  out->append(static_cast<size_t>(indent * level), ' ');
}

}  // namespace

Json Json::Array(std::vector<Json> items) {
  Json json;
  json.type_ = Type::kArray;
  json.items_ = std::move(items);
  return json;
}

Json Json::Object() {
  Json json;
  json.type_ = Type::kObject;
  return json;
}

Json Json::Strings(const std::vector<std::string>& items) {
  Json json = Array();
  for (const std::string& item : items) json.items_.emplace_back(item);
  return json;
}

int64_t Json::AsInt() const {
  if (type_ == Type::kInt) return int_;
  if (type_ == Type::kDouble) {
    // Converting a double outside int64's range (or NaN) is undefined behaviour: saturate.
    if (std::isnan(double_)) return 0;
    if (double_ >= 9223372036854775807.0) return std::numeric_limits<int64_t>::max();
    if (double_ <= -9223372036854775808.0) return std::numeric_limits<int64_t>::min();
    return static_cast<int64_t>(double_);
  }
  return 0;
}

double Json::AsDouble() const {
  if (type_ == Type::kDouble) return double_;
  if (type_ == Type::kInt) return static_cast<double>(int_);
  return 0;
}

const std::string& Json::AsString() const {
  return type_ == Type::kString ? string_ : EmptyString();
}

Json& Json::Set(absl::string_view key, Json value) {
  if (type_ == Type::kNull) type_ = Type::kObject;
  for (auto& member : members_) {
    if (member.first == key) {
      member.second = std::move(value);
      return member.second;
    }
  }
  members_.emplace_back(std::string(key), std::move(value));
  return members_.back().second;
}

const Json* Json::Find(absl::string_view key) const {
  for (const auto& member : members_) {
    if (member.first == key) return &member.second;
  }
  return nullptr;
}

Json* Json::Find(absl::string_view key) {
  for (auto& member : members_) {
    if (member.first == key) return &member.second;
  }
  return nullptr;
}

Json& Json::Push(Json value) {
  if (type_ == Type::kNull) type_ = Type::kArray;
  items_.push_back(std::move(value));
  return items_.back();
}

void AppendJsonString(absl::string_view text, std::string* out) {
  out->push_back('"');
  for (char c : text) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\f':
        out->append("\\f");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
          char buffer[8];
          std::snprintf(buffer, sizeof buffer, "\\u%04x", static_cast<unsigned char>(c));
          out->append(buffer);
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

std::string Json::Dump(int indent) const {
  std::string out;
  DumpTo(&out, indent, 0);
  return out;
}

void Json::DumpTo(std::string* out, int indent, int level) const {
  switch (type_) {
    case Type::kNull:
      out->append("null");
      return;
    case Type::kBool:
      out->append(bool_ ? "true" : "false");
      return;
    case Type::kInt:
      absl::StrAppend(out, int_);
      return;
    case Type::kDouble: {
      if (!std::isfinite(double_)) {
        out->append("null");  // JSON has no NaN or infinity
        return;
      }
      if (double_ == 0 && std::signbit(double_)) {
        out->append("-0.0");  // "-0" would read back as the integer 0
        return;
      }
      char buffer[32];
      std::snprintf(buffer, sizeof buffer, "%.17g", double_);
      out->append(buffer);
      return;
    }
    case Type::kString:
      AppendJsonString(string_, out);
      return;
    case Type::kArray: {
      if (items_.empty()) {
        out->append("[]");
        return;
      }
      out->push_back('[');
      for (size_t i = 0; i < items_.size(); ++i) {
        if (i > 0) out->push_back(',');
        Newline(out, indent, level + 1);
        items_[i].DumpTo(out, indent, level + 1);
      }
      Newline(out, indent, level);
      out->push_back(']');
      return;
    }
    case Type::kObject: {
      if (members_.empty()) {
        out->append("{}");
        return;
      }
      out->push_back('{');
      for (size_t i = 0; i < members_.size(); ++i) {
        if (i > 0) out->push_back(',');
        Newline(out, indent, level + 1);
        AppendJsonString(members_[i].first, out);
        out->append(indent > 0 ? ": " : ":");
        members_[i].second.DumpTo(out, indent, level + 1);
      }
      Newline(out, indent, level);
      out->push_back('}');
      return;
    }
  }
}

absl::StatusOr<Json> Json::Parse(absl::string_view text) { return Parser(text).ParseDocument(); }

}  // namespace drover::agent
