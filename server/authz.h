// Who may call what: droverd's whole authorization policy, as data and pure functions (no
// gRPC, no store), so that unit tests can check every rule. `auth.h` finds out who calls;
// the services ask here whether the caller may, then check job ownership with CanReadJob /
// CanChangeJob and redact every job they answer with RedactJob.
//
// Roles (docs/security.md): a viewer reads every job and the cluster's lists; a user also
// submits, and reads, follows, downloads from and cancels only their own jobs; an admin
// does everything. Calls over the local admin socket are admin. AgentService and the
// joining and renewing of NodeIdentityService are for node agents, not users: their rule
// lets any caller through (the node certificate or join token is checked there). gRPC's
// health service is for anyone; its reflection service for admins, which call_guard.h
// enforces since gRPC's service asks no one. Each rule also says whether the method
// changes anything: the changing ones are audited (call_guard.h).
// Thread-safe: everything here is immutable after first use.
#ifndef DROVER_SERVER_AUTHZ_H_
#define DROVER_SERVER_AUTHZ_H_

#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "drover/v1/job.pb.h"
#include "drover/v1/sweep.pb.h"
#include "drover/v1/user.pb.h"

namespace drover::server {

// The identity droverd gives a call.
struct Caller {
  enum class Kind {
    kAnonymous,    // no token and no client certificate
    kUser,         // a valid user token
    kLocalAdmin,   // droverd's local admin socket (file mode 0600: droverd's own user)
    kNode,         // a valid, unrevoked node certificate and no token (a node agent)
  };
  Kind kind = Kind::kAnonymous;
  // The user's name ("local-socket" for kLocalAdmin, the certificate's name for kNode).
  std::string name;
  v1::User::Role role = v1::User::ROLE_UNSPECIFIED;

  bool is_admin() const {
    return kind == Kind::kLocalAdmin || (kind == Kind::kUser && role == v1::User::ADMIN);
  }
};

// The owner name of jobs submitted over the local admin socket; no user can have it.
inline constexpr absl::string_view kLocalSocketOwner = "local-socket";

// What a method needs.
enum class Need {
  kAnyone,        // every caller, also without credentials (the health service)
  kAgent,         // node agents, not a user call (checked by the service)
  kViewer,        // any user (viewer, user, admin)
  kUser,          // role user or admin
  kAdmin,         // role admin
  kBlobWrite,     // role user or admin, or a node agent (see below)
  kBlobRead,      // any user, or a node agent; the service checks which blob
};

// Whether a method changes droverd's state. Changing calls are audited (server/audit.h),
// refused ones included; reading ones are not.
enum class Effect {
  kReads,
  kChanges,
};

struct MethodRule {
  Need need;
  Effect effect;
};

// Every RPC of droverd by full name ("/drover.v1.JobService/GetJob") to what it needs and
// whether it changes anything. A method missing here is refused (PERMISSION_DENIED) and
// audited, and a test checks that every method of every service has a rule.
const std::map<std::string, MethodRule, std::less<>>& MethodRules();

// Whether a call of `method` is recorded in the audit: the changing methods, and any
// method without a rule.
bool IsAudited(absl::string_view method);

// Whether `caller` may call `method` at all. UNAUTHENTICATED (with how to get a token)
// when a user is needed and the call carries none; PERMISSION_DENIED naming the role
// needed otherwise. A node (its certificate) may use BlobService; see docs/security.md.
absl::Status Authorize(const Caller& caller, absl::string_view method);

// Whether `caller` may read `job` (get, list, watch, logs, metrics, outputs): admins and
// viewers any job, users their own. PERMISSION_DENIED naming the owner's rule otherwise.
absl::Status CanReadJob(const Caller& caller, const v1::Job& job);
// Whether `caller` may cancel `job`: admins, and the owner when their role is user.
absl::Status CanChangeJob(const Caller& caller, const v1::Job& job);

// The same rules for a sweep (SweepService) by its owner: read by admins, viewers and its
// owner; canceled by admins and its owner when their role is user.
absl::Status CanReadSweep(const Caller& caller, const v1::Sweep& sweep);
absl::Status CanChangeSweep(const Caller& caller, const v1::Sweep& sweep);
// The sweep's trial template as RedactJob shows a job's spec.
void RedactSweep(const Caller& caller, v1::Sweep* sweep);

// The job as `caller` may see it: values of secret variables are "***" for everyone, and
// every environment value is "***" for callers other than the owner and admins.
void RedactJob(const Caller& caller, v1::Job* job);

// Whether `name` can be a user's name: 1-63 characters of [a-z0-9_.-], starting with a
// letter or digit, not "local-socket". INVALID_ARGUMENT naming `field` otherwise.
absl::Status CheckUserName(absl::string_view field, absl::string_view name);

// "viewer", "user", "admin".
std::string RoleName(v1::User::Role role);

}  // namespace drover::server

#endif  // DROVER_SERVER_AUTHZ_H_
