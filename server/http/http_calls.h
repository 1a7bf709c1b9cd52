// How the HTTP gateway calls droverd's gRPC services: with the request's user token as the
// call's `authorization`, through the callback API, every completion posted back to the
// gateway's loop thread, and every call registered in the loop's CallRegistry so that the
// gateway's end cancels it. Loop thread only, but for the gRPC callbacks inside.
#ifndef DROVER_SERVER_HTTP_HTTP_CALLS_H_
#define DROVER_SERVER_HTTP_HTTP_CALLS_H_

#include <grpcpp/client_context.h>
#include <grpcpp/support/client_callback.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/auth.h"
#include "server/http/http_internal.h"

namespace drover::server::http::internal {

inline void Authorize(const HttpGateway::Loop& loop, grpc::ClientContext& context,
                      const std::string& token) {
  context.AddMetadata("authorization", absl::StrCat("Bearer ", token));
  if (!loop.options.in_process_key.empty()) {
    context.AddMetadata(std::string(kInProcessKeyMetadata), loop.options.in_process_key);
  }
}

template <class Request, class Response>
struct UnaryCall {
  grpc::ClientContext context;
  Request request;
  Response response;
};

// Calls a unary method: `start(context, request, response, callback)` starts it (a lambda
// around `stub->async()->Method`); `done(status, response)` runs on the loop thread.
template <class Request, class Response, class Start, class Done>
void CallUnary(HttpGateway::Loop& loop, const std::string& token, Request request, Start start,
               Done done) {
  auto call = std::make_shared<UnaryCall<Request, Response>>();
  call->request = std::move(request);
  Authorize(loop, call->context, token);
  call->context.set_deadline(std::chrono::system_clock::now() +
                             std::chrono::milliseconds(
                                 absl::ToInt64Milliseconds(loop.limits.call_timeout)));
  if (!loop.calls.Add(&call->context, [call] { call->context.TryCancel(); })) {
    done(grpc::Status(grpc::StatusCode::UNAVAILABLE, "droverd is stopping"), call->response);
    return;
  }
  start(&call->context, &call->request, &call->response,
        [&loop, call, done = std::move(done)](grpc::Status status) mutable {
          grpc::ClientContext* context = &call->context;
          asio::post(loop.io, [call, status, done = std::move(done)]() mutable {
            done(status, call->response);
          });
          loop.calls.Remove(context);  // after the post: ~HttpGateway waits for this
        });
}

// A server-streaming call whose messages are taken one at a time: `on_message` gets each on
// the loop thread and calls Next() when it wants the next one (a slow client so holds the
// gRPC stream, not droverd's memory); `on_end` gets the status once, on the loop thread.
// Stop() (loop thread) cancels the call. Owned by itself until gRPC is done with it.
template <class Request, class Response>
class StreamCall final : public grpc::ClientReadReactor<Response>,
                         public std::enable_shared_from_this<StreamCall<Request, Response>> {
 public:
  using OnMessage = std::function<void(Response&)>;
  using OnEnd = std::function<void(const grpc::Status&)>;

  explicit StreamCall(HttpGateway::Loop& loop) : loop_(loop) {}

  // `start(context, request, reactor)` starts the call (a lambda around
  // `stub->async()->Method`). False when the gateway is stopping (nothing started).
  template <class Start>
  bool Begin(const std::string& token, Request request, Start start, OnMessage on_message,
             OnEnd on_end) {
    request_ = std::move(request);
    on_message_ = std::move(on_message);
    on_end_ = std::move(on_end);
    Authorize(loop_, context_, token);
    auto self = this->shared_from_this();
    HttpGateway::Loop* loop = &loop_;
    if (!loop_.calls.Add(&context_, [self, loop] {
          self->context_.TryCancel();
          asio::post(loop->io, [self] { self->Stop(); });
        })) {
      on_message_ = nullptr;
      on_end_ = nullptr;
      return false;
    }
    self_ = self;
    start(&context_, &request_, this);
    this->AddHold();
    reading_ = true;
    this->StartRead(&response_);
    this->StartCall();
    return true;
  }

  // Reads the next message (loop thread).
  void Next() {
    if (stopped_ || reading_ || released_) return;
    reading_ = true;
    this->StartRead(&response_);
  }

  // Whether Stop() cancelled the call (loop thread).
  bool stopped() const { return stopped_; }

  // Cancels the call (loop thread); `on_end` still runs.
  void Stop() {
    if (stopped_) return;
    stopped_ = true;
    context_.TryCancel();
    if (!reading_) Release();
  }

  void OnReadDone(bool ok) override {
    std::shared_ptr<StreamCall> self = self_;
    Response message;
    if (ok) message = std::move(response_);
    asio::post(loop_.io, [self, ok, message = std::move(message)]() mutable {
      self->reading_ = false;
      if (!ok || self->stopped_) return self->Release();
      if (self->on_message_) self->on_message_(message);
    });
  }

  void OnDone(const grpc::Status& status) override {
    std::shared_ptr<StreamCall> self = std::move(self_);
    grpc::ClientContext* context = &context_;
    asio::post(loop_.io, [self, status] {
      self->on_message_ = nullptr;
      OnEnd end = std::move(self->on_end_);
      self->on_end_ = nullptr;
      if (end) end(status);
    });
    loop_.calls.Remove(context);  // after the post: ~HttpGateway waits for this
  }

 private:
  // No more reads will be started: gRPC may finish the call.
  void Release() {
    if (released_) return;
    released_ = true;
    this->RemoveHold();
  }

  HttpGateway::Loop& loop_;
  grpc::ClientContext context_;
  Request request_;
  Response response_;
  OnMessage on_message_;
  OnEnd on_end_;
  std::shared_ptr<StreamCall> self_;  // until OnDone
  // Loop thread:
  bool reading_ = false;
  bool stopped_ = false;
  bool released_ = false;
};

}  // namespace drover::server::http::internal

#endif  // DROVER_SERVER_HTTP_HTTP_CALLS_H_
