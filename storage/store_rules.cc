#include "storage/store_rules.h"

#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/proto_bytes.h"

namespace drover::storage::rules {
namespace {

// What a sealed value is bound to (SecretBox's context): a value moved to another field,
// job or datastore does not open there.
std::string EnvContext(absl::string_view name) { return absl::StrCat("job env ", name); }

std::string OptionContext(absl::string_view datastore, absl::string_view key) {
  return absl::StrCat("datastore ", datastore, " option ", key);
}

}  // namespace

v1::JobSpec SealedSpec(const SecretBox* secrets, v1::JobSpec spec) {
  if (secrets == nullptr || spec.environment().secret_env().empty()) return spec;
  auto& env = *spec.mutable_environment()->mutable_env();
  std::set<std::string> names(spec.environment().secret_env().begin(),
                              spec.environment().secret_env().end());
  for (const std::string& name : names) {
    auto it = env.find(name);
    if (it != env.end()) it->second = secrets->Seal(it->second, EnvContext(name));
  }
  return spec;
}

absl::Status OpenSpec(const SecretBox* secrets, absl::string_view job_id, v1::JobSpec& spec) {
  // mutable_environment() would add an empty environment to a spec without one.
  if (spec.environment().secret_env().empty()) return absl::OkStatus();
  auto& env = *spec.mutable_environment()->mutable_env();
  std::set<std::string> names(spec.environment().secret_env().begin(),
                              spec.environment().secret_env().end());
  for (const std::string& name : names) {
    auto it = env.find(name);
    if (it == env.end() || !SecretBox::IsSealed(it->second)) continue;
    if (secrets == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          "job '", job_id, "': env ", name, " is sealed and droverd has no secrets key"));
    }
    absl::StatusOr<std::string> opened = secrets->Open(it->second, EnvContext(name));
    if (!opened.ok()) {
      return absl::Status(opened.status().code(), absl::StrCat("job '", job_id, "': env ", name,
                                                               ": ", opened.status().message()));
    }
    it->second = *std::move(opened);
  }
  return absl::OkStatus();
}

bool SameSpecButTags(v1::JobSpec a, v1::JobSpec b) {
  a.clear_tags();
  b.clear_tags();
  return SerializeDeterministic(a) == SerializeDeterministic(b);
}

absl::Status CheckIdempotentRetry(const v1::Job& existing, const v1::Job& job) {
  const std::string& key = job.spec().idempotency_key();
  if (existing.owner() != job.owner()) {
    return absl::AlreadyExistsError(absl::StrCat(
        "spec.idempotency_key: '", key,
        "' was already used by another user; use a key of your own"));
  }
  // Tags may have changed since (UpdateJobTags): they are not what runs.
  if (!SameSpecButTags(existing.spec(), job.spec())) {
    return absl::AlreadyExistsError(absl::StrCat(
        "spec.idempotency_key: '", key, "' was already used for job '", existing.id(),
        "' with a different spec; use a new key for a different job"));
  }
  return absl::OkStatus();
}

v1::Datastore SealedDatastore(const SecretBox* secrets, v1::Datastore datastore) {
  if (secrets == nullptr) return datastore;
  for (auto& [key, value] : *datastore.mutable_rclone_options()) {
    value = secrets->Seal(value, OptionContext(datastore.name(), key));
  }
  return datastore;
}

absl::Status OpenDatastore(const SecretBox* secrets, v1::Datastore& datastore) {
  for (auto& [key, value] : *datastore.mutable_rclone_options()) {
    if (!SecretBox::IsSealed(value)) continue;
    if (secrets == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          "datastore '", datastore.name(), "': option ", key,
          " is sealed and droverd has no secrets key"));
    }
    absl::StatusOr<std::string> opened = secrets->Open(value, OptionContext(datastore.name(), key));
    if (!opened.ok()) {
      return absl::Status(opened.status().code(),
                          absl::StrCat("datastore '", datastore.name(), "': option ", key, ": ",
                                       opened.status().message()));
    }
    value = *std::move(opened);
  }
  return absl::OkStatus();
}

bool HasUnsealedOption(const v1::Datastore& datastore) {
  for (const auto& [key, value] : datastore.rclone_options()) {
    if (!SecretBox::IsSealed(value)) return true;
  }
  return false;
}

void SealClearOptions(const SecretBox& secrets, v1::Datastore& datastore) {
  for (auto& [key, value] : *datastore.mutable_rclone_options()) {
    if (!SecretBox::IsSealed(value)) value = secrets.Seal(value, OptionContext(datastore.name(), key));
  }
}

absl::Status CheckJoinTokenUsable(const JoinToken& token, absl::string_view node, absl::Time now) {
  const std::string name = token.hash.substr(0, 12);
  if (token.revoked) {
    return absl::FailedPreconditionError(absl::StrCat("join token ", name, " was revoked"));
  }
  if (token.used_time != absl::UnixEpoch()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "join token ", name, " was already used (by node '", token.used_by,
        "'); a token joins one node once: create another with 'drover node token create'"));
  }
  if (now >= token.expire_time) {
    return absl::FailedPreconditionError(absl::StrCat(
        "join token ", name, " expired at ", absl::FormatTime(token.expire_time),
        "; create another with 'drover node token create'"));
  }
  if (!token.node.empty() && token.node != node) {
    return absl::FailedPreconditionError(absl::StrCat("join token ", name, " is for node '",
                                                      token.node, "', not '", node, "'"));
  }
  return absl::OkStatus();
}

absl::Status CheckJoinTokenPrefix(absl::string_view prefix) {
  if (prefix.size() < 8 || prefix.find_first_not_of("0123456789abcdef") != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", prefix, "' does not name a join token (8 or more hex digits, see 'drover node "
        "token list')"));
  }
  return absl::OkStatus();
}

absl::Status NoJoinTokenWithPrefix(absl::string_view prefix) {
  return absl::NotFoundError(absl::StrCat("no unused join token starts with '", prefix, "'"));
}

std::string EscapeLike(absl::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '%' || c == '_' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

}  // namespace drover::storage::rules
