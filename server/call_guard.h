// The gRPC server interceptors that see every call droverd serves, whichever service
// answers it: the audit of changing calls, and the admin check of gRPC's own server
// reflection service (which asks no one).
//
// Audit (docs/security.md): every call of a method that server/authz.cc marks
// `Effect::kChanges` (and every call of a method without a rule) is recorded when droverd
// answers it, refused calls included: time, who (Authenticator::Identify), from where (the
// peer address, "unix" for the local admin socket), the method, what it acted on
// (AuditTarget) and the answer's code and message. The record goes to the store's writer
// (group commit) without holding up the answer, so a crash right after an answer can lose
// its record. Hooking here rather than in each handler means a new method cannot be
// forgotten: it is audited unless the rules table calls it a read.
//
// Thread-safety: the factories are shared by every call and immutable; each interceptor
// belongs to one call, whose hook points gRPC runs one at a time.
#ifndef DROVER_SERVER_CALL_GUARD_H_
#define DROVER_SERVER_CALL_GUARD_H_

#include <grpcpp/support/server_interceptor.h>

#include <memory>
#include <string>

#include "common/clock.h"
#include "google/protobuf/message.h"
#include "server/auth.h"
#include "storage/store.h"

namespace drover::server {

// What an audited call acted on, from its answer (`response`, may be null) and else its
// request (may be null): the first non-empty string among a fixed list of naming fields
// (`job.id`, `job_id`, `name`, `node_name`, `id`, `digest`, also one message deep, as in
// `target.name` or `header.digest`). Token, CSR and secret fields are never among them.
// Printable ASCII only, at most 200 bytes.
std::string AuditTarget(const google::protobuf::Message* request,
                        const google::protobuf::Message* response);

// `text` made safe to store and show: printable ASCII (others become '?'), at most `max`
// bytes ("..." marks a cut).
std::string AuditText(absl::string_view text, size_t max);

// Records every changing call in `store` (see above). `clock` gives the records' time.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> AuditInterceptors(
    storage::Store& store, Authenticator& auth, const Clock& clock);

// Refuses gRPC's server reflection to callers the rules table does not let call it
// (admins only): their requests are emptied, every answer becomes an error answer naming
// the role needed, and the stream ends PERMISSION_DENIED or UNAUTHENTICATED.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> ReflectionGuard(
    Authenticator& auth);

}  // namespace drover::server

#endif  // DROVER_SERVER_CALL_GUARD_H_
