#include "scheduler/job_spec.h"

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/algorithm/container.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/utf8.h"

namespace drover::scheduler {
namespace {

using v1::Argument;
using v1::DataReference;
using v1::Environment;
using v1::JobSpec;
using v1::OutputTarget;
using v1::Resources;

// Limits from job.proto. The comments there are the user-facing statement of each one; keep
// both in step (and docs/job-spec.md).
constexpr size_t kMaxSpecBytes = 1 << 20;
constexpr size_t kMaxNameChars = 128;
constexpr size_t kMaxTags = 64;
constexpr size_t kMaxTagKeyChars = 63;
constexpr size_t kMaxTagValueBytes = 256;
constexpr size_t kMaxPathBytes = 1024;
constexpr size_t kMaxArguments = 1024;
constexpr size_t kMaxArgumentBytes = 32 * 1024;
constexpr size_t kMaxArgumentsTotalBytes = 128 * 1024;
constexpr size_t kMaxPoolNameChars = 63;  // compute targets and datastores
constexpr size_t kMaxImageChars = 512;
constexpr size_t kMaxImageTagChars = 128;
constexpr size_t kMaxPackages = 256;
constexpr size_t kMaxPackageBytes = 512;
constexpr size_t kMaxEnvVars = 256;
constexpr size_t kMaxEnvNameChars = 256;
constexpr size_t kMaxEnvValueBytes = 32 * 1024;
constexpr size_t kMaxEnvTotalBytes = 128 * 1024;
constexpr int32_t kMaxNodes = 1024;
constexpr int32_t kMaxProcessesPerNode = 256;
constexpr double kMaxCpus = 1024;
constexpr int64_t kMaxMemoryMib = int64_t{16} * 1024 * 1024;
constexpr int32_t kMaxGpus = 64;
constexpr int64_t kMaxShmMib = 1024 * 1024;
constexpr int64_t kMaxRunSeconds = int64_t{365} * 24 * 60 * 60;
constexpr int32_t kMinPriority = -1000;
constexpr int32_t kMaxPriority = 1000;
constexpr int32_t kMaxRetries = 100;
constexpr size_t kMaxOutputs = 16;
constexpr size_t kMaxIdempotencyKeyChars = 128;

// Values longer than this are described by their size, not quoted, in messages.
constexpr size_t kMaxQuotedBytes = 64;

constexpr absl::string_view kDefaultName = "default";
constexpr absl::string_view kHostImage = "host";
constexpr absl::string_view kSha256Prefix = "sha256:";
constexpr absl::string_view kReservedEnvPrefix = "DROVER_";

absl::Status Invalid(absl::string_view field, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", problem));
}

// 'value', escaped so that a message stays one printable line; long values are cut.
std::string Quote(absl::string_view value) {
  if (value.size() > kMaxQuotedBytes) {
    return absl::StrCat("'", absl::CHexEscape(value.substr(0, kMaxQuotedBytes)), "...'");
  }
  return absl::StrCat("'", absl::CHexEscape(value), "'");
}

// The path of a map entry as a client writes it: spec.tags['team'].
std::string MapField(absl::string_view map_field, absl::string_view key) {
  return absl::StrCat(map_field, "[", Quote(key), "]");
}

std::string ListField(absl::string_view list_field, int index) {
  return absl::StrCat(list_field, "[", index, "]");
}

std::string OutOfRange(int64_t value, int64_t low, int64_t high) {
  return absl::StrCat(value, " is out of range; use ", low, " to ", high);
}

std::string TooLong(size_t size, size_t max, absl::string_view unit) {
  return absl::StrCat(size, " ", unit, " is too long; use at most ", max, " ", unit);
}

bool IsLowerHex(char c) { return absl::ascii_isdigit(c) || (c >= 'a' && c <= 'f'); }

bool IsLowerHexDigits(absl::string_view s, size_t count) {
  return s.size() == count && absl::c_all_of(s, IsLowerHex);
}

// The first character of `s` for which `allowed` is false, or npos.
template <typename Pred>
size_t FindDisallowed(absl::string_view s, Pred allowed) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (!allowed(s[i])) return i;
  }
  return absl::string_view::npos;
}

// A name of 1..`max_chars` characters drawn from `allowed`, starting with a letter or digit.
// `rule` is the pattern as users read it in the docs, for the fix.
template <typename Pred>
absl::Status CheckName(absl::string_view field, absl::string_view value, size_t max_chars,
                       Pred allowed, absl::string_view rule) {
  const std::string fix = absl::StrCat("use 1-", max_chars, " characters of ", rule,
                                       " starting with a letter or digit");
  if (value.empty()) return Invalid(field, absl::StrCat("is empty; ", fix));
  if (value.size() > max_chars) {
    return Invalid(field,
                   absl::StrCat(TooLong(value.size(), max_chars, "characters"), " of ", rule));
  }
  if (size_t bad = FindDisallowed(value, allowed); bad != absl::string_view::npos) {
    return Invalid(field, absl::StrCat(Quote(value), " has the character ",
                                       Quote(value.substr(bad, 1)), " outside ", rule, "; ", fix));
  }
  if (!absl::ascii_isalnum(value[0])) {
    return Invalid(field,
                   absl::StrCat(Quote(value), " does not start with a letter or digit; ", fix));
  }
  return absl::OkStatus();
}

bool IsNameChar(char c) { return absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-'; }

bool IsTagKeyChar(char c) { return IsNameChar(c) || c == '/'; }

bool IsPoolNameChar(char c) {
  return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '_' || c == '-';
}

absl::Status CheckJobName(absl::string_view field, absl::string_view value) {
  return CheckName(field, value, kMaxNameChars, IsNameChar, "[A-Za-z0-9._-]");
}

absl::Status CheckPoolName(absl::string_view field, absl::string_view value) {
  return CheckName(field, value, kMaxPoolNameChars, IsPoolNameChar, "[a-z0-9_-]");
}

// A relative path that stays inside its root: no leading '/', no '..' component, no NUL.
// `root` names what it is relative to, for the message.
absl::Status CheckRelativePath(absl::string_view field, absl::string_view path,
                               absl::string_view root) {
  if (path.size() > kMaxPathBytes) {
    return Invalid(field, TooLong(path.size(), kMaxPathBytes, "bytes"));
  }
  if (absl::StrContains(path, absl::string_view("\0", 1))) {
    return Invalid(field, absl::StrCat(Quote(path), " contains a NUL byte; remove it"));
  }
  if (!IsValidUtf8(path)) {
    return Invalid(field, absl::StrCat(Quote(path), " is not valid UTF-8; fix the encoding"));
  }
  if (absl::StartsWith(path, "/")) {
    return Invalid(field, absl::StrCat(Quote(path), " is absolute; use a path relative to ", root));
  }
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part == "..") {
      return Invalid(field, absl::StrCat(Quote(path), " has a '..' component; use a path inside ",
                                         root, " without '..'"));
    }
  }
  return absl::OkStatus();
}

// An OCI image reference, optionally behind "docker://": [host[:port]/]path[:tag][@digest].
absl::Status CheckImage(absl::string_view field, absl::string_view image) {
  constexpr absl::string_view kFix =
      "use 'host' or an image reference such as 'registry.example.com/team/train:1.0' or "
      "'name@sha256:<64 hex digits>'";
  if (image.empty()) return Invalid(field, absl::StrCat("is empty; ", kFix));
  if (image.size() > kMaxImageChars) {
    return Invalid(field, TooLong(image.size(), kMaxImageChars, "characters"));
  }
  if (image == kHostImage) return absl::OkStatus();

  absl::string_view ref = image;
  absl::ConsumePrefix(&ref, "docker://");
  if (size_t bad = FindDisallowed(ref,
                                  [](char c) {
                                    return absl::ascii_isalnum(c) || c == '.' || c == '_' ||
                                           c == '-' || c == '/' || c == ':' || c == '@';
                                  });
      bad != absl::string_view::npos) {
    return Invalid(field,
                   absl::StrCat(Quote(image), " has the character ", Quote(ref.substr(bad, 1)),
                                " not allowed in an image reference; ", kFix));
  }
  if (ref.empty()) return Invalid(field, absl::StrCat(Quote(image), " names no image; ", kFix));

  absl::string_view name = ref;
  if (size_t at = ref.find('@'); at != absl::string_view::npos) {
    absl::string_view digest = ref.substr(at + 1);
    name = ref.substr(0, at);
    if (!absl::StartsWith(digest, kSha256Prefix) ||
        !IsLowerHexDigits(digest.substr(kSha256Prefix.size()), 64)) {
      return Invalid(field, absl::StrCat(Quote(image),
                                         " has a malformed digest; write name@sha256: followed "
                                         "by 64 lowercase hex digits"));
    }
  }
  // A ':' after the last '/' starts the tag; one before it belongs to a registry port.
  size_t colon = name.rfind(':');
  size_t slash = name.rfind('/');
  if (colon != absl::string_view::npos && (slash == absl::string_view::npos || colon > slash)) {
    absl::string_view tag = name.substr(colon + 1);
    name = name.substr(0, colon);
    if (tag.empty() || tag.size() > kMaxImageTagChars || tag[0] == '.' || tag[0] == '-' ||
        FindDisallowed(tag, IsNameChar) != absl::string_view::npos) {
      return Invalid(field,
                     absl::StrCat(Quote(image), " has a malformed tag; use 1-", kMaxImageTagChars,
                                  " characters of [A-Za-z0-9._-] after the last ':'"));
    }
  }
  std::vector<absl::string_view> parts = absl::StrSplit(name, '/');
  for (size_t i = 0; i < parts.size(); ++i) {
    absl::string_view part = parts[i];
    const bool is_registry =
        i == 0 && parts.size() > 1 &&
        (absl::StrContains(part, '.') || absl::StrContains(part, ':') || part == "localhost");
    if (part.empty()) {
      return Invalid(field, absl::StrCat(Quote(image), " has an empty name component; ", kFix));
    }
    if (is_registry) {
      // host[:port]; the charset check above already refused anything exotic.
      std::vector<absl::string_view> host_port = absl::StrSplit(part, ':');
      if (host_port.size() > 2 || host_port[0].empty() ||
          (host_port.size() == 2 &&
           (host_port[1].empty() || !absl::c_all_of(host_port[1], absl::ascii_isdigit)))) {
        return Invalid(field, absl::StrCat(Quote(image),
                                           " has a malformed registry; write host or host:port "
                                           "before the first '/'"));
      }
      continue;
    }
    const bool lower = absl::c_all_of(part, [](char c) {
      return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '.' || c == '_' || c == '-';
    });
    if (!lower || !absl::ascii_isalnum(part.front()) || !absl::ascii_isalnum(part.back())) {
      return Invalid(field,
                     absl::StrCat(Quote(image), " has the repository component ", Quote(part),
                                  "; use lowercase letters, digits and . _ - "
                                  "between letters or digits"));
    }
  }
  return absl::OkStatus();
}

// One pip or conda requirement. Entries end up one per line in a requirements file handed
// to the installer, so anything that could start a new line or an option is refused.
absl::Status CheckPackage(absl::string_view field, absl::string_view entry,
                          absl::string_view installer) {
  if (entry.empty()) {
    return Invalid(field, absl::StrCat("is empty; write one requirement such as 'numpy>=1.24'"));
  }
  if (entry.size() > kMaxPackageBytes) {
    return Invalid(field, TooLong(entry.size(), kMaxPackageBytes, "bytes"));
  }
  if (entry[0] == '-') {
    return Invalid(field, absl::StrCat(Quote(entry), " is an option, not a package; ", installer,
                                       " options belong in the cluster config, ask an "
                                       "administrator"));
  }
  for (char c : entry) {
    if (absl::ascii_isspace(c)) {
      return Invalid(field, absl::StrCat(Quote(entry),
                                         " contains whitespace; write one requirement without "
                                         "spaces, such as 'numpy>=1.24'"));
    }
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7F) {
      return Invalid(field, absl::StrCat(Quote(entry),
                                         " contains a character that is not printable ASCII; "
                                         "remove it"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckPackages(absl::string_view field,
                           const google::protobuf::RepeatedPtrField<std::string>& entries,
                           absl::string_view installer) {
  if (static_cast<size_t>(entries.size()) > kMaxPackages) {
    return Invalid(field, absl::StrCat(entries.size(), " packages are too many; use at most ",
                                       kMaxPackages, ", or build them into the image"));
  }
  for (int i = 0; i < entries.size(); ++i) {
    if (absl::Status s = CheckPackage(ListField(field, i), entries[i], installer); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

bool IsEnvNameChar(char c) { return absl::ascii_isalnum(c) || c == '_'; }

absl::Status CheckEnvironment(const Environment& env) {
  if (absl::Status s = CheckImage("spec.environment.image", env.image()); !s.ok()) return s;
  if (absl::Status s = CheckPackages("spec.environment.pip_packages", env.pip_packages(), "pip");
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          CheckPackages("spec.environment.conda_packages", env.conda_packages(), "conda");
      !s.ok()) {
    return s;
  }

  if (static_cast<size_t>(env.env().size()) > kMaxEnvVars) {
    return Invalid(
        "spec.environment.env",
        absl::StrCat(env.env().size(), " variables are too many; use at most ", kMaxEnvVars));
  }
  for (int i = 0; i < env.secret_env_size(); ++i) {
    const std::string& name = env.secret_env(i);
    if (!env.env().contains(name)) {
      return Invalid(absl::StrCat("spec.environment.secret_env[", i, "]"),
                     absl::StrCat("'", name.substr(0, 256),
                                  "' is not a variable of spec.environment.env; give its value "
                                  "there (drover submit --secret-env NAME=VALUE does both)"));
    }
  }
  // Map order is unspecified; sort so that the first problem is the same on every run.
  std::vector<absl::string_view> names;
  names.reserve(env.env().size());
  for (const auto& [name, value] : env.env()) names.push_back(name);
  absl::c_sort(names);
  size_t total = 0;
  for (absl::string_view name : names) {
    const std::string& value = env.env().at(std::string(name));
    const std::string field = MapField("spec.environment.env", name);
    constexpr absl::string_view kNameFix = "use letters, digits and '_', not starting with a digit";
    if (name.empty()) return Invalid(field, absl::StrCat("empty variable name; ", kNameFix));
    if (name.size() > kMaxEnvNameChars) {
      return Invalid(field,
                     absl::StrCat("name ", TooLong(name.size(), kMaxEnvNameChars, "characters")));
    }
    if (absl::ascii_isdigit(name[0]) ||
        FindDisallowed(name, IsEnvNameChar) != absl::string_view::npos) {
      return Invalid(field, absl::StrCat("is not a valid variable name; ", kNameFix));
    }
    if (absl::StartsWith(name, kReservedEnvPrefix)) {
      return Invalid(field, absl::StrCat("names starting with ", kReservedEnvPrefix,
                                         " are reserved for the variables drover sets; rename "
                                         "the variable"));
    }
    if (value.size() > kMaxEnvValueBytes) {
      return Invalid(field,
                     absl::StrCat("value ", TooLong(value.size(), kMaxEnvValueBytes, "bytes")));
    }
    if (absl::StrContains(value, absl::string_view("\0", 1))) {
      return Invalid(field, "value contains a NUL byte; remove it");
    }
    if (!IsValidUtf8(value)) return Invalid(field, "value is not valid UTF-8; fix the encoding");
    total += value.size();
  }
  if (total > kMaxEnvTotalBytes) {
    return Invalid("spec.environment.env",
                   absl::StrCat("values total ", total, " bytes, over the limit; use at most ",
                                kMaxEnvTotalBytes,
                                " bytes (128 KiB) together, or put large settings in a file"));
  }
  return absl::OkStatus();
}

absl::Status CheckDataReference(absl::string_view field, const DataReference& data) {
  if (absl::Status s = CheckPoolName(absl::StrCat(field, ".datastore"), data.datastore());
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          CheckRelativePath(absl::StrCat(field, ".path"), data.path(), "the datastore");
      !s.ok()) {
    return s;
  }
  if (!DataReference::Mode_IsValid(data.mode())) {
    return Invalid(absl::StrCat(field, ".mode"),
                   absl::StrCat(static_cast<int>(data.mode()),
                                " is not a mode; use mount, download or upload"));
  }
  const bool mount =
      data.mode() == DataReference::MOUNT || data.mode() == DataReference::MODE_UNSPECIFIED;
  if (data.read_write() && !mount) {
    return Invalid(absl::StrCat(field, ".read_write"),
                   absl::StrCat("applies to mode mount only, not ",
                                absl::AsciiStrToLower(DataReference::Mode_Name(data.mode())),
                                "; unset read_write or use mode mount"));
  }
  return absl::OkStatus();
}

absl::Status CheckArguments(const google::protobuf::RepeatedPtrField<Argument>& arguments) {
  if (static_cast<size_t>(arguments.size()) > kMaxArguments) {
    return Invalid("spec.arguments",
                   absl::StrCat(arguments.size(), " arguments are too many; use at most ",
                                kMaxArguments, ", or pass them in a file"));
  }
  size_t total = 0;
  for (int i = 0; i < arguments.size(); ++i) {
    const Argument& arg = arguments[i];
    const std::string field = ListField("spec.arguments", i);
    switch (arg.kind_case()) {
      case Argument::kValue: {
        const std::string vfield = absl::StrCat(field, ".value");
        if (arg.value().size() > kMaxArgumentBytes) {
          return Invalid(vfield, TooLong(arg.value().size(), kMaxArgumentBytes, "bytes"));
        }
        if (absl::StrContains(arg.value(), absl::string_view("\0", 1))) {
          return Invalid(vfield, "contains a NUL byte; remove it");
        }
        if (!IsValidUtf8(arg.value())) {
          return Invalid(vfield, "is not valid UTF-8; fix the encoding");
        }
        total += arg.value().size();
        break;
      }
      case Argument::kData:
        if (absl::Status s = CheckDataReference(absl::StrCat(field, ".data"), arg.data());
            !s.ok()) {
          return s;
        }
        total += arg.data().datastore().size() + arg.data().path().size();
        break;
      case Argument::KIND_NOT_SET:
        return Invalid(field, "sets neither value nor data; set one of them");
    }
  }
  if (total > kMaxArgumentsTotalBytes) {
    return Invalid("spec.arguments",
                   absl::StrCat(total, " bytes in total is over the limit; use at most ",
                                kMaxArgumentsTotalBytes,
                                " bytes (128 KiB) together, or pass large inputs in a file"));
  }
  return absl::OkStatus();
}

absl::Status CheckTags(const google::protobuf::Map<std::string, std::string>& tags) {
  if (static_cast<size_t>(tags.size()) > kMaxTags) {
    return Invalid("spec.tags",
                   absl::StrCat(tags.size(), " tags are too many; use at most ", kMaxTags));
  }
  std::vector<absl::string_view> keys;
  keys.reserve(tags.size());
  for (const auto& [key, value] : tags) keys.push_back(key);
  absl::c_sort(keys);
  for (absl::string_view key : keys) {
    const std::string field = MapField("spec.tags", key);
    if (absl::Status s = CheckName(field, key, kMaxTagKeyChars, IsTagKeyChar, "[A-Za-z0-9._/-]");
        !s.ok()) {
      return s;
    }
    const std::string& value = tags.at(std::string(key));
    if (value.size() > kMaxTagValueBytes) {
      return Invalid(field,
                     absl::StrCat("value ", TooLong(value.size(), kMaxTagValueBytes, "bytes")));
    }
    if (!IsValidUtf8(value)) return Invalid(field, "value is not valid UTF-8; fix the encoding");
  }
  return absl::OkStatus();
}

absl::Status CheckResources(const Resources& r, bool use_gpu) {
  if (!std::isfinite(r.cpus()) || r.cpus() <= 0 || r.cpus() > kMaxCpus) {
    return Invalid("spec.resources.cpus",
                   absl::StrCat(r.cpus(), " is out of range; use more than 0 and at most ",
                                kMaxCpus, " (fractions allowed)"));
  }
  if (r.memory_mib() < 1 || r.memory_mib() > kMaxMemoryMib) {
    return Invalid("spec.resources.memory_mib", OutOfRange(r.memory_mib(), 1, kMaxMemoryMib));
  }
  if (r.gpus() < 0 || r.gpus() > kMaxGpus) {
    return Invalid("spec.resources.gpus", OutOfRange(r.gpus(), 0, kMaxGpus));
  }
  if (r.gpus() > 0 && !use_gpu) {
    return Invalid(
        "spec.resources.gpus",
        absl::StrCat(r.gpus(), " gpus need spec.environment.use_gpu; set use_gpu or use 0 gpus"));
  }
  if (r.gpus() == 0 && use_gpu) {
    return Invalid("spec.resources.gpus",
                   absl::StrCat("0 gpus with spec.environment.use_gpu set; use 1 to ", kMaxGpus,
                                " or unset use_gpu"));
  }
  if (r.shm_mib() < 0 || r.shm_mib() > kMaxShmMib) {
    return Invalid("spec.resources.shm_mib", OutOfRange(r.shm_mib(), 0, kMaxShmMib));
  }
  return absl::OkStatus();
}

absl::Status CheckMaxRunDuration(const JobSpec& spec) {
  if (!spec.has_max_run_duration()) return absl::OkStatus();
  constexpr absl::string_view kField = "spec.max_run_duration";
  const int64_t seconds = spec.max_run_duration().seconds();
  const int32_t nanos = spec.max_run_duration().nanos();
  if (nanos < -999'999'999 || nanos > 999'999'999 || (seconds > 0 && nanos < 0) ||
      (seconds < 0 && nanos > 0)) {
    return Invalid(kField, absl::StrCat("nanos ", nanos,
                                        " is malformed; use 0 to 999999999 with the sign of "
                                        "seconds"));
  }
  const std::string shown = absl::FormatDuration(absl::Seconds(seconds) + absl::Nanoseconds(nanos));
  if (seconds < 0 || nanos < 0) {
    return Invalid(kField, absl::StrCat(shown, " is negative; use 0 (no limit) up to ",
                                        kMaxRunSeconds, "s (365 days)"));
  }
  if (seconds > kMaxRunSeconds || (seconds == kMaxRunSeconds && nanos > 0)) {
    return Invalid(kField, absl::StrCat(shown, " is over the limit; use at most ", kMaxRunSeconds,
                                        "s (365 days), or 0 for no limit"));
  }
  return absl::OkStatus();
}

absl::Status CheckOutputs(const google::protobuf::RepeatedPtrField<OutputTarget>& outputs) {
  if (static_cast<size_t>(outputs.size()) > kMaxOutputs) {
    return Invalid(
        "spec.outputs",
        absl::StrCat(outputs.size(), " outputs are too many; use at most ", kMaxOutputs));
  }
  for (int i = 0; i < outputs.size(); ++i) {
    const std::string field = ListField("spec.outputs", i);
    if (absl::Status s = CheckPoolName(absl::StrCat(field, ".datastore"), outputs[i].datastore());
        !s.ok()) {
      return s;
    }
    if (outputs[i].path().empty()) {
      return Invalid(absl::StrCat(field, ".path"),
                     "is empty; name the folder inside the datastore that receives outputs/, "
                     "such as 'runs/mnist'");
    }
    if (absl::Status s =
            CheckRelativePath(absl::StrCat(field, ".path"), outputs[i].path(), "the datastore");
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status CheckIdempotencyKey(absl::string_view key) {
  constexpr absl::string_view kField = "spec.idempotency_key";
  if (key.size() > kMaxIdempotencyKeyChars) {
    return Invalid(kField, TooLong(key.size(), kMaxIdempotencyKeyChars, "characters"));
  }
  for (char c : key) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7F) {
      return Invalid(kField, absl::StrCat(Quote(key),
                                          " has a character that is not printable ASCII; use "
                                          "printable ASCII only"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

void ApplyJobSpecDefaults(v1::JobSpec* spec) {
  if (spec->experiment().empty()) spec->set_experiment(std::string(kDefaultName));
  if (spec->compute_target().empty()) spec->set_compute_target(std::string(kDefaultName));
  Environment* env = spec->mutable_environment();
  if (env->image().empty()) env->set_image(std::string(kHostImage));
  if (spec->node_count() == 0) spec->set_node_count(1);
  if (spec->process_count_per_node() == 0) spec->set_process_count_per_node(1);
  if (spec->distributed_backend() == JobSpec::DISTRIBUTED_BACKEND_UNSPECIFIED) {
    spec->set_distributed_backend(JobSpec::NONE);
  }
  Resources* r = spec->mutable_resources();
  if (r->cpus() == 0) r->set_cpus(1);
  if (r->memory_mib() == 0) r->set_memory_mib(1024);
  if (r->gpus() == 0 && env->use_gpu()) r->set_gpus(1);
  if (r->shm_mib() == 0) r->set_shm_mib(1024);
  for (Argument& arg : *spec->mutable_arguments()) {
    if (arg.has_data() && arg.data().mode() == DataReference::MODE_UNSPECIFIED) {
      arg.mutable_data()->set_mode(DataReference::MOUNT);
    }
  }
}

absl::Status ValidateJobSpec(const v1::JobSpec& spec) {
  // First, so that an oversized spec (unknown fields included) costs no further work.
  if (size_t size = spec.ByteSizeLong(); size > kMaxSpecBytes) {
    return Invalid("spec", absl::StrCat(size, " bytes serialized is over the limit; use at most ",
                                        kMaxSpecBytes,
                                        " bytes (1 MiB), and move large data into the source "
                                        "snapshot or a datastore"));
  }
  if (!spec.name().empty()) {
    if (absl::Status s = CheckJobName("spec.name", spec.name()); !s.ok()) return s;
  }
  if (absl::Status s = CheckJobName("spec.experiment", spec.experiment()); !s.ok()) return s;
  if (absl::Status s = CheckTags(spec.tags()); !s.ok()) return s;

  if (!spec.source_snapshot().empty()) {
    absl::string_view digest = spec.source_snapshot();
    if (!absl::ConsumePrefix(&digest, kSha256Prefix) || !IsLowerHexDigits(digest, 64)) {
      return Invalid("spec.source_snapshot",
                     absl::StrCat(Quote(spec.source_snapshot()),
                                  " is not a snapshot digest; write 'sha256:' followed by 64 "
                                  "lowercase hex digits, as `drover submit` does"));
    }
  }
  if (spec.entry_script().empty()) {
    return Invalid("spec.entry_script",
                   "is empty; name the script to run, relative to the source folder, such as "
                   "'train.py'");
  }
  if (absl::Status s =
          CheckRelativePath("spec.entry_script", spec.entry_script(), "the source folder");
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckArguments(spec.arguments()); !s.ok()) return s;

  if (absl::Status s = CheckPoolName("spec.compute_target", spec.compute_target()); !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckEnvironment(spec.environment()); !s.ok()) return s;

  if (spec.node_count() < 1 || spec.node_count() > kMaxNodes) {
    return Invalid("spec.node_count", OutOfRange(spec.node_count(), 1, kMaxNodes));
  }
  if (spec.process_count_per_node() < 1 || spec.process_count_per_node() > kMaxProcessesPerNode) {
    return Invalid("spec.process_count_per_node",
                   OutOfRange(spec.process_count_per_node(), 1, kMaxProcessesPerNode));
  }
  if (!JobSpec::DistributedBackend_IsValid(spec.distributed_backend())) {
    return Invalid("spec.distributed_backend",
                   absl::StrCat(static_cast<int>(spec.distributed_backend()),
                                " is not a backend; use none, mpi or pytorch"));
  }
  const bool single_node_backend =
      spec.distributed_backend() == JobSpec::NONE ||
      spec.distributed_backend() == JobSpec::DISTRIBUTED_BACKEND_UNSPECIFIED;
  if (spec.node_count() > 1 && single_node_backend) {
    return Invalid("spec.node_count",
                   absl::StrCat(spec.node_count(),
                                " nodes need spec.distributed_backend mpi or pytorch, not none; "
                                "set the backend or use node_count 1"));
  }
  if (absl::Status s = CheckResources(spec.resources(), spec.environment().use_gpu()); !s.ok()) {
    return s;
  }

  if (absl::Status s = CheckMaxRunDuration(spec); !s.ok()) return s;
  if (spec.priority() < kMinPriority || spec.priority() > kMaxPriority) {
    return Invalid("spec.priority", OutOfRange(spec.priority(), kMinPriority, kMaxPriority));
  }
  if (spec.max_retries() < 0 || spec.max_retries() > kMaxRetries) {
    return Invalid("spec.max_retries", OutOfRange(spec.max_retries(), 0, kMaxRetries));
  }
  if (absl::Status s = CheckOutputs(spec.outputs()); !s.ok()) return s;
  return CheckIdempotencyKey(spec.idempotency_key());
}

absl::Status CheckDatastoreName(absl::string_view field, absl::string_view name) {
  return CheckPoolName(field, name);
}

absl::Status CheckDatastorePath(absl::string_view field, absl::string_view path) {
  return CheckRelativePath(field, path, "the datastore");
}

}  // namespace drover::scheduler
