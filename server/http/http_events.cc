// The event streams of the HTTP gateway (docs/http-api.md): /watch, /logs and
// /metrics/watch. Each first asks GetJob with the caller's token, so that a job the caller
// may not see (or that does not exist) is an ordinary JSON error; then it opens the event
// stream and follows the gRPC stream behind it, one message at a time, as fast as the
// client takes the events.
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/json.h"
#include "server/http/event_cursors.h"
#include "server/http/http_api.h"
#include "server/http/http_calls.h"

namespace drover::server::http::internal {
namespace {

std::string Event(absl::string_view name, absl::string_view data, absl::string_view id = "") {
  return absl::StrCat("event: ", name, "\n", id.empty() ? "" : absl::StrCat("id: ", id, "\n"),
                      "data: ", data, "\n\n");
}

std::string ErrorEvent(const grpc::Status& status) {
  return Event("error", ErrorBody(FromGrpcStatus(status)));
}

// The state every event stream shares: the slot it holds, the exchange, the gRPC call.
template <class Request, class Response>
struct Pump {
  using Call = StreamCall<Request, Response>;
  HttpGateway::Loop* loop = nullptr;
  std::shared_ptr<Exchange> exchange;
  std::shared_ptr<ApiRequest> request;
  std::shared_ptr<Call> call;
  bool slot = false;

  ~Pump() {
    // Normally released in End(); this covers a pump that never started.
    if (slot) loop->ReleaseStream(request->stream_key);
  }

  // Reads on when the client keeps up; otherwise the exchange's `on_drained` does.
  void MaybeNext() {
    if (exchange->Backlog() <= loop->limits.max_stream_backlog) call->Next();
  }

  void End() {
    if (slot) {
      slot = false;
      loop->ReleaseStream(request->stream_key);
    }
    exchange->EndEvents();
  }
};

// Opens the event stream of `pump` and starts its call: `on_message(pump, message)` sends the
// events of one message, `on_end(pump, status)` what ends the stream.
template <class Request, class Response, class Start, class OnMessage, class OnEnd>
void Open(std::shared_ptr<Pump<Request, Response>> pump, Request request, Start start,
          OnMessage on_message, OnEnd on_end) {
  HttpGateway::Loop& loop = *pump->loop;
  if (!loop.AcquireStream(pump->request->stream_key)) {
    return pump->exchange->Respond(ErrorResponse(
        429, absl::ResourceExhaustedError(absl::StrCat(
                 "too many event streams open (at most ", loop.limits.max_streams_per_session,
                 " per session and ", loop.limits.max_streams, " in all); close some"))));
  }
  pump->slot = true;
  pump->call = std::make_shared<typename Pump<Request, Response>::Call>(loop);
  std::weak_ptr<typename Pump<Request, Response>::Call> weak = pump->call;
  pump->exchange->BeginEvents(
      [weak] {
        if (auto call = weak.lock()) call->Next();
      },
      [weak] {
        if (auto call = weak.lock()) call->Stop();
      });
  bool started = pump->call->Begin(
      pump->request->token, std::move(request), start,
      [pump, on_message](Response& message) { on_message(*pump, message); },
      [pump, on_end](const grpc::Status& status) {
        on_end(*pump, status);
        pump->call.reset();  // breaks the cycle pump -> call -> callbacks -> pump
      });
  if (!started) {
    pump->exchange->SendEvent(
        ErrorEvent(grpc::Status(grpc::StatusCode::UNAVAILABLE, "droverd is stopping")));
    pump->End();
  }
}

// Whether a stream's end is one the client should hear of (not our own cancel).
template <class P>
bool Reportable(const P& pump, const grpc::Status& status) {
  if (status.ok()) return false;
  return status.error_code() != grpc::StatusCode::CANCELLED || pump.call == nullptr ||
         !pump.call->stopped();
}

void WatchJob(HttpGateway::Loop& loop, std::shared_ptr<Exchange> exchange,
              std::shared_ptr<ApiRequest> request) {
  using P = Pump<v1::WatchJobRequest, v1::WatchJobResponse>;
  auto pump = std::make_shared<P>();
  pump->loop = &loop;
  pump->exchange = exchange;
  pump->request = request;
  v1::WatchJobRequest watch;
  watch.set_job_id(request->route.job_id);
  Open(
      pump, std::move(watch),
      [&loop](auto* context, auto* req, auto* reactor) {
        loop.jobs->async()->WatchJob(context, req, reactor);
      },
      [](P& p, v1::WatchJobResponse& message) {
        p.exchange->SendEvent(Event("job", ToJson(message.job())));
        p.MaybeNext();
      },
      [](P& p, const grpc::Status& status) {
        if (Reportable(p, status)) p.exchange->SendEvent(ErrorEvent(status));
        p.End();
      });
}

std::string LogEvent(const LogPiece& piece) {
  Json data = {{"attempt", absl::StrCat(piece.attempt)},
               {"rank", piece.rank},
               {"stream", v1::LogStream_Name(piece.stream)},
               {"offset", absl::StrCat(piece.offset)},
               {"text", piece.bytes}};  // DumpJson writes invalid UTF-8 as U+FFFD
  return Event("log", DumpJson(data), piece.id);
}

void StreamLogs(HttpGateway::Loop& loop, std::shared_ptr<Exchange> exchange,
                std::shared_ptr<ApiRequest> request) {
  const Target& target = request->target;
  v1::StreamLogsRequest logs;
  logs.set_job_id(request->route.job_id);
  absl::StatusOr<int64_t> attempt =
      IntParam(target, "attempt", 0, 0, std::numeric_limits<int64_t>::max());
  absl::StatusOr<bool> follow = BoolParam(target, "follow", true);
  absl::Status bad = !attempt.ok() ? attempt.status() : follow.status();
  if (!bad.ok()) return exchange->Respond(ErrorResponse(400, bad));
  logs.set_attempt(*attempt);
  logs.set_follow(*follow);
  for (const std::string& rank : target.All("rank")) {
    int32_t parsed = 0;
    if (!absl::SimpleAtoi(rank, &parsed) || parsed < 0) {
      return exchange->Respond(ErrorResponse(
          400, absl::InvalidArgumentError(absl::StrCat("query parameter 'rank': '", rank,
                                                       "' is not a rank (0, 1, ...)"))));
    }
    logs.add_ranks(parsed);
  }
  for (const std::string& stream : target.All("stream")) {
    v1::LogStream parsed;
    if (!v1::LogStream_Parse(stream, &parsed) || parsed == v1::LOG_STREAM_UNSPECIFIED) {
      return exchange->Respond(ErrorResponse(
          400, absl::InvalidArgumentError(absl::StrCat(
                   "query parameter 'stream': '", stream, "' is not STDOUT, STDERR or PREPARE"))));
    }
    logs.add_streams(parsed);
  }
  // Where the client stands: Last-Event-ID (EventSource's reconnect) or ?resume=.
  std::string resume;
  if (auto found = request->http.find("Last-Event-ID"); found != request->http.end()) {
    resume = std::string(found->value());
  } else if (const std::string* value = target.First("resume")) {
    resume = *value;
  }
  absl::StatusOr<LogCursor> cursor = LogCursor::Parse(resume);
  if (!cursor.ok()) return exchange->Respond(ErrorResponse(400, cursor.status()));
  if (cursor->attempt() > 0) {
    if (logs.attempt() == 0 && logs.follow()) {
      logs.set_from_attempt(cursor->attempt());
    } else if (logs.attempt() == 0) {
      logs.set_attempt(cursor->attempt());
    }
  }
  using P = Pump<v1::StreamLogsRequest, v1::StreamLogsResponse>;
  auto pump = std::make_shared<P>();
  pump->loop = &loop;
  pump->exchange = exchange;
  pump->request = request;
  auto state = std::make_shared<LogCursor>(*std::move(cursor));
  Open(
      pump, std::move(logs),
      [&loop](auto* context, auto* req, auto* reactor) {
        loop.jobs->async()->StreamLogs(context, req, reactor);
      },
      [state](P& p, v1::StreamLogsResponse& message) {
        auto send = [&p](std::vector<LogPiece> pieces) {
          for (LogPiece& piece : pieces) p.exchange->SendEvent(LogEvent(piece));
        };
        if (message.has_next_attempt()) {
          send(state->Flush());
          state->StartAttempt(message.next_attempt().attempt());
          std::string data = absl::StrCat(
              "{\"attempt\":\"", message.next_attempt().attempt(), "\"",
              message.next_attempt().has_previous()
                  ? absl::StrCat(",\"previous\":", ToJson(message.next_attempt().previous()))
                  : "",
              "}");
          p.exchange->SendEvent(Event("attempt", data, state->Id()));
        }
        if (!message.data().empty()) {
          send(state->Take(message.attempt(), message.rank(), message.stream(),
                           message.offset(), message.data()));
        }
        if (message.has_job()) {
          send(state->Flush());
          p.exchange->SendEvent(
              Event("end", absl::StrCat("{\"job\":", ToJson(message.job()), "}"), state->Id()));
        }
        p.MaybeNext();
      },
      [state, follow = *follow](P& p, const grpc::Status& status) {
        if (Reportable(p, status)) {
          p.exchange->SendEvent(ErrorEvent(status));
        } else if (status.ok()) {
          for (LogPiece& piece : state->Flush()) {
            p.exchange->SendEvent(LogEvent(piece));
          }
          // A followed stream already sent `end` with the job; one that is not followed
          // ends when what is stored was sent.
          if (!follow) p.exchange->SendEvent(Event("end", "{}", state->Id()));
        }
        p.End();
      });
}

void WatchMetrics(HttpGateway::Loop& loop, std::shared_ptr<Exchange> exchange,
                  std::shared_ptr<ApiRequest> request) {
  absl::StatusOr<v1::GetMetricsRequest> metrics = MetricsRequestOf(*request);
  if (!metrics.ok()) return exchange->Respond(ErrorResponse(400, metrics.status()));
  metrics->set_follow(true);
  std::string resume;
  if (auto found = request->http.find("Last-Event-ID"); found != request->http.end()) {
    resume = std::string(found->value());
  } else if (const std::string* value = request->target.First("resume")) {
    resume = *value;
  }
  absl::StatusOr<MetricsCursor> cursor = MetricsCursor::Parse(resume);
  if (!cursor.ok()) return exchange->Respond(ErrorResponse(400, cursor.status()));
  if (cursor->attempt() > 0 && metrics->attempt() == 0) metrics->set_attempt(cursor->attempt());
  using P = Pump<v1::GetMetricsRequest, v1::GetMetricsResponse>;
  auto pump = std::make_shared<P>();
  pump->loop = &loop;
  pump->exchange = exchange;
  pump->request = request;
  auto state = std::make_shared<MetricsCursor>(*std::move(cursor));
  Open(
      pump, *std::move(metrics),
      [&loop](auto* context, auto* req, auto* reactor) {
        loop.jobs->async()->WatchMetrics(context, req, reactor);
      },
      [state](P& p, v1::GetMetricsResponse& message) {
        state->set_attempt(message.attempt());
        std::string series;
        for (v1::MetricSeries& one : *message.mutable_series()) {
          if (!state->Take(one)) continue;
          absl::StrAppend(&series, series.empty() ? "" : ",", ToJson(one));
        }
        if (!series.empty()) {
          p.exchange->SendEvent(Event(
              "metrics",
              absl::StrCat("{\"attempt\":\"", message.attempt(), "\",\"series\":[", series, "]}"),
              state->Token()));
        }
        if (message.has_job()) {
          p.exchange->SendEvent(
              Event("end", absl::StrCat("{\"job\":", ToJson(message.job()), "}"), state->Token()));
        }
        p.MaybeNext();
      },
      [](P& p, const grpc::Status& status) {
        if (Reportable(p, status)) p.exchange->SendEvent(ErrorEvent(status));
        p.End();
      });
}

}  // namespace

void ServeEvents(HttpGateway::Loop& loop, std::shared_ptr<Exchange> exchange,
                 std::shared_ptr<ApiRequest> request) {
  // GetJob first: a job the caller may not read is a plain 403/404 answer, not an event.
  v1::GetJobRequest get;
  get.set_job_id(request->route.job_id);
  CallUnary<v1::GetJobRequest, v1::Job>(
      loop, request->token, std::move(get),
      [&loop](auto* context, auto* req, auto* resp, auto done) {
        loop.jobs->async()->GetJob(context, req, resp, std::move(done));
      },
      [&loop, exchange, request](const grpc::Status& status, v1::Job&) {
        if (!status.ok()) return ReplyStatus(loop, *request, *exchange, status);
        switch (request->route.route) {
          case Route::kWatchJob: return WatchJob(loop, exchange, request);
          case Route::kJobLogs: return StreamLogs(loop, exchange, request);
          default: return WatchMetrics(loop, exchange, request);
        }
      });
}

}  // namespace drover::server::http::internal
