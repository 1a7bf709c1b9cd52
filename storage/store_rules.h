// What every Store implementation shares besides its SQL (sqlite_store*.cc,
// postgres_store*.cc): the sealing of secret values at rest, and the checks a write makes
// before it writes, so that both engines seal the same bytes and refuse with the same
// messages. Pure functions; any thread.
#ifndef DROVER_STORAGE_STORE_RULES_H_
#define DROVER_STORAGE_STORE_RULES_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/pki/secret_box.h"
#include "drover/v1/datastore.pb.h"
#include "drover/v1/job.pb.h"
#include "storage/store.h"

namespace drover::storage::rules {

// The job's secret environment values sealed, for storing; `spec` itself when `secrets` is
// null or nothing is secret.
v1::JobSpec SealedSpec(const SecretBox* secrets, v1::JobSpec spec);
// Opens the sealed values of a stored spec in place: those of secret_env names only, each
// once. FAILED_PRECONDITION when a value is sealed and `secrets` is null; the error of
// SecretBox::Open (naming the job and the variable) when one does not open.
absl::Status OpenSpec(const SecretBox* secrets, absl::string_view job_id, v1::JobSpec& spec);
// Whether two specs are the same but for their tags (an idempotent retry's test).
bool SameSpecButTags(v1::JobSpec a, v1::JobSpec b);
// The error of CreateJob when idempotency key `key` is held by `existing` and `job` is not
// its retry (another owner, another spec); OK when it is.
absl::Status CheckIdempotentRetry(const v1::Job& existing, const v1::Job& job);

// Every rclone option of `datastore` sealed (none when `secrets` is null).
v1::Datastore SealedDatastore(const SecretBox* secrets, v1::Datastore datastore);
// Opens the sealed options of a stored datastore in place; errors as for OpenSpec.
absl::Status OpenDatastore(const SecretBox* secrets, v1::Datastore& datastore);
// Whether `datastore` holds an option stored in clear.
bool HasUnsealedOption(const v1::Datastore& datastore);
// Seals the options of `datastore` stored in clear (those sealed already are kept).
void SealClearOptions(const SecretBox& secrets, v1::Datastore& datastore);

// UseJoinToken's checks of a stored `token` for node `node` at `now`: FAILED_PRECONDITION
// (revoked, used, expired, bound to another name), OK when it may be used.
absl::Status CheckJoinTokenUsable(const JoinToken& token, absl::string_view node, absl::Time now);
// RevokeJoinTokens' check of its prefix: INVALID_ARGUMENT unless 8 or more hex digits.
absl::Status CheckJoinTokenPrefix(absl::string_view prefix);
// RevokeJoinTokens' answer when no unused token starts with `prefix`.
absl::Status NoJoinTokenWithPrefix(absl::string_view prefix);

// `text` with LIKE's wildcards and the escape character escaped by '\'.
std::string EscapeLike(absl::string_view text);

}  // namespace drover::storage::rules

#endif  // DROVER_STORAGE_STORE_RULES_H_
