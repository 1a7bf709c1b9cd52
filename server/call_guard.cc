#include "server/call_guard.h"

#include <array>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/log.h"
#include "google/protobuf/descriptor.h"

namespace drover::server {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

// The fields that name what a call acts on, in the order they are looked for. Never add a
// field that can hold a secret (a token, a CSR, credentials).
constexpr std::array<absl::string_view, 5> kTargetFields = {"job_id", "name", "node_name", "id",
                                                            "digest"};

constexpr size_t kMaxTarget = 200;
constexpr size_t kMaxMessage = 300;
constexpr size_t kMaxName = 100;

// The first non-empty naming field directly in `message`.
std::string NamingField(const Message& message) {
  const google::protobuf::Descriptor* descriptor = message.GetDescriptor();
  const google::protobuf::Reflection* reflection = message.GetReflection();
  for (absl::string_view name : kTargetFields) {
    const FieldDescriptor* field = descriptor->FindFieldByName(std::string(name));
    if (field == nullptr || field->is_repeated() ||
        field->cpp_type() != FieldDescriptor::CPPTYPE_STRING) {
      continue;
    }
    std::string value = reflection->GetString(message, field);
    if (!value.empty()) return value;
  }
  return "";
}

// The first naming field in `message` or in one of its singular message fields.
std::string FindTarget(const Message& message) {
  if (std::string direct = NamingField(message); !direct.empty()) return direct;
  const google::protobuf::Descriptor* descriptor = message.GetDescriptor();
  const google::protobuf::Reflection* reflection = message.GetReflection();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const FieldDescriptor* field = descriptor->field(i);
    if (field->is_repeated() || field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE ||
        !reflection->HasField(message, field)) {
      continue;
    }
    if (std::string nested = NamingField(reflection->GetMessage(message, field)); !nested.empty()) {
      return nested;
    }
  }
  return "";
}

std::string PeerOf(const grpc::ServerContextBase& context) {
  std::string peer = context.peer();
  if (absl::StartsWith(peer, "unix:")) return "unix";
  return AuditText(peer, kMaxName);
}

absl::string_view KindName(Caller::Kind kind) {
  switch (kind) {
    case Caller::Kind::kUser:
      return "user";
    case Caller::Kind::kLocalAdmin:
      return "local";
    case Caller::Kind::kNode:
      return "node";
    case Caller::Kind::kAnonymous:
      break;
  }
  return "anonymous";
}

// Our own services' messages are protobuf messages; gRPC's (health) may be byte buffers.
bool IsDroverMethod(absl::string_view method) {
  return absl::StartsWith(method, "/drover.v1.") && MethodRules().contains(method);
}

class AuditInterceptor final : public grpc::experimental::Interceptor {
 public:
  AuditInterceptor(grpc::experimental::ServerRpcInfo* info, storage::Store& store,
                   Authenticator& auth, const Clock& clock)
      : info_(info), store_(store), auth_(auth), clock_(clock) {
    record_.method = info->method() == nullptr ? "" : info->method();
    record_.time = clock_.Now();
  }

  // A call gRPC ended without an answer from droverd (cancelled on the way) is recorded
  // as such.
  ~AuditInterceptor() override {
    absl::MutexLock lock(&mu_);
    if (!recorded_) {
      Record(grpc::Status(grpc::StatusCode::CANCELLED, "the call ended before droverd answered"));
    }
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using grpc::experimental::InterceptionHookPoints;
    {
      // A stream's reads and its answer may be intercepted on two threads at once.
      absl::MutexLock lock(&mu_);
      See(methods);
    }
    methods->Proceed();
  }

 private:
  void See(grpc::experimental::InterceptorBatchMethods* methods)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    using grpc::experimental::InterceptionHookPoints;
    IdentifyOnce();
    const bool ours = IsDroverMethod(record_.method);
    if (ours && methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE) &&
        request_target_.empty()) {
      if (void* request = methods->GetRecvMessage(); request != nullptr) {
        request_target_ = FindTarget(*static_cast<const Message*>(request));
      }
    }
    if (ours && methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_MESSAGE)) {
      if (const void* response = methods->GetSendMessage(); response != nullptr) {
        response_target_ = FindTarget(*static_cast<const Message*>(response));
      }
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS) &&
        !recorded_) {
      Record(methods->GetSendStatus());
    }
  }

  void IdentifyOnce() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (identified_) return;
    identified_ = true;
    grpc::ServerContextBase* context = info_->server_context();
    if (context == nullptr) return;
    record_.peer = PeerOf(*context);
    absl::StatusOr<Caller> caller = auth_.Identify(*context);
    if (caller.ok()) {
      record_.who = AuditText(caller->name, kMaxName);
      record_.who_kind = std::string(KindName(caller->kind));
    } else {
      record_.who_kind = std::string(KindName(Caller::Kind::kAnonymous));
    }
  }

  void Record(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    recorded_ = true;
    IdentifyOnce();
    record_.target =
        AuditText(response_target_.empty() ? request_target_ : response_target_, kMaxTarget);
    record_.code = static_cast<int>(status.error_code());
    record_.message = AuditText(status.error_message(), kMaxMessage);
    if (record_.who_kind.empty()) record_.who_kind = "anonymous";
    store_.AppendAudit(record_, [method = record_.method](absl::Status written) {
      if (!written.ok()) {
        Log(LogLevel::kWarning, "audit_write_failed",
            {{"method", method}, {"error", written.ToString()}});
      }
    });
  }

  grpc::experimental::ServerRpcInfo* const info_;
  storage::Store& store_;
  Authenticator& auth_;
  const Clock& clock_;
  absl::Mutex mu_;
  storage::AuditRecord record_ ABSL_GUARDED_BY(mu_);
  std::string request_target_ ABSL_GUARDED_BY(mu_);
  std::string response_target_ ABSL_GUARDED_BY(mu_);
  bool identified_ ABSL_GUARDED_BY(mu_) = false;
  bool recorded_ ABSL_GUARDED_BY(mu_) = false;
};

class AuditFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  AuditFactory(storage::Store& store, Authenticator& auth, const Clock& clock)
      : store_(store), auth_(auth), clock_(clock) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    if (info->method() == nullptr || !IsAudited(info->method())) return nullptr;
    return new AuditInterceptor(info, store_, auth_, clock_);
  }

 private:
  storage::Store& store_;
  Authenticator& auth_;
  const Clock& clock_;
};

constexpr absl::string_view kReflectionMethod =
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";

class ReflectionGuardInterceptor final : public grpc::experimental::Interceptor {
 public:
  ReflectionGuardInterceptor(grpc::experimental::ServerRpcInfo* info, Authenticator& auth)
      : info_(info), auth_(auth) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    {
      absl::MutexLock lock(&mu_);
      See(methods);
    }
    methods->Proceed();
  }

 private:
  void See(grpc::experimental::InterceptorBatchMethods* methods)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    using grpc::experimental::InterceptionHookPoints;
    if (!checked_) {
      checked_ = true;
      grpc::ServerContextBase* context = info_->server_context();
      absl::StatusOr<Caller> caller =
          context == nullptr ? absl::UnauthenticatedError("no call context")
                             : auth_.Identify(*context);
      refusal_ = caller.ok() ? Authorize(*caller, kReflectionMethod) : caller.status();
      if (!refusal_.ok()) {
        Log(LogLevel::kInfo, "reflection_refused",
            {{"peer", context == nullptr ? "" : context->peer()},
             {"error", refusal_.ToString()}});
      }
    }
    if (!refusal_.ok()) {
      // Nothing of the request reaches the service, nothing of its answers the caller.
      if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE)) {
        if (void* request = methods->GetRecvMessage(); request != nullptr) {
          static_cast<Message*>(request)->Clear();
        }
      }
      if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_MESSAGE)) {
        if (const void* response = methods->GetSendMessage(); response != nullptr) {
          // The previous replacement was sent before this answer was written (one write
          // in flight), so one at a time is enough.
          replacement_.reset(static_cast<const Message*>(response)->New());
          SetError(*replacement_);
          methods->ModifySendMessage(replacement_.get());
        }
      }
      if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
        methods->ModifySendStatus(grpc::Status(static_cast<grpc::StatusCode>(refusal_.code()),
                                               std::string(refusal_.message())));
      }
    }
  }

  // Sets `error_response { error_code, error_message }` of a ServerReflectionResponse.
  void SetError(Message& response) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const google::protobuf::Descriptor* descriptor = response.GetDescriptor();
    const FieldDescriptor* error = descriptor->FindFieldByName("error_response");
    if (error == nullptr || error->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) return;
    Message* body = response.GetReflection()->MutableMessage(&response, error);
    const google::protobuf::Descriptor* body_descriptor = body->GetDescriptor();
    const FieldDescriptor* code = body_descriptor->FindFieldByName("error_code");
    const FieldDescriptor* message = body_descriptor->FindFieldByName("error_message");
    if (code != nullptr && code->cpp_type() == FieldDescriptor::CPPTYPE_INT32) {
      body->GetReflection()->SetInt32(body, code, static_cast<int32_t>(refusal_.code()));
    }
    if (message != nullptr && message->cpp_type() == FieldDescriptor::CPPTYPE_STRING) {
      body->GetReflection()->SetString(body, message, std::string(refusal_.message()));
    }
  }

  grpc::experimental::ServerRpcInfo* const info_;
  Authenticator& auth_;
  absl::Mutex mu_;
  bool checked_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status refusal_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<Message> replacement_ ABSL_GUARDED_BY(mu_);
};

class ReflectionGuardFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit ReflectionGuardFactory(Authenticator& auth) : auth_(auth) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    if (info->method() == nullptr || info->method() != kReflectionMethod) return nullptr;
    return new ReflectionGuardInterceptor(info, auth_);
  }

 private:
  Authenticator& auth_;
};

}  // namespace

std::string AuditText(absl::string_view text, size_t max) {
  std::string out;
  const bool cut = text.size() > max;
  if (cut) text = text.substr(0, max > 3 ? max - 3 : 0);
  out.reserve(text.size() + 3);
  for (char c : text) out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  if (cut) out += "...";
  return out;
}

std::string AuditTarget(const Message* request, const Message* response) {
  std::string target;
  if (response != nullptr) target = FindTarget(*response);
  if (target.empty() && request != nullptr) target = FindTarget(*request);
  return AuditText(target, kMaxTarget);
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> AuditInterceptors(
    storage::Store& store, Authenticator& auth, const Clock& clock) {
  return std::make_unique<AuditFactory>(store, auth, clock);
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> ReflectionGuard(
    Authenticator& auth) {
  return std::make_unique<ReflectionGuardFactory>(auth);
}

}  // namespace drover::server
