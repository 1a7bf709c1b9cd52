// Where an event stream of the HTTP gateway stands, so that a client that reconnects with
// `Last-Event-ID` gets the rest, neither a byte twice nor one lost (docs/http-api.md):
// LogCursor for /logs, MetricsCursor for /metrics/watch. The gRPC streams behind them start
// from the beginning of an attempt again after a reconnect; a cursor skips what the client
// has. Pure; one per stream, on one thread.
#ifndef DROVER_SERVER_HTTP_EVENT_CURSORS_H_
#define DROVER_SERVER_HTTP_EVENT_CURSORS_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "drover/v1/agent.pb.h"
#include "drover/v1/job_service.pb.h"

namespace drover::server::http {

// The length of the longest prefix of `bytes` that does not end inside a UTF-8 sequence
// (an incomplete lead byte and its continuations, at most 3 bytes, are left out; invalid
// bytes count as complete).
size_t CompleteUtf8Prefix(absl::string_view bytes);

// One piece of a log to send: `bytes` of `rank`'s `stream` from `offset`.
struct LogPiece {
  int64_t attempt = 0;
  int32_t rank = 0;
  v1::LogStream stream = v1::LOG_STREAM_UNSPECIFIED;
  int64_t offset = 0;
  std::string bytes;
  std::string id;  // the cursor's event id just after this piece
};

class LogCursor {
 public:
  // The cursor an event id names: "" (nothing sent), "<attempt>:" (an attempt of which
  // nothing was sent) or comma-separated "<attempt>:<rank>:<STREAM>:<next offset>", all of
  // one attempt. INVALID_ARGUMENT for anything else.
  static absl::StatusOr<LogCursor> Parse(absl::string_view id);

  // What of a received chunk is new, in order: when `attempt` is later than the cursor's,
  // first what was held back of the attempt before. Bytes before the cursor are dropped, and
  // an incomplete UTF-8 sequence at the end is held back until its rest arrives (or Flush).
  // A chunk of an earlier attempt gives nothing.
  std::vector<LogPiece> Take(int64_t attempt, int32_t rank, v1::LogStream stream, int64_t offset,
                             absl::string_view data);
  // What is held back, as pieces (an attempt ended: those bytes will never be completed).
  std::vector<LogPiece> Flush();
  // Moves to `attempt` (nothing of it sent yet); the caller flushed first.
  void StartAttempt(int64_t attempt);

  // The event id of the position now (the form Parse reads).
  std::string Id() const;
  int64_t attempt() const { return attempt_; }

 private:
  struct Position {
    int64_t sent = 0;  // the next offset to send
    std::string held;  // bytes from `sent` received but not sent yet
  };
  int64_t attempt_ = 0;
  std::map<std::pair<int32_t, int>, Position> positions_;  // by rank and stream
};

class MetricsCursor {
 public:
  // The cursor a token names ("" for nothing sent). INVALID_ARGUMENT for a malformed one.
  static absl::StatusOr<MetricsCursor> Parse(absl::string_view token);

  // Drops from `series` (a piece of a stream that started from the attempt's first point)
  // the points the client has. Returns whether any point is left.
  bool Take(v1::MetricSeries& series);
  // The token of the position now.
  std::string Token() const;
  int64_t attempt() const { return attempt_; }
  void set_attempt(int64_t attempt) { attempt_ = attempt; }

 private:
  using Key = std::tuple<int, int32_t, std::string>;  // source, rank, name
  struct Count {
    int64_t sent = 0;  // points the client has
    int64_t seen = 0;  // points this stream received
  };
  int64_t attempt_ = 0;
  std::map<Key, Count> counts_;
};

}  // namespace drover::server::http

#endif  // DROVER_SERVER_HTTP_EVENT_CURSORS_H_
