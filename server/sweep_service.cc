#include "server/sweep_service.h"

#include <random>
#include <string>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/archive/sha256.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "google/protobuf/util/time_util.h"
#include "scheduler/admin_checks.h"
#include "scheduler/job_spec.h"
#include "scheduler/sweep_spec.h"
#include "server/authz.h"
#include "server/job_service.h"
#include "server/job_streams.h"

namespace drover::server {
namespace {

using google::protobuf::util::TimeUtil;

constexpr int kDefaultPageSize = 100;
constexpr int kMaxPageSize = 1000;

std::string EncodePageToken(int64_t before_sequence) {
  return absl::WebSafeBase64Escape(absl::StrCat("sweeps-before:", before_sequence));
}

absl::StatusOr<int64_t> DecodePageToken(const std::string& token) {
  std::string decoded;
  int64_t before = 0;
  constexpr absl::string_view kPrefix = "sweeps-before:";
  if (!absl::WebSafeBase64Unescape(token, &decoded) || !absl::StartsWith(decoded, kPrefix) ||
      !absl::SimpleAtoi(decoded.substr(kPrefix.size()), &before) || before <= 0) {
    return absl::InvalidArgumentError(
        "page_token: not a token this server issued; pass next_page_token from the previous "
        "page unchanged, or leave it empty for the first page");
  }
  return before;
}

absl::Status BadSweepId(const std::string& id) {
  return absl::InvalidArgumentError(absl::StrCat(
      "sweep_id: '", absl::CHexEscape(id.substr(0, 64)),
      "' is not a sweep id; write 's-' and 16 hex digits, as drover sweep list shows"));
}

// The sweep `sweep_id` when `caller` may read it, filled (FillSweep).
absl::StatusOr<v1::Sweep> ReadableSweep(storage::Store& store, storage::LogStore& logs,
                                        const Caller& caller, const std::string& sweep_id) {
  if (!IsSweepId(sweep_id)) return BadSweepId(sweep_id);
  absl::StatusOr<v1::Sweep> sweep = store.GetSweep(sweep_id);
  if (!sweep.ok()) return sweep.status();
  if (absl::Status allowed = CanReadSweep(caller, *sweep); !allowed.ok()) return allowed;
  FillSweep(store, logs, *sweep);
  return sweep;
}

}  // namespace

SweepServiceImpl::SweepServiceImpl(storage::Store& store, storage::LogStore& logs,
                                   const storage::BlobStore& blobs, Core& core,
                                   SweepRunner& runner, const Clock& clock, Authenticator& auth)
    : store_(store),
      logs_(logs),
      blobs_(blobs),
      core_(core),
      runner_(runner),
      clock_(clock),
      auth_(auth) {}

grpc::ServerUnaryReactor* SweepServiceImpl::SubmitSweep(grpc::CallbackServerContext* context,
                                                        const v1::SubmitSweepRequest* request,
                                                        v1::SubmitSweepResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<Caller> caller = auth_.Check(*context, "/drover.v1.SweepService/SubmitSweep");
  if (!caller.ok()) {
    reactor->Finish(ToGrpcStatus(caller.status()));
    return reactor;
  }
  if (!accepting_.load()) {
    reactor->Finish(ToGrpcStatus(ShuttingDown()));
    return reactor;
  }
  if (!request->has_spec()) {
    reactor->Finish(ToGrpcStatus(
        absl::InvalidArgumentError("spec: required; send the sweep's spec with the request")));
    return reactor;
  }
  v1::Sweep sweep;
  *sweep.mutable_spec() = request->spec();
  sweep.set_owner(caller->name);
  scheduler::ApplySweepSpecDefaults(sweep.mutable_spec());
  if (absl::Status valid = scheduler::ValidateSweepSpec(sweep.spec()); !valid.ok()) {
    Log(LogLevel::kDebug, "sweep_refused", {{"error", valid.message()}});
    reactor->Finish(ToGrpcStatus(valid));
    return reactor;
  }
  // What SubmitJob checks against the cluster, for the template every trial runs.
  absl::Status usable = CheckSpecAgainstCluster(core_, store_, blobs_, *caller,
                                                sweep.spec().trial_template(),
                                                "sweep.trial_template");
  if (!usable.ok()) {
    reactor->Finish(ToGrpcStatus(usable));
    return reactor;
  }
  // With an idempotency key the id follows from it and the owner, so that a retried submit
  // names the same sweep; without one it is random.
  const std::string& key = sweep.spec().idempotency_key();
  const std::string seed =
      key.empty() ? absl::StrCat(std::random_device()(), "/", std::random_device()(), "/",
                                 absl::ToUnixNanos(clock_.Now()))
                  : absl::StrCat("sweep-key\n", sweep.owner(), "\n", key);
  const std::string digest = archive::Sha256Digest(seed);
  sweep.set_id(FormatSweepId(std::stoull(digest.substr(digest.find(':') + 1, 16), nullptr, 16)));
  const google::protobuf::Timestamp now =
      TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(clock_.Now()));
  *sweep.mutable_create_time() = now;
  sweep.mutable_status()->set_state(v1::SweepStatus::QUEUED);
  sweep.mutable_status()->set_reason("QUEUED");
  *sweep.mutable_status()->mutable_update_time() = now;
  store_.CreateSweep(sweep, [this, reactor, response, caller = *caller](
                                absl::StatusOr<storage::CreateSweepResult> result) {
    if (!result.ok()) {
      if (!absl::IsAlreadyExists(result.status())) {
        Log(LogLevel::kWarning, "sweep_submit_failed", {{"error", result.status().ToString()}});
      }
      reactor->Finish(ToGrpcStatus(result.status()));
      return;
    }
    if (result->created) {
      Log(LogLevel::kInfo, "sweep_submitted",
          {{"sweep", result->sweep.id()},
           {"trials", result->sweep.spec().max_total_trials()},
           {"concurrent", result->sweep.spec().max_concurrent_trials()}});
      runner_.Add(result->sweep);
    }
    // On the store's writer thread: answered as stored (no read of trial jobs here).

    *response->mutable_sweep() = std::move(result->sweep);
    RedactSweep(caller, response->mutable_sweep());
    response->set_created(result->created);
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

grpc::ServerUnaryReactor* SweepServiceImpl::GetSweep(grpc::CallbackServerContext* context,
                                                     const v1::GetSweepRequest* request,
                                                     v1::Sweep* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<Caller> caller = auth_.Check(*context, "/drover.v1.SweepService/GetSweep");
  absl::StatusOr<v1::Sweep> sweep =
      caller.ok() ? ReadableSweep(store_, logs_, *caller, request->sweep_id())
                  : absl::StatusOr<v1::Sweep>(caller.status());
  if (sweep.ok()) {
    *response = *std::move(sweep);
    RedactSweep(*caller, response);
  }
  reactor->Finish(ToGrpcStatus(sweep.status()));
  return reactor;
}

grpc::ServerUnaryReactor* SweepServiceImpl::ListSweeps(grpc::CallbackServerContext* context,
                                                       const v1::ListSweepsRequest* request,
                                                       v1::ListSweepsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<Caller> caller = auth_.Check(*context, "/drover.v1.SweepService/ListSweeps");
  if (!caller.ok()) {
    reactor->Finish(ToGrpcStatus(caller.status()));
    return reactor;
  }
  storage::ListSweepsQuery query;
  absl::Status bad = absl::OkStatus();
  for (int i = 0; i < request->states_size() && bad.ok(); ++i) {
    auto state = static_cast<v1::SweepStatus::State>(request->states(i));
    if (state == v1::SweepStatus::STATE_UNSPECIFIED || !v1::SweepStatus::State_IsValid(state)) {
      bad = absl::InvalidArgumentError(absl::StrCat("states[", i, "]: ", request->states(i),
                                                    " is not a sweep state; use QUEUED, "
                                                    "RUNNING, COMPLETED, CANCELED or FAILED"));
    }
    query.states.push_back(state);
  }
  if (bad.ok() && (request->page_size() < 0 || request->page_size() > kMaxPageSize)) {
    bad = absl::InvalidArgumentError(absl::StrCat("page_size: ", request->page_size(),
                                                  " is out of range; use 1 to ", kMaxPageSize,
                                                  " (0 means ", kDefaultPageSize, ")"));
  }
  query.page_size = request->page_size() == 0 ? kDefaultPageSize : request->page_size();
  if (bad.ok() && !request->page_token().empty()) {
    absl::StatusOr<int64_t> before = DecodePageToken(request->page_token());
    if (before.ok()) {
      query.before_sequence = *before;
    } else {
      bad = before.status();
    }
  }
  // A user sees only their own sweeps, as with jobs.
  const bool sees_all = caller->is_admin() || caller->role == v1::User::VIEWER;
  if (bad.ok()) {
    if (!request->owner().empty()) {
      if (!sees_all && request->owner() != caller->name) {
        bad = absl::PermissionDeniedError(absl::StrCat(
            "owner: '", request->owner(), "' is another user; users list only their own sweeps"));
      }
      query.owner = request->owner();
    } else if (!sees_all) {
      query.owner = caller->name;
    }
  }
  absl::StatusOr<storage::ListSweepsPage> page =
      bad.ok() ? store_.ListSweeps(query) : absl::StatusOr<storage::ListSweepsPage>(bad);
  if (!page.ok()) {
    reactor->Finish(ToGrpcStatus(page.status()));
    return reactor;
  }
  for (v1::Sweep& listed : page->sweeps) {
    // The best result comes from the trials; the page shows them counted, not listed.
    if (absl::StatusOr<v1::Sweep> full = store_.GetSweep(listed.id()); full.ok()) {
      FillSweep(store_, logs_, *full);
      full->clear_trials();
      listed = *std::move(full);
    }
    RedactSweep(*caller, &listed);
    *response->add_sweeps() = std::move(listed);
  }
  if (page->next_before_sequence > 0) {
    response->set_next_page_token(EncodePageToken(page->next_before_sequence));
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* SweepServiceImpl::CancelSweep(grpc::CallbackServerContext* context,
                                                        const v1::CancelSweepRequest* request,
                                                        v1::Sweep* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<Caller> caller = auth_.Check(*context, "/drover.v1.SweepService/CancelSweep");
  absl::Status allowed = caller.status();
  if (allowed.ok() && !accepting_.load()) allowed = ShuttingDown();
  if (allowed.ok() && !IsSweepId(request->sweep_id())) allowed = BadSweepId(request->sweep_id());
  absl::StatusOr<v1::Sweep> stored =
      allowed.ok() ? store_.GetSweep(request->sweep_id()) : absl::StatusOr<v1::Sweep>(allowed);
  if (stored.ok()) {
    if (absl::Status can = CanChangeSweep(*caller, *stored); !can.ok()) stored = can;
  }
  if (!stored.ok()) {
    reactor->Finish(ToGrpcStatus(stored.status()));
    return reactor;
  }
  runner_.Cancel(request->sweep_id(),
                 [reactor, response, caller = *caller](absl::StatusOr<v1::Sweep> sweep) {
                   if (sweep.ok()) {
                     *response = *std::move(sweep);
                     RedactSweep(caller, response);
                   }
                   reactor->Finish(ToGrpcStatus(sweep.status()));
                 });
  return reactor;
}

}  // namespace drover::server
