#include "server/admin_service.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "google/protobuf/util/time_util.h"

namespace drover::server {
namespace {

// "/drover.v1.AdminService/NAME" for a handler's __func__.
std::string Method(absl::string_view handler) {
  return absl::StrCat("/drover.v1.AdminService/", handler);
}

// Checks the caller of `context` for `method`; when refused, finishes `reactor` with why.
bool Refused(Authenticator& auth, grpc::CallbackServerContext& context, absl::string_view method,
             grpc::ServerUnaryReactor* reactor, Caller* caller = nullptr) {
  absl::StatusOr<Caller> checked = auth.Check(context, method);
  if (!checked.ok()) {
    reactor->Finish(ToGrpcStatus(checked.status()));
    return true;
  }
  if (caller != nullptr) *caller = *std::move(checked);
  return false;
}

// Runs a node change on the core and answers with the node once the core calls back (after
// the change is durable).
template <typename Change>
grpc::ServerUnaryReactor* NodeChange(grpc::CallbackServerContext* context, Authenticator& auth,
                                     absl::string_view method, CoreLoop& loop,
                                     const v1::NodeRequest* request, v1::Node* response,
                                     absl::string_view what, Change change) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (Refused(auth, *context, method, reactor)) return reactor;
  loop.Post([reactor, response, request, what = std::string(what), change]() {
    change(request->name(), request->reason(),
           [reactor, response, request, what](absl::StatusOr<v1::Node> node) {
             if (node.ok()) {
               Log(LogLevel::kInfo, "node_admin",
                   {{"node", request->name()},
                    {"action", what},
                    {"state", v1::Node::State_Name(node->state())}});
               *response = *std::move(node);
             }
             reactor->Finish(ToGrpcStatus(node.status()));
           });
  });
  return reactor;
}

}  // namespace

grpc::ServerUnaryReactor* AdminServiceImpl::ListNodes(grpc::CallbackServerContext* context,
                                                      const v1::ListNodesRequest* request,
                                                      v1::ListNodesResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (Refused(auth_, *context, Method(__func__), reactor)) return reactor;
  loop_.Post([this, reactor, response] {
    for (v1::Node& node : core_.ListNodes()) *response->add_nodes() = std::move(node);
    *response->mutable_node_loss() = core_.NodeLoss();
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::CordonNode(grpc::CallbackServerContext* context,
                                                       const v1::NodeRequest* request,
                                                       v1::Node* response) {
  return NodeChange(context, auth_, Method(__func__), loop_, request, response, "cordon",
                    [this](const std::string& n, const std::string& r, Core::NodeCallback done) {
                      core_.Cordon(n, r, std::move(done));
                    });
}

grpc::ServerUnaryReactor* AdminServiceImpl::UncordonNode(grpc::CallbackServerContext* context,
                                                         const v1::NodeRequest* request,
                                                         v1::Node* response) {
  return NodeChange(context, auth_, Method(__func__), loop_, request, response, "uncordon",
                    [this](const std::string& n, const std::string&, Core::NodeCallback done) {
                      core_.Uncordon(n, std::move(done));
                    });
}

grpc::ServerUnaryReactor* AdminServiceImpl::DrainNode(grpc::CallbackServerContext* context,
                                                      const v1::NodeRequest* request,
                                                      v1::Node* response) {
  return NodeChange(context, auth_, Method(__func__), loop_, request, response, "drain",
                    [this](const std::string& n, const std::string& r, Core::NodeCallback done) {
                      core_.Drain(n, r, std::move(done));
                    });
}

grpc::ServerUnaryReactor* AdminServiceImpl::DeclareNodeLost(grpc::CallbackServerContext* context,
                                                            const v1::NodeRequest* request,
                                                            v1::Node* response) {
  return NodeChange(context, auth_, Method(__func__), loop_, request, response, "declare_lost",
                    [this](const std::string& n, const std::string& r, Core::NodeCallback done) {
                      core_.DeclareNodeLost(n, r, std::move(done));
                    });
}

grpc::ServerUnaryReactor* AdminServiceImpl::PutComputeTarget(
    grpc::CallbackServerContext* context, const v1::PutComputeTargetRequest* request,
    v1::ComputeTarget* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (Refused(auth_, *context, Method(__func__), reactor)) return reactor;
  loop_.Post([this, reactor, request, response] {
    core_.PutTarget(request->target(), [reactor, request, response](absl::Status status) {
      if (status.ok()) {
        *response = request->target();
        Log(LogLevel::kInfo, "target_put", {{"target", request->target().name()}});
      }
      reactor->Finish(ToGrpcStatus(status));
    });
  });
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListComputeTargets(
    grpc::CallbackServerContext* context, const v1::ListComputeTargetsRequest* request,
    v1::ListComputeTargetsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (Refused(auth_, *context, Method(__func__), reactor)) return reactor;
  loop_.Post([this, reactor, response] {
    for (v1::ComputeTarget& target : core_.ListTargets()) *response->add_targets() = std::move(target);
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::DeleteComputeTarget(
    grpc::CallbackServerContext* context, const v1::DeleteComputeTargetRequest* request,
    v1::DeleteComputeTargetResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (Refused(auth_, *context, Method(__func__), reactor)) return reactor;
  loop_.Post([this, reactor, request] {
    core_.DeleteTarget(request->name(), [reactor](absl::Status status) {
      reactor->Finish(ToGrpcStatus(status));
    });
  });
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::PutImage(grpc::CallbackServerContext* context,
                                                     const v1::PutImageRequest* request,
                                                     v1::Image* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (Refused(auth_, *context, Method(__func__), reactor)) return reactor;
  v1::Image image = request->image();
  if (absl::Status valid = scheduler::CheckImageName("image.name", image.name()); !valid.ok()) {
    reactor->Finish(ToGrpcStatus(valid));
    return reactor;
  }
  absl::StatusOr<int64_t> size = blobs_.Stat(image.digest());
  if (!size.ok()) {
    absl::Status error =
        absl::IsNotFound(size.status())
            ? absl::FailedPreconditionError(absl::StrCat(
                  "image.digest: blob ", image.digest(),
                  " is not in droverd's blob store; upload the archive first (drover image "
                  "import uploads and registers in one go)"))
            : absl::Status(size.status().code(),
                           absl::StrCat("image.digest: ", size.status().message()));
    reactor->Finish(ToGrpcStatus(error));
    return reactor;
  }
  image.set_size(*size);
  loop_.Post([this, reactor, response, image = std::move(image)] {
    core_.images().Put(image, [reactor, response](absl::StatusOr<v1::Image> stored) {
      if (stored.ok()) {
        Log(LogLevel::kInfo, "image_put", {{"image", stored->name()}, {"digest", stored->digest()},
                                           {"size", stored->size()}});
        *response = *std::move(stored);
      }
      reactor->Finish(ToGrpcStatus(stored.status()));
    });
  });
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListImages(grpc::CallbackServerContext* context,
                                                       const v1::ListImagesRequest* request,
                                                       v1::ListImagesResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (Refused(auth_, *context, Method(__func__), reactor)) return reactor;
  for (v1::Image& image : core_.images().List()) *response->add_images() = std::move(image);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::DeleteImage(grpc::CallbackServerContext* context,
                                                        const v1::DeleteImageRequest* request,
                                                        v1::DeleteImageResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (Refused(auth_, *context, Method(__func__), reactor)) return reactor;
  if (request->name().empty()) {
    reactor->Finish(ToGrpcStatus(
        absl::InvalidArgumentError("name: required; give the image's name (see drover image list)")));
    return reactor;
  }
  loop_.Post([this, reactor, request] {
    core_.images().Delete(request->name(), [reactor, request](absl::Status status) {
      if (status.ok()) Log(LogLevel::kInfo, "image_deleted", {{"image", request->name()}});
      reactor->Finish(ToGrpcStatus(status));
    });
  });
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::PutDatastore(grpc::CallbackServerContext* context,
                                                         const v1::PutDatastoreRequest* request,
                                                         v1::Datastore* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (Refused(auth_, *context, Method(__func__), reactor)) return reactor;
  if (!request->has_datastore()) {
    reactor->Finish(ToGrpcStatus(absl::InvalidArgumentError(
        "datastore: required; send the datastore to register with the request")));
    return reactor;
  }
  loop_.Post([this, reactor, request, response] {
    core_.datastores().Put(
        request->datastore(), request->replace(),
        [reactor, request, response](absl::StatusOr<v1::Datastore> stored) {
          if (stored.ok()) {
            // No credential goes to the log: only the name, type and where.
            Log(LogLevel::kInfo, "datastore_put",
                {{"datastore", stored->name()},
                 {"type", v1::Datastore::Type_Name(stored->type())},
                 {"path", stored->path()},
                 {"allow_write", stored->allow_write()},
                 {"replace", request->replace()}});
            *response = *std::move(stored);
          }
          reactor->Finish(ToGrpcStatus(stored.status()));
        });
  });
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListDatastores(
    grpc::CallbackServerContext* context, const v1::ListDatastoresRequest* request,
    v1::ListDatastoresResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (Refused(auth_, *context, Method(__func__), reactor)) return reactor;
  for (v1::Datastore& datastore : core_.datastores().List()) {
    *response->add_datastores() = std::move(datastore);
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::DeleteDatastore(
    grpc::CallbackServerContext* context, const v1::DeleteDatastoreRequest* request,
    v1::DeleteDatastoreResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (Refused(auth_, *context, Method(__func__), reactor)) return reactor;
  if (request->name().empty()) {
    reactor->Finish(ToGrpcStatus(absl::InvalidArgumentError(
        "name: required; give the datastore's name (see drover datastore list)")));
    return reactor;
  }
  loop_.Post([this, reactor, request] {
    core_.datastores().Delete(request->name(), [reactor, request](absl::Status status) {
      if (status.ok()) Log(LogLevel::kInfo, "datastore_deleted", {{"datastore", request->name()}});
      reactor->Finish(ToGrpcStatus(status));
    });
  });
  return reactor;
}

}  // namespace drover::server

namespace drover::server {

grpc::ServerUnaryReactor* AdminServiceImpl::CreateUser(grpc::CallbackServerContext* context,
                                                       const v1::CreateUserRequest* request,
                                                       v1::UserToken* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  Caller caller;
  if (Refused(auth_, *context, Method(__func__), reactor, &caller)) return reactor;
  if (absl::Status valid = CheckUserName("name", request->name()); !valid.ok()) {
    reactor->Finish(ToGrpcStatus(valid));
    return reactor;
  }
  if (request->role() == v1::User::ROLE_UNSPECIFIED || !v1::User::Role_IsValid(request->role())) {
    reactor->Finish(ToGrpcStatus(
        absl::InvalidArgumentError("role: required; use admin, user or viewer")));
    return reactor;
  }
  absl::StatusOr<std::string> token = NewUserToken();
  if (!token.ok()) {
    reactor->Finish(ToGrpcStatus(token.status()));
    return reactor;
  }
  storage::UserRecord record;
  record.user.set_name(request->name());
  record.user.set_role(request->role());
  *record.user.mutable_create_time() = google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(
      absl::ToUnixMicros(clock_.Now()));
  record.token_sha256 = HashUserToken(*token);
  *response->mutable_user() = record.user;
  response->set_token(*token);
  store_.CreateUser(std::move(record), [reactor, response, by = caller.name](absl::Status status) {
    if (status.ok()) {
      Log(LogLevel::kInfo, "user_created",
          {{"user", response->user().name()},
           {"role", RoleName(response->user().role())},
           {"by", by}});
    } else {
      response->Clear();
    }
    reactor->Finish(ToGrpcStatus(status));
  });
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListUsers(grpc::CallbackServerContext* context,
                                                      const v1::ListUsersRequest* request,
                                                      v1::ListUsersResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (Refused(auth_, *context, Method(__func__), reactor)) return reactor;
  absl::StatusOr<std::vector<v1::User>> users = store_.LoadUsers();
  if (users.ok()) {
    for (v1::User& user : *users) *response->add_users() = std::move(user);
  }
  reactor->Finish(ToGrpcStatus(users.status()));
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::RevokeUser(grpc::CallbackServerContext* context,
                                                       const v1::RevokeUserRequest* request,
                                                       v1::User* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  Caller caller;
  if (Refused(auth_, *context, Method(__func__), reactor, &caller)) return reactor;
  if (absl::Status valid = CheckUserName("name", request->name()); !valid.ok()) {
    reactor->Finish(ToGrpcStatus(valid));
    return reactor;
  }
  store_.SetUserToken(request->name(), "",
                      [reactor, response, by = caller.name](absl::StatusOr<v1::User> user) {
                        if (user.ok()) {
                          Log(LogLevel::kInfo, "user_revoked", {{"user", user->name()}, {"by", by}});
                          *response = *std::move(user);
                        }
                        reactor->Finish(ToGrpcStatus(user.status()));
                      });
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::SetUserBlobQuota(
    grpc::CallbackServerContext* context, const v1::SetUserBlobQuotaRequest* request,
    v1::User* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  Caller caller;
  if (Refused(auth_, *context, Method(__func__), reactor, &caller)) return reactor;
  if (absl::Status valid = CheckUserName("name", request->name()); !valid.ok()) {
    reactor->Finish(ToGrpcStatus(valid));
    return reactor;
  }
  if (request->blob_quota_bytes() < -1) {
    reactor->Finish(ToGrpcStatus(absl::InvalidArgumentError(absl::StrCat(
        "blob_quota_bytes: ", request->blob_quota_bytes(),
        " is not a quota; give bytes, 0 for droverd's --blob-quota or -1 for none"))));
    return reactor;
  }
  store_.SetUserBlobQuota(
      request->name(), request->blob_quota_bytes(),
      [this, reactor, response, by = caller.name](absl::StatusOr<v1::User> user) {
        if (user.ok()) {
          quota_.SetUserQuota(user->name(), user->blob_quota_bytes());
          Log(LogLevel::kInfo, "user_blob_quota_set",
              {{"user", user->name()}, {"bytes", user->blob_quota_bytes()}, {"by", by}});
          *response = *std::move(user);
        }
        reactor->Finish(ToGrpcStatus(user.status()));
      });
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::IssueUserToken(
    grpc::CallbackServerContext* context, const v1::IssueUserTokenRequest* request,
    v1::UserToken* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  Caller caller;
  if (Refused(auth_, *context, Method(__func__), reactor, &caller)) return reactor;
  if (absl::Status valid = CheckUserName("name", request->name()); !valid.ok()) {
    reactor->Finish(ToGrpcStatus(valid));
    return reactor;
  }
  absl::StatusOr<std::string> token = NewUserToken();
  if (!token.ok()) {
    reactor->Finish(ToGrpcStatus(token.status()));
    return reactor;
  }
  store_.SetUserToken(
      request->name(), HashUserToken(*token),
      [reactor, response, token = *token, by = caller.name](absl::StatusOr<v1::User> user) {
        if (user.ok()) {
          Log(LogLevel::kInfo, "user_token_issued", {{"user", user->name()}, {"by", by}});
          *response->mutable_user() = *std::move(user);
          response->set_token(token);
        }
        reactor->Finish(ToGrpcStatus(user.status()));
      });
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::WhoAmI(grpc::CallbackServerContext* context,
                                                   const v1::WhoAmIRequest* request,
                                                   v1::User* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  Caller caller;
  if (Refused(auth_, *context, Method(__func__), reactor, &caller)) return reactor;
  response->set_name(caller.name);
  response->set_role(caller.role);
  // droverd's local admin socket holds nothing and has no quota (blob_service.cc).
  if (caller.kind != Caller::Kind::kLocalAdmin) {
    absl::StatusOr<int64_t> held = quota_.Held(caller.name);
    if (!held.ok()) {
      reactor->Finish(ToGrpcStatus(held.status()));
      return reactor;
    }
    response->set_blob_held_bytes(*held);
    response->set_blob_quota_effective_bytes(quota_.QuotaOf(caller.name));
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListAuditRecords(
    grpc::CallbackServerContext* context, const v1::ListAuditRecordsRequest* request,
    v1::ListAuditRecordsResponse* response) {
  using google::protobuf::util::TimeUtil;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (Refused(auth_, *context, Method(__func__), reactor)) return reactor;
  storage::AuditQuery query;
  if (request->has_since()) {
    if (request->since().seconds() < TimeUtil::kTimestampMinSeconds ||
        request->since().seconds() > TimeUtil::kTimestampMaxSeconds) {
      reactor->Finish(ToGrpcStatus(absl::InvalidArgumentError(
          "since: not a time between the years 1 and 9999")));
      return reactor;
    }
    query.since = absl::FromUnixMicros(TimeUtil::TimestampToMicroseconds(request->since()));
  }
  if (!request->who().empty()) query.who = request->who();
  query.method = request->method();
  query.limit = request->page_size() <= 0 ? 100 : std::min(request->page_size(), 1000);
  if (!request->page_token().empty()) {
    std::string decoded;
    absl::string_view rest;
    if (!absl::WebSafeBase64Unescape(request->page_token(), &decoded) ||
        !absl::ConsumePrefix(&(rest = decoded), "audit-before:") ||
        !absl::SimpleAtoi(rest, &query.before_id) || query.before_id <= 0) {
      reactor->Finish(ToGrpcStatus(absl::InvalidArgumentError(
          "page_token: not a token this server issued; pass next_page_token from the previous "
          "page unchanged, or leave it empty for the first page")));
      return reactor;
    }
  }
  absl::StatusOr<storage::AuditPage> page = store_.ListAudit(query);
  if (page.ok()) {
    for (const storage::AuditRecord& record : page->records) {
      v1::AuditRecord* out = response->add_records();
      out->set_id(record.id);
      *out->mutable_time() = TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(record.time));
      out->set_who(record.who);
      out->set_who_kind(record.who_kind);
      out->set_peer(record.peer);
      out->set_method(record.method);
      out->set_target(record.target);
      out->set_code(record.code);
      out->set_message(record.message);
    }
    if (page->next_before_id > 0) {
      response->set_next_page_token(
          absl::WebSafeBase64Escape(absl::StrCat("audit-before:", page->next_before_id)));
    }
  }
  reactor->Finish(ToGrpcStatus(page.status()));
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::CollectGarbage(
    grpc::CallbackServerContext* context, const v1::CollectGarbageRequest* request,
    v1::CollectGarbageResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (Refused(auth_, *context, Method(__func__), reactor)) return reactor;
  absl::StatusOr<v1::CollectGarbageResponse> pass = retention_.RunPass(request->dry_run());
  if (pass.ok()) *response = *std::move(pass);
  reactor->Finish(ToGrpcStatus(pass.status()));
  return reactor;
}

}  // namespace drover::server
