// LogShipper: tails the files of every attempt's log folder on the node (each rank's
// stdout, stderr and metrics, the node's system metrics: see FileName), and files named one
// by one such as a node's preparation log, and ships them to droverd as LogChunks, tagged
// (job, epoch, rank, stream, offset). Metrics files hold JSON lines, and their chunks end at
// a line end. The files,
// not the agent, hold the output: what droverd acknowledged is the only progress the
// shipper trusts, so a broken stream or a droverd restart loses and doubles nothing.
// The log folder is the job's to write: only the names of the attempt's own ranks and node
// are read there, each opened below the job folder without following a symbolic link and
// only when it is a regular file (common/safe_open.h); anything else there (a link to a host
// file, a fifo) is skipped and logged once (`event=unsafe_job_file`).
// When to poll: with WakeOnChange(), the shipper says when there may be something to send
// (a watched log folder's file was written to or one moved in, found by FolderEvents'
// inotify watch; a stream was added; droverd acknowledged a full window or asked for a
// resend; a reconnect), so that the agent's shipping loop sleeps while the jobs are quiet.
// A folder it cannot watch (inotify limits, a folder not there yet) makes NeedsPolling()
// true: the loop then polls on its short timer as it always did.
// Thread-safe; Poll() is called from the agent's shipping thread.
#ifndef DROVER_AGENT_LOG_SHIPPER_H_
#define DROVER_AGENT_LOG_SHIPPER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <tuple>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/folder_events.h"
#include "common/safe_open.h"
#include "drover/v1/agent.pb.h"

namespace drover::agent {

class LogShipper {
 public:
  // Sends one message to droverd; returns false when not connected.
  using SendFn = std::function<bool(v1::AgentMessage)>;

  LogShipper(SendFn send, int64_t chunk_bytes = 256 * 1024, int64_t window_bytes = 4 << 20)
      : send_(std::move(send)), chunk_bytes_(chunk_bytes), window_bytes_(window_bytes) {}

  // From now on calls `wake` (from any thread, without the shipper's locks) when there may
  // be something to send, at most once per `pace` for the folders' writes. Called once,
  // before the first Watch().
  void WakeOnChange(std::function<void()> wake, absl::Duration pace);
  // Whether some watched attempt's files are not watched for changes (or WakeOnChange was
  // not called): then only polling on a timer ships them promptly.
  bool NeedsPolling();
  // Whether any attempt's files are watched (Watch, WatchFile, until Forget).
  bool Watching();
  // Ends the folders' watch (its thread), so that `wake` is no longer called from it; the
  // shipper polls as if it could not watch them.
  void StopWaking();

  // Where an attempt's log files are, and which it may have.
  struct LogFolder {
    std::string root;  // the attempt's job folder: the agent's own, trusted
    std::string path = "logs";  // the log folder below `root`, resolved without links
    // The streams read: those of ranks [first_rank, first_rank + rank_count) and the system
    // metrics of node `node_rank`.
    int32_t first_rank = 0;
    int32_t rank_count = 1;
    int32_t node_rank = 0;
  };
  // Starts tailing the log folder of an attempt.
  void Watch(const v1::AttemptRef& attempt, LogFolder folder);
  // Also tails the file `path` as the attempt's stream (`rank`, `stream`), for example the
  // node's preparation log (PREPARE, the node rank). The file need not exist yet; its
  // folder is trusted, the file itself read only when it is a regular file.
  void WatchFile(const v1::AttemptRef& attempt, int32_t rank, v1::LogStream stream,
                 const std::string& path);
  // Stops tailing it (after it drained, or when the attempt is forgotten).
  void Forget(const v1::AttemptRef& attempt);

  // droverd stored a stream up to `ack.offset` (-1: it could not; resend later). With
  // `ack.capped` the rest of the stream is not read or sent: only its size, as an empty
  // chunk at that offset (droverd acknowledges it, and counts what it did not get).
  void Acknowledged(const v1::LogAck& ack);
  // A new stream to droverd: resume every stream from what droverd says it has (streams it
  // does not mention start from 0).
  void Reconnected(const v1::AgentWelcome& welcome);
  // The stream to droverd ended.
  void Disconnected();

  // Sends what is new, within the window of unacknowledged bytes per stream. Callers may
  // poll from several threads; polls run one at a time.
  void Poll();

  // Whether every byte of the attempt's files, as they are now, was acknowledged. The files
  // must not grow any more (the processes ended): from the first call on, a metrics file's
  // last line is shipped even without its line end.
  bool Drained(const v1::AttemptRef& attempt);
  // Whether droverd cannot take the attempt's output now: the agent is not connected, or
  // droverd refused a chunk of it (its state disk) and has stored none of it since.
  bool Held(const v1::AttemptRef& attempt);

  // Bytes sent to droverd, over every stream, that it has not acknowledged yet.
  int64_t Unacknowledged();

  // The file of a stream in an attempt's log folder: rank-R.stdout, rank-R.stderr,
  // rank-R.metrics, and node-N.system for SYSTEM_METRICS (N the node rank).
  static std::string FileName(int32_t rank, v1::LogStream stream);

 private:
  struct Stream {
    int64_t sent = 0;
    int64_t acked = 0;
    // End offsets of the chunks in flight, in order: droverd acknowledges each stream's
    // chunks in the order they were sent.
    std::deque<int64_t> in_flight;
    bool refused = false;  // the last acknowledgement said droverd could not store it
    bool capped = false;   // droverd stores no more of it (LogAck.capped): only its size goes
  };
  struct Watched {
    LogFolder folder;
    v1::AttemptRef attempt;
    std::map<std::pair<int32_t, int>, Stream> streams;  // (rank, LogStream)
    bool final = false;  // the files no longer grow (Drained was called)
    std::map<std::pair<int32_t, int>, std::string> files;  // WatchFile()'s, by stream
    // FolderEvents' watches: of the log folder, and of each watched file's folder (-1: none).
    int folder_watch = -1;
    std::map<std::pair<int32_t, int>, int> file_watches;
    bool unwatched = false;  // a folder (or a file's folder) could not be watched
  };
  // Wakes the shipping loop (WakeOnChange), when set.
  void Wake();
  // Acknowledged() under the lock; whether more may be sent now (a full window opened, or a
  // refused chunk is to be sent again).
  bool AcknowledgedLocked(const v1::LogAck& ack) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Reconnected() without the wake.
  void ResumeFrom(const v1::AgentWelcome& welcome);
  // A stream's file, open for this poll.
  struct OpenFile {
    UniqueFd fd;
    int64_t size = 0;
  };
  static std::string Key(const v1::AttemptRef& a) {
    return a.job_id() + "/" + std::to_string(a.epoch());
  }
  // Opens the streams' files that are there (adding streams that appeared), and says their
  // sizes.
  std::map<std::pair<int32_t, int>, OpenFile> Scan(Watched& w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const SendFn send_;
  const int64_t chunk_bytes_;
  const int64_t window_bytes_;
  absl::Mutex poll_mu_;  // held for a whole Poll(), taken before mu_
  absl::Mutex mu_;
  std::map<std::string, Watched> watched_ ABSL_GUARDED_BY(mu_);
  bool connected_ ABSL_GUARDED_BY(mu_) = false;
  std::function<void()> wake_;             // set once by WakeOnChange, before any Watch
  std::unique_ptr<FolderEvents> events_ ABSL_GUARDED_BY(mu_);  // likewise; StopWaking ends it
};

}  // namespace drover::agent

#endif  // DROVER_AGENT_LOG_SHIPPER_H_
