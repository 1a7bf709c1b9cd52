#include "server/authz.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace drover::server {
namespace {

constexpr absl::string_view kMasked = "***";

constexpr absl::string_view kNoToken =
    "this call needs a user token; pass it with --token, DROVER_TOKEN or drover login "
    "(an admin makes one with drover user create NAME --role user)";

bool IsUserOrAdmin(const Caller& caller) {
  return caller.is_admin() ||
         (caller.kind == Caller::Kind::kUser && caller.role == v1::User::USER);
}

bool IsAnyUser(const Caller& caller) {
  return caller.kind == Caller::Kind::kLocalAdmin || caller.kind == Caller::Kind::kUser;
}

absl::Status Denied(const Caller& caller, absl::string_view method, absl::string_view needed) {
  return absl::PermissionDeniedError(absl::StrCat(
      method.substr(method.rfind('/') + 1), " needs the role ", needed, "; user '", caller.name,
      "' has the role ", RoleName(caller.role), " (an admin changes it)"));
}

}  // namespace

const std::map<std::string, MethodRule, std::less<>>& MethodRules() {
  static const auto* rules = new std::map<std::string, MethodRule, std::less<>>{
      {"/drover.v1.JobService/SubmitJob", {Need::kUser, Effect::kChanges}},
      {"/drover.v1.JobService/GetJob", {Need::kViewer, Effect::kReads}},
      {"/drover.v1.JobService/ListJobs", {Need::kViewer, Effect::kReads}},
      {"/drover.v1.JobService/CancelJob", {Need::kUser, Effect::kChanges}},
      {"/drover.v1.JobService/UpdateJobTags", {Need::kUser, Effect::kChanges}},
      {"/drover.v1.JobService/WatchJob", {Need::kViewer, Effect::kReads}},
      {"/drover.v1.JobService/StreamLogs", {Need::kViewer, Effect::kReads}},
      {"/drover.v1.JobService/GetMetrics", {Need::kViewer, Effect::kReads}},
      {"/drover.v1.JobService/WatchMetrics", {Need::kViewer, Effect::kReads}},
      {"/drover.v1.SweepService/SubmitSweep", {Need::kUser, Effect::kChanges}},
      {"/drover.v1.SweepService/GetSweep", {Need::kViewer, Effect::kReads}},
      {"/drover.v1.SweepService/ListSweeps", {Need::kViewer, Effect::kReads}},
      {"/drover.v1.SweepService/CancelSweep", {Need::kUser, Effect::kChanges}},
      // Users pick targets, images and datastores for their jobs, so every role lists them
      // (datastore credentials are always masked).
      {"/drover.v1.AdminService/ListNodes", {Need::kViewer, Effect::kReads}},
      {"/drover.v1.AdminService/CordonNode", {Need::kAdmin, Effect::kChanges}},
      {"/drover.v1.AdminService/UncordonNode", {Need::kAdmin, Effect::kChanges}},
      {"/drover.v1.AdminService/DrainNode", {Need::kAdmin, Effect::kChanges}},
      {"/drover.v1.AdminService/DeclareNodeLost", {Need::kAdmin, Effect::kChanges}},
      {"/drover.v1.AdminService/PutComputeTarget", {Need::kAdmin, Effect::kChanges}},
      {"/drover.v1.AdminService/ListComputeTargets", {Need::kViewer, Effect::kReads}},
      {"/drover.v1.AdminService/DeleteComputeTarget", {Need::kAdmin, Effect::kChanges}},
      {"/drover.v1.AdminService/PutImage", {Need::kAdmin, Effect::kChanges}},
      {"/drover.v1.AdminService/ListImages", {Need::kViewer, Effect::kReads}},
      {"/drover.v1.AdminService/DeleteImage", {Need::kAdmin, Effect::kChanges}},
      {"/drover.v1.AdminService/PutDatastore", {Need::kAdmin, Effect::kChanges}},
      {"/drover.v1.AdminService/ListDatastores", {Need::kViewer, Effect::kReads}},
      {"/drover.v1.AdminService/DeleteDatastore", {Need::kAdmin, Effect::kChanges}},
      {"/drover.v1.AdminService/CreateUser", {Need::kAdmin, Effect::kChanges}},
      {"/drover.v1.AdminService/ListUsers", {Need::kAdmin, Effect::kReads}},
      {"/drover.v1.AdminService/RevokeUser", {Need::kAdmin, Effect::kChanges}},
      {"/drover.v1.AdminService/IssueUserToken", {Need::kAdmin, Effect::kChanges}},
      {"/drover.v1.AdminService/SetUserBlobQuota", {Need::kAdmin, Effect::kChanges}},
      {"/drover.v1.AdminService/WhoAmI", {Need::kViewer, Effect::kReads}},
      {"/drover.v1.AdminService/ListAuditRecords", {Need::kAdmin, Effect::kReads}},
      {"/drover.v1.AdminService/CollectGarbage", {Need::kAdmin, Effect::kChanges}},
      {"/drover.v1.BlobService/StatBlob", {Need::kBlobWrite, Effect::kReads}},
      {"/drover.v1.BlobService/UploadBlob", {Need::kBlobWrite, Effect::kChanges}},
      {"/drover.v1.BlobService/DownloadBlob", {Need::kBlobRead, Effect::kReads}},
      // The agent's stream carries reports, logs and metrics of attempts, not administrative
      // changes: too many to audit; its refusals are logged (agent_hello_refused, ...).
      {"/drover.v1.AgentService/Connect", {Need::kAgent, Effect::kReads}},
      // Joining is checked by the join token, renewing by the node certificate (both in
      // NodeIdentityService); the tokens and revocations are an admin's.
      {"/drover.v1.NodeIdentityService/CreateJoinToken", {Need::kAdmin, Effect::kChanges}},
      {"/drover.v1.NodeIdentityService/ListJoinTokens", {Need::kAdmin, Effect::kReads}},
      {"/drover.v1.NodeIdentityService/RevokeJoinToken", {Need::kAdmin, Effect::kChanges}},
      {"/drover.v1.NodeIdentityService/RevokeNodeCertificates", {Need::kAdmin, Effect::kChanges}},
      {"/drover.v1.NodeIdentityService/JoinNode", {Need::kAgent, Effect::kChanges}},
      {"/drover.v1.NodeIdentityService/RenewNodeCertificate", {Need::kAgent, Effect::kChanges}},
      // gRPC's standard services: health for load balancers without credentials; server
      // reflection (grpcurl) lists every method and message, so admins only (checked by
      // server/call_guard.h, since gRPC's own service asks no one).
      {"/grpc.health.v1.Health/Check", {Need::kAnyone, Effect::kReads}},
      {"/grpc.health.v1.Health/Watch", {Need::kAnyone, Effect::kReads}},
      {"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
       {Need::kAdmin, Effect::kReads}},
  };
  return *rules;
}

absl::Status Authorize(const Caller& caller, absl::string_view method) {
  auto rule = MethodRules().find(method);
  if (rule == MethodRules().end()) {
    return absl::PermissionDeniedError(
        absl::StrCat(method, " has no authorization rule; droverd refuses it"));
  }
  // Agents fetch snapshots and images and upload outputs with their node certificate.
  const bool agent = caller.kind == Caller::Kind::kNode;
  switch (rule->second.need) {
    case Need::kAnyone:
    case Need::kAgent:
      return absl::OkStatus();
    case Need::kBlobWrite:
      if (agent) return absl::OkStatus();
      [[fallthrough]];
    case Need::kUser:
      if (!IsAnyUser(caller)) return absl::UnauthenticatedError(kNoToken);
      if (!IsUserOrAdmin(caller)) return Denied(caller, method, "user or admin");
      return absl::OkStatus();
    case Need::kBlobRead:
      if (agent) return absl::OkStatus();
      [[fallthrough]];
    case Need::kViewer:
      if (!IsAnyUser(caller)) return absl::UnauthenticatedError(kNoToken);
      return absl::OkStatus();
    case Need::kAdmin:
      if (!IsAnyUser(caller)) return absl::UnauthenticatedError(kNoToken);
      if (!caller.is_admin()) return Denied(caller, method, "admin");
      return absl::OkStatus();
  }
  return absl::PermissionDeniedError("unknown rule");
}

bool IsAudited(absl::string_view method) {
  auto rule = MethodRules().find(method);
  return rule == MethodRules().end() || rule->second.effect == Effect::kChanges;
}

absl::Status CanReadJob(const Caller& caller, const v1::Job& job) {
  if (caller.is_admin()) return absl::OkStatus();
  if (caller.kind == Caller::Kind::kUser &&
      (caller.role == v1::User::VIEWER || job.owner() == caller.name)) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError(absl::StrCat(
      "job '", job.id(), "' belongs to another user; users see only their own jobs (viewers "
      "and admins see every job)"));
}

absl::Status CanChangeJob(const Caller& caller, const v1::Job& job) {
  if (caller.is_admin()) return absl::OkStatus();
  if (caller.kind == Caller::Kind::kUser && caller.role == v1::User::USER &&
      job.owner() == caller.name) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError(absl::StrCat(
      "job '", job.id(), "' belongs to another user; only its owner and admins may change it"));
}

absl::Status CanReadSweep(const Caller& caller, const v1::Sweep& sweep) {
  if (caller.is_admin()) return absl::OkStatus();
  if (caller.kind == Caller::Kind::kUser &&
      (caller.role == v1::User::VIEWER || sweep.owner() == caller.name)) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError(absl::StrCat(
      "sweep '", sweep.id(), "' belongs to another user; users see only their own sweeps "
      "(viewers and admins see every sweep)"));
}

absl::Status CanChangeSweep(const Caller& caller, const v1::Sweep& sweep) {
  if (caller.is_admin()) return absl::OkStatus();
  if (caller.kind == Caller::Kind::kUser && caller.role == v1::User::USER &&
      sweep.owner() == caller.name) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError(absl::StrCat(
      "sweep '", sweep.id(), "' belongs to another user; only its owner and admins may change "
      "it"));
}

void RedactSweep(const Caller& caller, v1::Sweep* sweep) {
  v1::Job as_job;
  as_job.set_owner(sweep->owner());
  as_job.mutable_spec()->mutable_environment()->Swap(
      sweep->mutable_spec()->mutable_trial_template()->mutable_environment());
  RedactJob(caller, &as_job);
  sweep->mutable_spec()->mutable_trial_template()->mutable_environment()->Swap(
      as_job.mutable_spec()->mutable_environment());
}

void RedactJob(const Caller& caller, v1::Job* job) {
  v1::Environment* environment = job->mutable_spec()->mutable_environment();
  const bool sees_values =
      caller.is_admin() || (caller.kind == Caller::Kind::kUser && job->owner() == caller.name);
  for (auto& [name, value] : *environment->mutable_env()) {
    if (!sees_values) value = std::string(kMasked);
  }
  for (const std::string& name : environment->secret_env()) {
    auto found = environment->mutable_env()->find(name);
    if (found != environment->mutable_env()->end()) found->second = std::string(kMasked);
  }
}

absl::Status CheckUserName(absl::string_view field, absl::string_view name) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": '", name.substr(0, 80), name.size() > 80 ? "..." : "", "' ", why,
                     "; use 1-63 characters of a-z, 0-9, '_', '.' and '-', starting with a "
                     "letter or digit"));
  };
  if (name.empty() || name.size() > 63) return bad("has the wrong length");
  if (!absl::ascii_islower(name[0]) && !absl::ascii_isdigit(name[0])) {
    return bad("does not start with a letter or digit");
  }
  for (char c : name) {
    if (!absl::ascii_islower(c) && !absl::ascii_isdigit(c) && c != '_' && c != '.' && c != '-') {
      return bad("has a character that is not allowed");
    }
  }
  if (name == kLocalSocketOwner) return bad("is reserved for the local admin socket");
  return absl::OkStatus();
}

std::string RoleName(v1::User::Role role) {
  switch (role) {
    case v1::User::VIEWER:
      return "viewer";
    case v1::User::USER:
      return "user";
    case v1::User::ADMIN:
      return "admin";
    default:
      return "none";
  }
}

}  // namespace drover::server
